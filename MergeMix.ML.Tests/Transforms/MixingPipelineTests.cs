using MergeMix.ML.Data;
using MergeMix.ML.Mixing;
using MergeMix.ML.Transforms;
using MergeMix.ML.Vision;
using Microsoft.ML;
using Microsoft.ML.Data;
using static TorchSharp.torch;

namespace MergeMix.ML.Tests.Transforms;

[TestClass]
public sealed class MixingPipelineTests
{
    /// <summary>Images whose pixel values encode (row, channel): easy to tell where a mixed pixel came from.</summary>
    internal static LabeledImageSet Rows(int count, int classes = 3, int side = 8)
    {
        int size = 3 * side * side;
        var pixels = new float[count * size];
        for (int i = 0; i < count; i++)
            for (int j = 0; j < size; j++)
                pixels[i * size + j] = i * 10 + j / (side * side);
        return new LabeledImageSet(pixels, Enumerable.Range(0, count).Select(i => i % classes).ToArray(),
            Enumerable.Range(0, classes).Select(c => $"class{c}").ToArray(), 3, side, side);
    }

    /// <summary>Attention that prefers the top-left patches, fixed and known.</summary>
    private sealed class FixedAttention : IAttentionSource
    {
        public int PatchSize => 4;

        public Tensor PatchAttention(Tensor images)
        {
            long b = images.shape[0], l = images.shape[2] / 4 * (images.shape[3] / 4);
            return arange(l, 0, -1, dtype: ScalarType.Float32).unsqueeze(0).expand(b, l).contiguous();
        }
    }

    /// <summary>A pass-through estimator that records what the next stage of the chain receives during Fit.</summary>
    private sealed class Probe : IEstimator<ITransformer>
    {
        public float[][]? SeenFeatures;
        public float[][]? SeenSoftLabels;

        public ITransformer Fit(IDataView input)
        {
            SeenFeatures = input.GetColumn<float[]>("Features").ToArray();
            SeenSoftLabels = input.GetColumn<float[]>("SoftLabel").ToArray();
            return new MLContext().Transforms.CopyColumns("ProbeCopy", "Features").Fit(input);
        }

        public SchemaShape GetOutputSchema(SchemaShape inputSchema) =>
            new MLContext().Transforms.CopyColumns("ProbeCopy", "Features").GetOutputSchema(inputSchema);
    }

    private static MixingEstimator.Options MergeMixOptions(int seed = 3) =>
        new() { Policy = MixingPolicy.MergeMix, AttentionSource = new FixedAttention(), BatchSize = 4, Seed = seed };

    [TestMethod]
    public void MixesDuringFitButNotAtScoring()
    {
        var ml = new MLContext(1);
        var set = Rows(8);
        var data = set.ToDataView(ml);
        var probe = new Probe();
        var model = new EstimatorChain<ITransformer>()
            .Append(ml.Transforms.Mix(MergeMixOptions()), TransformerScope.Training)
            .Append(probe)
            .Fit(data);

        // Fit: the next estimator saw mixed images and soft labels that sum to 1.
        Assert.IsNotNull(probe.SeenFeatures);
        int changed = Enumerable.Range(0, set.Count).Count(i => !probe.SeenFeatures![i].SequenceEqual(set.Image(i).ToArray()));
        Assert.AreEqual(set.Count, changed, "every row must be mixed with another row");
        foreach (var soft in probe.SeenSoftLabels!) Assert.AreEqual(1f, soft.Sum(), 1e-6f);

        // Scoring: the chain leaves the images untouched and has no mixer columns.
        var scored = model.Transform(data);
        var features = scored.GetColumn<float[]>("Features").ToArray();
        for (int i = 0; i < set.Count; i++) CollectionAssert.AreEqual(set.Image(i).ToArray(), features[i]);
        Assert.IsNull(scored.Schema.GetColumnOrNull("SoftLabel"));
    }

    [TestMethod]
    public void MixedPixelsComeFromTheRowOrItsPartnerAndLabelsWeighTheRightClasses()
    {
        var ml = new MLContext(1);
        var set = Rows(8);
        var mixed = ml.Transforms.Mix(MergeMixOptions()).Fit(set.ToDataView(ml)).Transform(set.ToDataView(ml));
        var images = mixed.GetColumn<float[]>("Features").ToArray();
        var soft = mixed.GetColumn<float[]>("SoftLabel").ToArray();
        var lambda = mixed.GetColumn<float>("MixRatio").ToArray();
        for (int i = 0; i < set.Count; i++)
        {
            // Pixel value = row·10 + channel, so the source row of every pixel is known.
            var sources = images[i].Select(v => (int)(v / 10)).Distinct().ToArray();
            Assert.IsTrue(sources.Length == 2 && sources.Contains(i), $"row {i} mixes itself with one partner, got rows {string.Join(",", sources)}");
            int partner = sources.Single(s => s != i);
            float ownShare = images[i].Count(v => (int)(v / 10) == i) / (float)images[i].Length;
            Assert.AreEqual(ownShare, lambda[i], 1e-6f, "λ is the share of the row's own pixels");
            var expected = new float[3];
            expected[set.Labels[i]] += lambda[i];
            expected[set.Labels[partner]] += 1 - lambda[i];
            CollectionAssert.AreEqual(expected, soft[i], new FloatComparer(1e-6f));
        }
    }

    [TestMethod]
    public void SameSeedSameOutputOtherSeedOtherOutput()
    {
        var ml = new MLContext(1);
        var set = Rows(8);
        float[][] Run(int seed) => ml.Transforms.Mix(MergeMixOptions(seed)).Fit(set.ToDataView(ml)).Transform(set.ToDataView(ml))
            .GetColumn<float[]>("Features").ToArray();
        var a = Run(5);
        var b = Run(5);
        var c = Run(6);
        for (int i = 0; i < a.Length; i++) CollectionAssert.AreEqual(a[i], b[i]);
        Assert.IsTrue(Enumerable.Range(0, a.Length).Any(i => !a[i].SequenceEqual(c[i])));
    }

    [TestMethod]
    public void KeepsOtherColumnsAndWritesANewImageColumnWhenAsked()
    {
        var ml = new MLContext(1);
        var set = Rows(6);
        var data = ml.Transforms.CopyColumns("Original", "Features").Fit(set.ToDataView(ml)).Transform(set.ToDataView(ml));
        var options = MergeMixOptions();
        options.OutputColumnName = "Mixed";
        var output = ml.Transforms.Mix(options).Fit(data).Transform(data);
        var original = output.GetColumn<float[]>("Original").ToArray();
        var features = output.GetColumn<float[]>("Features").ToArray();
        var mixedImages = output.GetColumn<float[]>("Mixed").ToArray();
        for (int i = 0; i < set.Count; i++)
        {
            CollectionAssert.AreEqual(set.Image(i).ToArray(), original[i]);
            CollectionAssert.AreEqual(set.Image(i).ToArray(), features[i]);
            CollectionAssert.AreNotEqual(set.Image(i).ToArray(), mixedImages[i]);
        }
        var slotNames = default(VBuffer<ReadOnlyMemory<char>>);
        output.Schema["SoftLabel"].GetSlotNames(ref slotNames);
        CollectionAssert.AreEqual(new[] { "class0", "class1", "class2" }, slotNames.DenseValues().Select(s => s.ToString()).ToArray());
    }

    private sealed class Row
    {
        [VectorType(3, 8, 8)] public float[] Features { get; set; } = Array.Empty<float>();
    }

    private sealed class Prediction
    {
        public uint PredictedLabel { get; set; }
        public float[] Score { get; set; } = Array.Empty<float>();
    }

    [TestMethod]
    public void PredictionEngineAndModelSaveWorkOnAChainWithTheMixer()
    {
        var ml = new MLContext(1);
        var set = Rows(30);
        var data = set.ToDataView(ml);
        var model = new EstimatorChain<ITransformer>()
            .Append(ml.Transforms.Mix(MergeMixOptions()), TransformerScope.Training)
            .Append(ml.MulticlassClassification.Trainers.SdcaMaximumEntropy("Label", "Features", maximumNumberOfIterations: 5))
            .Fit(data);

        var engine = ml.Model.CreatePredictionEngine<Row, Prediction>(model);
        var row = new Row { Features = set.Image(4).ToArray() };
        var before = engine.Predict(row);
        Assert.AreEqual(3, before.Score.Length);

        var path = Path.Combine(Path.GetTempPath(), $"mergemix-chain-{Guid.NewGuid():N}.zip");
        try
        {
            ml.Model.Save(model, data.Schema, path);
            var loaded = ml.Model.Load(path, out _);
            var after = ml.Model.CreatePredictionEngine<Row, Prediction>(loaded).Predict(row);
            CollectionAssert.AreEqual(before.Score, after.Score);
            Assert.AreEqual(before.PredictedLabel, after.PredictedLabel);
        }
        finally
        {
            File.Delete(path);
        }
    }

    [TestMethod]
    public void FitTrainsAnAttentionModelWhenNoneIsGiven()
    {
        var ml = new MLContext(1);
        var set = Rows(16, side: 8);
        var estimator = ml.Transforms.Mix(new MixingEstimator.Options
        {
            Policy = MixingPolicy.MergeMix,
            BatchSize = 8,
            AttentionTraining = new AttentionModelOptions { Epochs = 1, BatchSize = 8, Model = new VisionTransformerOptions { PatchSize = 4, Width = 16, Depth = 2, Heads = 2 } },
        });
        var transformer = estimator.Fit(set.ToDataView(ml));
        Assert.IsNotNull(transformer.AttentionSource);
        using var scores = transformer.AttentionSource!.PatchAttention(tensor(set.Pixels, new long[] { 16, 3, 8, 8 }));
        CollectionAssert.AreEqual(new long[] { 16, 4 }, scores.shape);
    }

    [TestMethod]
    public void BadInputsGetClearErrors()
    {
        var ml = new MLContext(1);
        var data = Rows(6).ToDataView(ml);

        var missing = MergeMixOptions();
        missing.InputColumnName = "Pixels";
        StringAssert.Contains(Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => ml.Transforms.Mix(missing).Fit(data)).Message, "'Pixels'");

        var notKey = ml.Transforms.Conversion.MapKeyToValue("Label").Fit(data).Transform(data);
        StringAssert.Contains(Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => ml.Transforms.Mix(MergeMixOptions()).Fit(notKey)).Message, "key");

        var alpha = MergeMixOptions();
        alpha.Alpha = 0;
        StringAssert.Contains(Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => ml.Transforms.Mix(alpha)).Message, "Alpha");

        var one = Rows(1).ToDataView(ml);
        StringAssert.Contains(Assert.ThrowsExactly<InvalidOperationException>(() => ml.Transforms.Mix(MergeMixOptions()).Fit(one).Transform(one)).Message, "at least 2 rows");

        var pixels = Rows(4).Pixels.ToArray();
        pixels[7] = float.NaN;
        var nan = new LabeledImageSet(pixels, new[] { 0, 1, 2, 0 }, new[] { "a", "b", "c" }, 3, 8, 8).ToDataView(ml);
        StringAssert.Contains(Assert.ThrowsExactly<InvalidOperationException>(() => ml.Transforms.Mix(MergeMixOptions()).Fit(nan).Transform(nan)).Message, "NaN");

        // 3×6×6 images cannot be cut into 4-pixel patches.
        var odd = new LabeledImageSet(new float[4 * 108], new[] { 0, 1, 0, 1 }, new[] { "a", "b" }, 3, 6, 6).ToDataView(ml);
        var notDivisible = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => ml.Transforms.Mix(MergeMixOptions()).Fit(odd).Transform(odd));
        StringAssert.Contains(notDivisible.Message, "'Features' holds 6×6 images");
        StringAssert.Contains(notDivisible.Message, "4-pixel patches");

        var mergeCount = new MixingEstimator.Options { Policy = MixingPolicy.MergeMix, AttentionTraining = new AttentionModelOptions { Model = new VisionTransformerOptions { MergeCount = 4, PatchSize = 4 } } };
        StringAssert.Contains(Assert.ThrowsExactly<ArgumentException>(() => ml.Transforms.Mix(mergeCount).Fit(data)).Message, "MergeCount");
    }

    private sealed class FloatComparer(float tolerance) : System.Collections.IComparer
    {
        public int Compare(object? x, object? y) => Math.Abs((float)x! - (float)y!) <= tolerance ? 0 : 1;
    }
}
