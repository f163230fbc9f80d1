using MergeMix.ML.Classification;
using MergeMix.ML.Data;
using MergeMix.ML.Vision;
using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;
using static TorchSharp.torch;

namespace MergeMix.ML.Tests.Persistence;

/// <summary>The ONNX graph of a classifier against the TorchSharp model it was written from (random weights).</summary>
[TestClass]
public sealed class OnnxExportTests
{
    internal const int Side = 16;
    internal static readonly string[] ClassNames = { "circle", "square", "triangle", "cross", "ring" };

    /// <summary>
    /// A classifier with random weights: 16 patches + CLS, 3 blocks, proportional attention, 7 merges spread over the
    /// blocks, non-trivial normalisation.
    /// </summary>
    internal static VisionTransformerClassifier RandomClassifier(bool merge, ulong seed = 3, double layerNormEpsilon = 1e-6)
    {
        var options = new VisionTransformerOptions
        {
            ImageSize = Side, PatchSize = 4, Width = 24, Depth = 3, Heads = 2, ClassCount = ClassNames.Length, MergeCount = 7, DropPathRate = 0.1,
            LayerNormEpsilon = layerNormEpsilon,
        };
        using var generator = new Generator(seed);
        var model = new ImageClassifierModel(options, new[] { 120f, 110f, 100f }, new[] { 60f, 55f, 70f }, generator);
        // DeiT's init puts std 0.02 on every weight: logits then all sit near 0. Larger weights give confident, spread
        // probabilities and token scores far from ties, so the comparisons below test the graph, not rounding.
        using (no_grad())
            foreach (var (name, p) in model.named_parameters())
                if (name.EndsWith("weight") && p.dim() >= 2 || name.Contains("clsToken") || name.Contains("posEmbed"))
                    p.normal_(0.0, 0.3, generator);
        model.eval();
        return new VisionTransformerClassifier(model, ClassNames, "Features", "Score", "PredictedLabel", Array.Empty<EpochReport>())
        {
            MergeAtInference = merge,
        };
    }

    internal static float[] RandomPixels(int count, int seed)
    {
        var random = new Random(seed);
        return Enumerable.Range(0, count * 3 * Side * Side).Select(_ => (float)random.Next(256)).ToArray();
    }

    internal static LabeledImageSet RandomImages(int count, int seed)
    {
        var random = new Random(seed + 1);
        return new LabeledImageSet(RandomPixels(count, seed), Enumerable.Range(0, count).Select(_ => random.Next(ClassNames.Length)).ToArray(),
            ClassNames, 3, Side, Side);
    }

    [TestMethod]
    [DataRow(false)]
    [DataRow(true)]
    public void ExportedGraphMatchesTorchSharpInOnnxRuntime(bool merge)
    {
        using var classifier = RandomClassifier(merge);
        const int count = 6;
        var pixels = RandomPixels(count, 11);
        var expected = ClassifierTraining.PredictProbabilities(classifier.Model, pixels, count);

        var file = new MemoryStream();
        classifier.ExportOnnx(file);
        using var session = new InferenceSession(file.ToArray());
        CollectionAssert.AreEqual(new[] { -1, 3, Side, Side }, session.InputMetadata["Features"].Dimensions);
        using var results = session.Run(new[] { NamedOnnxValue.CreateFromTensor("Features", new DenseTensor<float>(pixels, new[] { count, 3, Side, Side })) });
        var score = results.Single(r => r.Name == "Score").AsTensor<float>().ToArray();
        var labels = results.Single(r => r.Name == "PredictedLabel").AsTensor<string>().ToArray();

        Assert.AreEqual(expected.Length, score.Length);
        double worst = expected.Zip(score, (a, b) => Math.Abs(a - b)).Max();
        Assert.IsLessThan(1e-5, worst, $"largest |ONNX − TorchSharp| probability difference {worst}");
        int k = ClassNames.Length;
        var expectedLabels = Enumerable.Range(0, count).Select(r => ClassNames[ArgMax(expected.AsSpan(r * k, k))]).ToArray();
        CollectionAssert.AreEqual(expectedLabels, labels);
        // Random weights must still give different answers for different images, or the comparison proves little.
        Assert.IsGreaterThan(1, labels.Distinct().Count(), "every image got the same class");
    }

    [TestMethod]
    public void ExportedGraphUsesTheModelsLayerNormEpsilon()
    {
        // ε large enough to change the outputs, as a Hugging Face checkpoint's 1e-12 vs timm's 1e-6 would in principle.
        using var classifier = RandomClassifier(merge: false, layerNormEpsilon: 0.5);
        using var usual = RandomClassifier(merge: false);
        var pixels = RandomPixels(3, 12);
        var expected = ClassifierTraining.PredictProbabilities(classifier.Model, pixels, 3);
        var file = new MemoryStream();
        classifier.ExportOnnx(file);
        using var session = new InferenceSession(file.ToArray());
        using var results = session.Run(new[] { NamedOnnxValue.CreateFromTensor("Features", new DenseTensor<float>(pixels, new[] { 3, 3, Side, Side })) });
        var score = results.Single(r => r.Name == "Score").AsTensor<float>().ToArray();
        Assert.IsLessThan(1e-5, expected.Zip(score, (a, b) => Math.Abs(a - b)).Max());
        double gap = expected.Zip(ClassifierTraining.PredictProbabilities(usual.Model, pixels, 3), (a, b) => Math.Abs(a - b)).Max();
        Assert.IsGreaterThan(1e-3, gap, "ε = 0.5 should change the probabilities, or the comparison proves nothing");
    }

    [TestMethod]
    public void MergingChangesTheExportedGraph()
    {
        using var merging = RandomClassifier(merge: true);
        using var plain = RandomClassifier(merge: false);
        var pixels = RandomPixels(2, 5);
        float[] Run(VisionTransformerClassifier c)
        {
            var file = new MemoryStream();
            c.ExportOnnx(file);
            using var session = new InferenceSession(file.ToArray());
            using var results = session.Run(new[] { NamedOnnxValue.CreateFromTensor("Features", new DenseTensor<float>(pixels, new[] { 2, 3, Side, Side })) });
            return results.Single(r => r.Name == "Score").AsTensor<float>().ToArray();
        }
        double gap = Run(merging).Zip(Run(plain), (a, b) => Math.Abs(a - b)).Max();
        Assert.IsGreaterThan(1e-3, gap, "ToMe merging should change the probabilities of a random model");
    }

    [TestMethod]
    public void ExportOnnxWritesAFile()
    {
        using var classifier = RandomClassifier(merge: true);
        var path = Path.Combine(Path.GetTempPath(), $"mergemix-export-{Guid.NewGuid():N}.onnx");
        try
        {
            classifier.ExportOnnx(path);
            using var session = new InferenceSession(path);
            CollectionAssert.AreEquivalent(new[] { "Score", "PredictedLabel" }, session.OutputMetadata.Keys.ToArray());
        }
        finally
        {
            File.Delete(path);
        }
    }

    internal static int ArgMax(ReadOnlySpan<float> values)
    {
        int best = 0;
        for (int i = 1; i < values.Length; i++) if (values[i] > values[best]) best = i;
        return best;
    }
}
