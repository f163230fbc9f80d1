using MergeMix.ML.Classification;
using MergeMix.ML.Data;
using MergeMix.ML.Vision;
using Microsoft.ML.Data;
using TorchSharp;
using static TorchSharp.torch;

namespace MergeMix.ML.Tests.Classification;

/// <summary>Small synthetic data and a tiny ViT recipe: a training run takes well under a second.</summary>
internal static class TinyClassifier
{
    public const int Side = 16;

    public static LabeledImageSet Shapes(int count, int seed) =>
        SyntheticShapes.Generate(count, seed, new SyntheticShapesOptions { Width = Side, Height = Side }).Images;

    public static VisionTransformerTrainerOptions Options(int epochs = 1) => new()
    {
        Epochs = epochs,
        BatchSize = 16,
        LearningRate = 1e-3,
        MinLearningRate = 1e-4,
        WarmupEpochs = 0.5,
        Seed = 7,
        Model = new VisionTransformerOptions { PatchSize = 4, Width = 16, Depth = 2, Heads = 2, DropPathRate = 0.1 },
    };

    /// <summary>Every parameter and buffer of the model, by name, copied to the CPU.</summary>
    public static Dictionary<string, Tensor> State(ImageClassifierModel model) =>
        model.state_dict().ToDictionary(p => p.Key, p => p.Value.detach().cpu().clone());

    /// <summary>Names of the entries that are not bit-for-bit equal (empty when the states are identical).</summary>
    public static string[] Differences(ImageClassifierModel a, ImageClassifierModel b)
    {
        var x = State(a);
        var y = State(b);
        CollectionAssert.AreEquivalent(x.Keys.ToArray(), y.Keys.ToArray());
        return x.Keys.Where(k => !x[k].shape.SequenceEqual(y[k].shape) || !x[k].eq(y[k]).all().item<bool>()).ToArray();
    }

    /// <summary>Asserts that every parameter and buffer is bit-for-bit equal, naming those that are not.</summary>
    public static void AssertIdentical(ImageClassifierModel expected, ImageClassifierModel actual, string message = "") =>
        Assert.AreEqual("", string.Join(", ", Differences(expected, actual)), $"entries that differ. {message}");

    /// <summary>Asserts that at least one parameter differs.</summary>
    public static void AssertDifferent(ImageClassifierModel a, ImageClassifierModel b, string message = "") =>
        Assert.AreNotEqual(0, Differences(a, b).Length, $"the models are identical. {message}");

    /// <summary>Prediction-engine input: one 3×16×16 image.</summary>
    public sealed class ImageInput
    {
        [VectorType(3, Side, Side)] public float[] Features { get; set; } = Array.Empty<float>();
    }

    /// <summary>Prediction-engine output, with the predicted key mapped back to its class name.</summary>
    public sealed class ImagePrediction
    {
        public float[] Score { get; set; } = Array.Empty<float>();
        public uint PredictedLabel { get; set; }
        public string PredictedClass { get; set; } = "";
    }
}
