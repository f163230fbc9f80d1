using MergeMix.ML.Classification;
using MergeMix.ML.Data;
using MergeMix.ML.Vision;
using TorchSharp;
using static TorchSharp.torch;

namespace MergeMix.ML.Tests.Bench;

[TestClass]
public sealed class OcclusionTests
{
    // 8×8 images with 4-pixel patches: a 2×2 grid, L = 4.
    // The DeiT initialisation (std 0.02) predicts one class for nearly every input; larger weights make the
    // predictions depend on the pixels, which the tests need.
    private static ImageClassifierModel TinyModel()
    {
        var model = new ImageClassifierModel(
            new VisionTransformerOptions { ImageSize = 8, PatchSize = 4, Width = 16, Depth = 1, Heads = 2, ClassCount = 3, MergeCount = 0, DropPathRate = 0 },
            new[] { 100f, 120f, 140f }, new[] { 60f, 50f, 40f }, new Generator(3));
        using var noGrad = no_grad();
        foreach (var p in model.parameters())
            if (p.dim() >= 2) p.mul_(50);
        return model;
    }

    private static float[] RandomPixels(int count, int seed)
    {
        var random = new Random(seed);
        return Enumerable.Range(0, count * 3 * 64).Select(_ => (float)random.Next(256)).ToArray();
    }

    private static int[] Predictions(ImageClassifierModel model, float[] pixels, int count)
    {
        var p = ClassifierTraining.PredictProbabilities(model, pixels, count);
        return Enumerable.Range(0, count).Select(i => Array.IndexOf(p, p.AsSpan(i * 3, 3).ToArray().Max(), i * 3) - i * 3).ToArray();
    }

    [TestMethod]
    public void NoMaskIsPlainAccuracyAndFullMaskIsTheMeanImagePrediction()
    {
        using var model = TinyModel();
        const int n = 40;
        var pixels = RandomPixels(n, 5);
        // Labels = the model's own clean predictions, so unmasked accuracy is exactly 1.
        var labels = Predictions(model, pixels, n);
        Assert.IsTrue(labels.Distinct().Count() >= 2, "the test needs a model whose predictions vary");
        var set = new LabeledImageSet(pixels, labels, new[] { "a", "b", "c" }, 3, 8, 8);

        // Every pixel replaced by the channel mean: one image, one prediction for all.
        var meanImage = Enumerable.Range(0, 3).SelectMany(c => Enumerable.Repeat(model.ChannelMean[c], 64)).ToArray();
        int meanClass = Predictions(model, meanImage, 1)[0];
        double expectedFull = labels.Count(l => l == meanClass) / (double)n;

        model.train();
        var curve = Occlusion.Curve(model, set, new[] { 0.0, 1.0 }, seed: 7);
        Assert.AreEqual(1.0, curve[0]);
        Assert.AreEqual(expectedFull, curve[1]);
        Assert.IsTrue(expectedFull < 1, "the full mask must change some predictions");
        Assert.IsTrue(model.training, "training flag not restored");
        Assert.AreEqual(ClassifierTraining.Evaluate(model, set).Accuracy, curve[0]);
    }

    [TestMethod]
    public void CurveIsDeterministicAndIndependentOfBatching()
    {
        using var model = TinyModel();
        const int n = 30;
        var pixels = RandomPixels(n, 11);
        var set = new LabeledImageSet(pixels, Predictions(model, pixels, n), new[] { "a", "b", "c" }, 3, 8, 8);
        var fractions = Occlusion.PaperFractions;

        var a = Occlusion.Curve(model, set, fractions, seed: 1, batchSize: 256);
        var b = Occlusion.Curve(model, set, fractions, seed: 1, batchSize: 7);
        CollectionAssert.AreEqual(a.ToArray(), b.ToArray());
        Assert.AreEqual(10, a.Count);
        // L = 4: fractions below 0.25 hide no patch, so they equal the unmasked accuracy.
        Assert.AreEqual(a[0], a[1]);
        Assert.AreEqual(a[0], a[2]);
    }

    [TestMethod]
    public void OccludeHidesExactlyTheTopScoredPatches()
    {
        // One 1-channel 4×4 image of ones, 2-pixel patches (2×2 grid); scores rank patches 3 > 0 > 2 > 1.
        using var images = ones(1, 1, 4, 4);
        using var scores = tensor(new float[] { 0.7f, 0.1f, 0.3f, 0.9f }).reshape(1, 4);
        using var fill = full(new long[] { 1, 1, 1, 1 }, 5f);
        using var two = Occlusion.Occlude(images, scores, 2, fill, grid: 2, patchSize: 2);
        var expected = new float[]
        {
            5, 5, 1, 1,
            5, 5, 1, 1,
            1, 1, 5, 5,
            1, 1, 5, 5,
        };
        CollectionAssert.AreEqual(expected, two.data<float>().ToArray());
        using var none = Occlusion.Occlude(images, scores, 0, fill, grid: 2, patchSize: 2);
        Assert.AreEqual(16f, none.sum().item<float>());
        using var all = Occlusion.Occlude(images, scores, 4, fill, grid: 2, patchSize: 2);
        Assert.AreEqual(80f, all.sum().item<float>());
    }

    [TestMethod]
    public void MaskedCountIsTheFloorOfTheShare()
    {
        Assert.AreEqual(0, Occlusion.MaskedCount(0.0, 64));
        Assert.AreEqual(6, Occlusion.MaskedCount(0.1, 64));
        Assert.AreEqual(19, Occlusion.MaskedCount(0.3, 64));
        Assert.AreEqual(57, Occlusion.MaskedCount(0.9, 64));
        Assert.AreEqual(64, Occlusion.MaskedCount(1.0, 64));
    }

    [TestMethod]
    public void RejectsBadArguments()
    {
        using var model = TinyModel();
        var set = new LabeledImageSet(RandomPixels(2, 1), new[] { 0, 1 }, new[] { "a", "b", "c" }, 3, 8, 8);
        Assert.AreEqual("fractions", Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => Occlusion.Curve(model, set, new[] { 1.5 }, 0)).ParamName);
        Assert.AreEqual("fractions", Assert.ThrowsExactly<ArgumentException>(() => Occlusion.Curve(model, set, Array.Empty<double>(), 0)).ParamName);
        Assert.AreEqual("batchSize", Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => Occlusion.Curve(model, set, new[] { 0.5 }, 0, 0)).ParamName);
        var wrongShape = new LabeledImageSet(new float[2 * 3 * 16 * 16], new[] { 0, 1 }, new[] { "a", "b", "c" }, 3, 16, 16);
        Assert.AreEqual("set", Assert.ThrowsExactly<ArgumentException>(() => Occlusion.Curve(model, wrongShape, new[] { 0.5 }, 0)).ParamName);
    }
}
