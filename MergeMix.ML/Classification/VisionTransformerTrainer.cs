using MergeMix.ML.Data;
using MergeMix.ML.Runtime;
using MergeMix.ML.Transforms;
using MergeMix.ML.Vision;
using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.Runtime;

namespace MergeMix.ML.Classification;

/// <summary>
/// Trains a ToMe Vision Transformer (TorchSharp) on an image column, with either a key label or the soft-label
/// column of a mixer, and returns a <see cref="VisionTransformerClassifier"/>.
/// Use <c>mlContext.MulticlassClassification.Trainers.VisionTransformer(...)</c>.
/// </summary>
public sealed class VisionTransformerTrainer : IEstimator<VisionTransformerClassifier>
{
    private readonly VisionTransformerTrainerOptions _options;
    private readonly IHostEnvironment? _environment;

    /// <summary>Creates the trainer.</summary>
    public VisionTransformerTrainer(VisionTransformerTrainerOptions options, IHostEnvironment? environment = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        _options = options;
        _environment = environment;
    }

    /// <inheritdoc />
    public VisionTransformerClassifier Fit(IDataView input)
    {
        ArgumentNullException.ThrowIfNull(input);
        var o = _options;
        o.CancellationToken.ThrowIfCancellationRequested();
        // Everything that needs no data is checked before the first row is read.
        o.Validate();
        TorchDevice.Resolve(o.Device, nameof(VisionTransformerTrainerOptions.Device));
        // A checkpoint is read (and checked against the schema) before the rows too: a wrong file fails fast.
        using var pretrained = o.InitialWeights is { } weights ? VisionTransformerCheckpoint.Read(weights) : null;
        var softColumn = ValidateSchema(input.Schema, o, pretrained, MixingTransformer.MixerThatTransformed(input));
        if (o.ValidationSet is { } validationSet)
        {
            ImageColumns.ValidateKeyLabel(validationSet.Schema, o.LabelColumnName);
            ImageColumns.CheckKeyNames(validationSet.Schema[o.LabelColumnName], ImageColumns.ValidateKeyLabel(input.Schema, o.LabelColumnName),
                "the training data", nameof(VisionTransformerTrainerOptions.ValidationSet));
        }
        // Soft labels first: a mixer's output view warns when its images are read before (without) its soft labels.
        var soft = softColumn is { } column ? ReadSoftLabels(input, column) : null;
        var train = LabeledImageSet.FromDataView(input, o.FeatureColumnName, o.LabelColumnName);
        var validation = o.ValidationSet is null ? null : LabeledImageSet.FromDataView(o.ValidationSet, o.FeatureColumnName, o.LabelColumnName);
        using var channel = _environment?.Start("VisionTransformerTrainer");
        var (model, history) = ClassifierTraining.Train(train, soft, validation, o, channel, pretrained);
        return new VisionTransformerClassifier(model, train.ClassNames, o.FeatureColumnName, o.ScoreColumnName, o.PredictedLabelColumnName, history, o.LabelColumnName);
    }

    /// <inheritdoc />
    public SchemaShape GetOutputSchema(SchemaShape inputSchema)
    {
        ImageColumns.ValidateImageColumn(inputSchema, _options.FeatureColumnName);
        ImageColumns.ValidateKeyLabel(inputSchema, _options.LabelColumnName);
        if (_options.SoftLabelColumnName is { } soft && !ImageColumns.TryFind(inputSchema, soft, out _))
            throw new ArgumentOutOfRangeException(nameof(VisionTransformerTrainerOptions.SoftLabelColumnName),
                $"Soft-label column '{soft}' not found; it is written by a mixer (e.g. mlContext.Transforms.MergeMix) earlier in the pipeline.");
        var keyValues = new SchemaShape(new[] { SchemaShapeColumns.Make("KeyValues", SchemaShape.Column.VectorKind.Vector, TextDataViewType.Instance) });
        return SchemaShapeColumns.With(inputSchema,
            SchemaShapeColumns.Make(_options.ScoreColumnName, SchemaShape.Column.VectorKind.Vector, NumberDataViewType.Single),
            SchemaShapeColumns.Make(_options.PredictedLabelColumnName, SchemaShape.Column.VectorKind.Scalar, NumberDataViewType.UInt32, isKey: true, keyValues));
    }

    /// <summary>
    /// Checks the columns from the schema alone, so a bad column fails before any row is read; returns the soft-label
    /// column when one is configured.
    /// </summary>
    private static DataViewSchema.Column? ValidateSchema(DataViewSchema schema, VisionTransformerTrainerOptions o, VisionTransformerCheckpoint? pretrained,
        string? mixer = null)
    {
        var (channels, height, width) = ImageColumns.ValidateImageColumn(schema, o.FeatureColumnName);
        if (height != width)
            throw new ArgumentOutOfRangeException(nameof(VisionTransformerTrainerOptions.FeatureColumnName),
                $"Image column '{o.FeatureColumnName}' holds {channels}×{height}×{width} images, but the Vision Transformer needs square images; " +
                "resize them first (mlContext.Transforms.ResizeImages).");
        int classCount = ImageColumns.ValidateKeyLabel(schema, o.LabelColumnName).Count;
        if (pretrained is null)
            ClassifierTraining.ModelOptionsFor(o.Model, channels, height, classCount, $"Image column '{o.FeatureColumnName}'",
                nameof(VisionTransformerTrainerOptions.FeatureColumnName), "Model");
        else
            ClassifierTraining.PretrainedModelOptions(pretrained, o, channels, height, classCount, $"Image column '{o.FeatureColumnName}'");
        if (o.SoftLabelColumnName is not { } name) return null;
        var column = schema.GetColumnOrNull(name) ?? throw MissingSoftLabels(name, mixer);
        if (column.Type is not VectorDataViewType { ItemType: NumberDataViewType } vector || vector.ItemType != NumberDataViewType.Single || vector.Size != classCount)
            throw new ArgumentOutOfRangeException(nameof(VisionTransformerTrainerOptions.SoftLabelColumnName),
                $"Soft-label column '{name}' must be a vector of {classCount} Single values (one per class of label column '{o.LabelColumnName}'), but is {column.Type}.");
        return column;
    }

    /// <summary>
    /// The soft labels are missing. When a mixer did transform this data, its output was dropped on the way: the usual
    /// cause is a nested chain, whose inner <c>TransformerChain.Transform</c> applies only scoring-scope steps.
    /// </summary>
    private static ArgumentOutOfRangeException MissingSoftLabels(string name, string? mixer)
    {
        const string rule = "Build one flat chain: prep.Append(mixer, TransformerScope.Training).Append(trainer), keeping the variable an " +
            "EstimatorChain<ITransformer> (var p = ...); `IEstimator<ITransformer> p = prep; p = p.Append(mixer, TransformerScope.Training); " +
            "p = p.Append(trainer);` nests the first steps in an inner chain, and ML.NET's TransformerChain.Transform skips its " +
            "TransformerScope.Training steps, so the trainer receives unmixed rows.";
        return new ArgumentOutOfRangeException(nameof(VisionTransformerTrainerOptions.SoftLabelColumnName), mixer is null
            ? $"Soft-label column '{name}' not found; it is written by a mixer (e.g. mlContext.Transforms.MergeMix) earlier in the pipeline. " +
              "If the pipeline has one, it may sit in a nested chain. " + rule
            : $"Soft-label column '{name}' not found, although a mixer ({mixer}) transformed this data earlier in Fit: its output did not reach " +
              "the trainer, because the mixer sits in a nested chain. " + rule);
    }

    private static float[] ReadSoftLabels(IDataView data, DataViewSchema.Column column)
    {
        string columnName = column.Name;
        int classCount = ((VectorDataViewType)column.Type).Size;
        var values = new List<float>();
        var row = new float[classCount];
        VBuffer<float> buffer = default;
        using var cursor = data.GetRowCursor(new[] { column });
        var getter = cursor.GetGetter<VBuffer<float>>(column);
        while (cursor.MoveNext())
        {
            getter(ref buffer);
            buffer.CopyTo(row);
            float sum = row.Sum();
            if (row.Any(v => v < 0 || !float.IsFinite(v)) || Math.Abs(sum - 1) > 1e-3)
                throw new InvalidOperationException($"Row {values.Count / classCount}: soft labels in '{columnName}' must be non-negative and sum to 1, got sum {sum}.");
            values.AddRange(row);
        }
        return values.ToArray();
    }
}

/// <summary>Catalog methods: <c>mlContext.MulticlassClassification.Trainers.VisionTransformer(...)</c>.</summary>
public static class VisionTransformerCatalog
{
    /// <summary>Trains a ToMe Vision Transformer with the given options.</summary>
    public static VisionTransformerTrainer VisionTransformer(this MulticlassClassificationCatalog.MulticlassClassificationTrainers catalog,
        VisionTransformerTrainerOptions options) => new(options, MixingCatalog.EnvironmentOf(catalog));

    /// <summary>Trains a ToMe Vision Transformer with the most used settings; see <see cref="VisionTransformerTrainerOptions"/> for the rest.</summary>
    /// <param name="catalog">The trainers catalog.</param>
    /// <param name="labelColumnName">Key-typed label column.</param>
    /// <param name="featureColumnName">Image column (planar CHW floats of raw pixels).</param>
    /// <param name="softLabelColumnName">Soft-label column written by a mixer, or null to train on the label.</param>
    /// <param name="epochs">Passes over the data.</param>
    /// <param name="batchSize">Images per step.</param>
    /// <param name="learningRate">Peak AdamW learning rate.</param>
    /// <param name="seed">Seed of everything random.</param>
    public static VisionTransformerTrainer VisionTransformer(this MulticlassClassificationCatalog.MulticlassClassificationTrainers catalog,
        string labelColumnName = "Label", string featureColumnName = "Features", string? softLabelColumnName = null,
        int epochs = 10, int batchSize = 128, double learningRate = 1e-3, int seed = 0) =>
        catalog.VisionTransformer(new VisionTransformerTrainerOptions
        {
            LabelColumnName = labelColumnName,
            FeatureColumnName = featureColumnName,
            SoftLabelColumnName = softLabelColumnName,
            Epochs = epochs,
            BatchSize = batchSize,
            LearningRate = learningRate,
            Seed = seed,
        });
}
