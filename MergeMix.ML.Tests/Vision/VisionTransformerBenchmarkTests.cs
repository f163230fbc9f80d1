using MergeMix.ML.Vision;
using TorchSharp;

namespace MergeMix.ML.Tests.Vision;

[TestClass]
public sealed class VisionTransformerBenchmarkTests
{
    [TestMethod]
    public void RestoresTrainingAndRejectsBadArguments()
    {
        using var model = new VisionTransformer(new VisionTransformerOptions
        {
            ImageSize = 8, PatchSize = 4, Width = 8, Depth = 2, Heads = 2, ClassCount = 3, MergeCount = 1,
        }, new torch.Generator(1));
        model.train();
        double rate = VisionTransformerBenchmark.ForwardImagesPerSecond(model, batch: 2, merge: true, iterations: 1);
        Assert.IsTrue(rate > 0 && double.IsFinite(rate), $"rate {rate}");
        Assert.IsTrue(model.training, "training flag not restored");
        Assert.AreEqual("batch", Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => VisionTransformerBenchmark.ForwardImagesPerSecond(model, 0, true, 1)).ParamName);
        Assert.AreEqual("iterations", Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => VisionTransformerBenchmark.ForwardImagesPerSecond(model, 1, true, 0)).ParamName);
    }
}
