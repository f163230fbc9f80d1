using MergeMix.ML.Classification;
using Microsoft.ML;
using Microsoft.ML.Data;
using static MergeMix.ML.Tests.Classification.TinyClassifier;

namespace MergeMix.ML.Tests.EntryPoints;

/// <summary>Transform and the prediction engine of the classifier read pixels through one path and reject the same inputs.</summary>
[TestClass]
public sealed class ClassifierEntryPointTests
{
    private static VisionTransformerClassifier? _classifier;

    [ClassInitialize]
    public static void Train(TestContext _)
    {
        var ml = new MLContext(1);
        _classifier = ml.MulticlassClassification.Trainers.VisionTransformer(Options()).Fit(Shapes(32, 1).ToDataView(ml));
    }

    [ClassCleanup]
    public static void Cleanup() => _classifier?.Dispose();

    private sealed class FlatInput
    {
        public float[] Features { get; set; } = Array.Empty<float>();
    }

    private static float[] Image(int seed) => Shapes(1, seed).Image(0).ToArray();

    [TestMethod]
    public void PredictionEngineRejectsShortEmptyAndLongImagesWithTransformsError()
    {
        var ml = new MLContext(1);
        var engine = ml.Model.CreatePredictionEngine<ImageInput, ImagePrediction>(_classifier!);
        var full = Image(3);
        var reference = engine.Predict(new ImageInput { Features = full }).Score;
        int size = full.Length;
        foreach (var length in new[] { size - 5, 0, size + 5 })
        {
            var bad = new float[length];
            Array.Copy(full, bad, Math.Min(length, size));
            var fromEngine = Assert.ThrowsExactly<InvalidOperationException>(() => engine.Predict(new ImageInput { Features = bad }), $"length {length}");
            StringAssert.Contains(fromEngine.Message, $"Column 'Features', row ");
            StringAssert.Contains(fromEngine.Message, $": the image has {length} values, but the column holds 3×16×16 = {size}");
            // The engine is still usable and gives the same scores as before the bad input (no stale pixels).
            CollectionAssert.AreEqual(reference, engine.Predict(new ImageInput { Features = full }).Score);
        }

        // Transform through a typed view that does not check lengths reports the same error, with the row number.
        var rows = new[] { new ImageInput { Features = full }, new ImageInput { Features = new float[size - 5] } };
        var fromTransform = Assert.ThrowsExactly<InvalidOperationException>(
            () => _classifier!.Transform(ml.Data.LoadFromEnumerable(rows)).GetColumn<float[]>("Score").ToArray());
        StringAssert.Contains(fromTransform.Message, $"Column 'Features', row 1: the image has {size - 5} values, but the column holds 3×16×16 = {size}");
    }

    [TestMethod]
    public void PredictionEngineRejectsNaNPixelsLikeTransform()
    {
        var ml = new MLContext(1);
        var engine = ml.Model.CreatePredictionEngine<ImageInput, ImagePrediction>(_classifier!);
        var nan = Image(4);
        nan[17] = float.NaN;
        var fromEngine = Assert.ThrowsExactly<InvalidOperationException>(() => engine.Predict(new ImageInput { Features = nan }));
        StringAssert.Contains(fromEngine.Message, "Column 'Features', row 0: value 17 is NaN");
        var data = ml.Data.LoadFromEnumerable(new[] { new ImageInput { Features = Image(5) }, new ImageInput { Features = nan } });
        var fromTransform = Assert.ThrowsExactly<InvalidOperationException>(() => _classifier!.Transform(data).GetColumn<uint>("PredictedLabel").ToArray());
        StringAssert.Contains(fromTransform.Message, "Column 'Features', row 1: value 17 is NaN");
    }

    [TestMethod]
    public void TransformIsLazyAndScoresPerBatch()
    {
        var ml = new MLContext(1);
        var set = Shapes(40, 2);
        int reads = 0;
        var counted = ml.Data.LoadFromEnumerable(Enumerable.Range(0, set.Count).Select(i =>
        {
            Interlocked.Increment(ref reads);
            return new ImageInput { Features = set.Image(i).ToArray() };
        }));
        _classifier!.ScoringBatchSize = 8;
        IDataView scored;
        try
        {
            scored = _classifier.Transform(counted);
        }
        finally
        {
            _classifier.ScoringBatchSize = 256;
        }
        Assert.AreEqual(0, reads, "Transform read rows");
        // Reading the first rows scores one batch, not the whole input.
        using (var cursor = scored.GetRowCursor(scored.Schema.Where(c => c.Name == "Score")))
        {
            var getter = cursor.GetGetter<VBuffer<float>>(scored.Schema["Score"]);
            VBuffer<float> score = default;
            Assert.IsTrue(cursor.MoveNext());
            getter(ref score);
        }
        Assert.IsTrue(reads <= 12, $"{reads} rows read to score the first row (batches of 8)");

        // Same scores as the prediction engine, row by row, with the other columns passed through.
        var batch = scored.GetColumn<float[]>("Score").ToArray();
        var engine = ml.Model.CreatePredictionEngine<ImageInput, ImagePrediction>(_classifier!);
        for (int i = 0; i < set.Count; i += 7)
        {
            var one = engine.Predict(new ImageInput { Features = set.Image(i).ToArray() }).Score;
            for (int k = 0; k < one.Length; k++) Assert.AreEqual(batch[i][k], one[k], 1e-6f, $"row {i}, class {k}");
        }
        Assert.AreEqual(set.Count, scored.GetColumn<float[]>("Features").Count());
    }

    [TestMethod]
    public void GetOutputSchemaIsTheSchemaOfTransformAlsoWithHiddenAndReplacedColumns()
    {
        var ml = new MLContext(1);
        var set = Shapes(4, 3);
        var plain = ml.Data.LoadFromEnumerable(Enumerable.Range(0, set.Count).Select(i => new ImageInput { Features = set.Image(i).ToArray() }));
        // CopyColumns onto an existing name hides the earlier column; a "Score" input column is replaced by the output.
        var hidden = ml.Transforms.CopyColumns("Features", "Features").Append(ml.Transforms.CopyColumns("Score", "Features")).Fit(plain).Transform(plain);
        Assert.IsTrue(hidden.Schema.Any(c => c.IsHidden), "the input has a hidden column");
        foreach (var input in new[] { plain, hidden })
        {
            var promised = _classifier!.GetOutputSchema(input.Schema);
            var actual = _classifier.Transform(input).Schema;
            Assert.AreEqual(string.Join(", ", actual.Select(c => $"{c.Name}:{c.Type}{(c.IsHidden ? " (hidden)" : "")}")),
                string.Join(", ", promised.Select(c => $"{c.Name}:{c.Type}{(c.IsHidden ? " (hidden)" : "")}")));
            for (int i = 0; i < actual.Count; i++)
                CollectionAssert.AreEqual(actual[i].Annotations.Schema.Select(a => a.Name).ToArray(), promised[i].Annotations.Schema.Select(a => a.Name).ToArray(), actual[i].Name);
        }
    }

    // The same images with the class list in another order (a test folder lacking a class, or sorted differently).
    private static IDataView Relabelled(MLContext ml, MergeMix.ML.Data.LabeledImageSet set, string[] names) =>
        new MergeMix.ML.Data.LabeledImageSet(set.Pixels, set.Labels, names, set.Channels, set.Height, set.Width).ToDataView(ml);

    [TestMethod]
    public void TransformAndEvaluateRejectALabelColumnWhoseKeyNamesDiffer()
    {
        var ml = new MLContext(1);
        var set = Shapes(12, 2);
        var names = _classifier!.ClassNames.ToArray();
        var swapped = names.ToArray();
        (swapped[1], swapped[2]) = (swapped[2], swapped[1]);
        var e = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => ml.MulticlassClassification.Evaluate(_classifier.Transform(Relabelled(ml, set, swapped))));
        Assert.AreEqual("Label", e.ParamName);
        StringAssert.Contains(e.Message, $"Label column 'Label' has key 2 = '{swapped[1]}', but the classifier's key 2 is '{names[1]}'");
        StringAssert.Contains(e.Message, "classNames: classifier.ClassNames");
        var fewer = names.Take(5).ToArray();
        var shorter = new MergeMix.ML.Data.LabeledImageSet(set.Pixels, set.Labels.Select(l => Math.Min(l, 4)).ToArray(), fewer, 3, 16, 16).ToDataView(ml);
        StringAssert.Contains(Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => _classifier.Transform(shorter)).Message,
            $"only in the classifier: '{names[5]}'");
        // Matching names pass; so does data without a label column.
        _ = ml.MulticlassClassification.Evaluate(_classifier.Transform(set.ToDataView(ml)));
        _ = _classifier.Transform(ml.Data.LoadFromEnumerable(new[] { new ImageInput { Features = set.Image(0).ToArray() } })).GetColumn<uint>("PredictedLabel").ToArray();
    }

    [TestMethod]
    public void FitRejectsAValidationSetWhoseKeyNamesDiffer()
    {
        var ml = new MLContext(1);
        var train = Shapes(32, 1);
        var names = train.ClassNames.ToArray();
        var reversed = names.Reverse().ToArray();
        var options = Options();
        options.ValidationSet = Relabelled(ml, Shapes(12, 2), reversed);
        var e = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => ml.MulticlassClassification.Trainers.VisionTransformer(options).Fit(train.ToDataView(ml)));
        Assert.AreEqual("ValidationSet", e.ParamName);
        StringAssert.Contains(e.Message, $"has key 1 = '{reversed[0]}', but the training data's key 1 is '{names[0]}'");
    }
}
