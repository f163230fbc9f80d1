using Google.Protobuf;
using MergeMix.ML.Classification;
using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.Transforms;

namespace MergeMix.ML.Persistence;

/// <summary>
/// What a <see cref="VisionTransformerClassifier"/> becomes in an ML.NET model file: a chain of ML.NET's own
/// transformers that needs only Microsoft.ML, Microsoft.ML.OnnxTransformer and ONNX Runtime to load and run.
/// </summary>
/// <remarks>
/// ML.NET keeps its model-file API internal, but every built-in transformer saves itself, so the classifier forwards
/// its save to this chain. ML.NET's ONNX transformer cannot produce a scalar column (ONNX outputs load as vectors), and
/// <c>PredictedLabel</c> must be a scalar key for Evaluate and MapKeyToValue, so the ONNX graph also outputs the class
/// index as a one-slot vector and built-in transforms turn it into that key:
/// <list type="number">
/// <item>ApplyOnnxModel: Features → Score [K] (softmax, the class names as SlotNames) and the class index [1];</item>
/// <item>Hash with <c>combine</c>: the one-slot vector → a scalar key (hash values checked to be distinct per class);</item>
/// <item>ConvertType → uint, MapValue (hash → class name), MapValueToKey with the class names in class order → PredictedLabel,
/// a Key&lt;UInt32&gt;[K] whose KeyValues are the class names, key = class + 1 as the TorchSharp classifier writes it;</item>
/// <item>DropColumns: the intermediate columns.</item>
/// </list>
/// </remarks>
internal static class OnnxScoringChain
{
    private const string IndexColumn = "MergeMix.PredictedIndex";
    private const string HashColumn = "MergeMix.PredictedHash";
    private const string HashValueColumn = "MergeMix.PredictedHashValue";
    private const string NameColumn = "MergeMix.PredictedClassName";
    private const int HashBits = 30;

    /// <summary>The chain for <paramref name="classifier"/>, merging iff its <c>MergeAtInference</c> is on.</summary>
    public static TransformerChain<ITransformer> Create(VisionTransformerClassifier classifier)
    {
        var names = classifier.ClassNames;
        var duplicate = names.GroupBy(n => n).FirstOrDefault(g => g.Count() > 1);
        if (duplicate is not null)
            throw new InvalidOperationException(
                $"Class name '{duplicate.Key}' appears {duplicate.Count()} times; an ML.NET model file maps PredictedLabel back through the class names, so they must be distinct.");

        var o = classifier.Model.Options;
        var onnx = VisionTransformerOnnx.Build(classifier.Model, names, classifier.FeatureColumnName, classifier.ScoreColumnName, IndexColumn,
            classifier.MergeAtInference, OnnxHead.SingleRow);
        var ml = new MLContext(0);
        var input = FeatureOnlyView(ml, classifier.FeatureColumnName, o.Channels, o.ImageSize);

        var applyOnnx = ml.Transforms.ApplyOnnxModel(new[] { classifier.ScoreColumnName, IndexColumn }, new[] { classifier.FeatureColumnName },
            new MemoryStream(onnx.ToByteArray())).Fit(input);
        var scored = applyOnnx.Transform(input);

        var (hash, toValue, hashes) = DistinctHashes(ml, scored, names.Count);
        var lookup = ml.Data.LoadFromEnumerable(hashes.Select((h, i) => new HashToName { Hash = h, Name = names[i] }));
        var hashed = toValue.Transform(hash.Transform(scored));
        var toName = ml.Transforms.Conversion.MapValue(NameColumn, lookup, lookup.Schema[nameof(HashToName.Hash)], lookup.Schema[nameof(HashToName.Name)], HashValueColumn)
            .Fit(hashed);
        var named = toName.Transform(hashed);
        var classKeys = ml.Data.LoadFromEnumerable(names.Select(n => new ClassName { Value = n }));
        var toKey = ml.Transforms.Conversion.MapValueToKey(classifier.PredictedLabelColumnName, NameColumn, keyData: classKeys).Fit(named);
        var drop = ml.Transforms.DropColumns(IndexColumn, HashColumn, HashValueColumn, NameColumn).Fit(toKey.Transform(named));
        return new TransformerChain<ITransformer>(applyOnnx, hash, toValue, toName, toKey, drop);
    }

    /// <summary>Fits the Hash (combine) and ConvertType steps and returns the hash of every class index; retries seeds until they are distinct.</summary>
    private static (ITransformer Hash, ITransformer ToValue, uint[] Hashes) DistinctHashes(MLContext ml, IDataView scored, int classCount)
    {
        var indices = ml.Data.LoadFromEnumerable(Enumerable.Range(0, classCount).Select(i => new ClassIndex { Index = new float[] { i } }),
            IndexSchema(ml));
        for (uint seed = 314489979; ; seed++)
        {
            var hash = ml.Transforms.Conversion.Hash(new[] { new HashingEstimator.ColumnOptions(HashColumn, IndexColumn, HashBits, seed, combine: true) }).Fit(scored);
            var toValue = ml.Transforms.Conversion.ConvertType(HashValueColumn, HashColumn, DataKind.UInt32).Fit(hash.Transform(scored));
            var hashes = toValue.Transform(hash.Transform(indices)).GetColumn<uint>(HashValueColumn).ToArray();
            if (hashes.Distinct().Count() == classCount) return (hash, toValue, hashes);
        }
    }

    private static SchemaDefinition IndexSchema(MLContext ml)
    {
        var schema = SchemaDefinition.Create(typeof(ClassIndex));
        schema[0].ColumnName = IndexColumn;
        schema[0].ColumnType = new VectorDataViewType(NumberDataViewType.Single, 1);
        return schema;
    }

    /// <summary>An empty view with just the image column, for fitting the built-in transformers (none of them reads rows).</summary>
    private static IDataView FeatureOnlyView(MLContext ml, string featureColumn, int channels, int side)
    {
        var schema = SchemaDefinition.Create(typeof(FeatureRow));
        schema[0].ColumnName = featureColumn;
        schema[0].ColumnType = new VectorDataViewType(NumberDataViewType.Single, channels, side, side);
        return ml.Data.LoadFromEnumerable(Array.Empty<FeatureRow>(), schema);
    }

    private sealed class FeatureRow
    {
        public float[] Features { get; set; } = Array.Empty<float>();
    }

    private sealed class ClassIndex
    {
        public float[] Index { get; set; } = Array.Empty<float>();
    }

    private sealed class HashToName
    {
        public uint Hash { get; set; }

        public string Name { get; set; } = "";
    }

    private sealed class ClassName
    {
        public string Value { get; set; } = "";
    }
}
