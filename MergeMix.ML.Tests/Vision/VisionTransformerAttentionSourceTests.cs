using MergeMix.ML.Mixing;
using MergeMix.ML.Vision;
using TorchSharp;
using static TorchSharp.torch;

namespace MergeMix.ML.Tests.Vision;

[TestClass]
public sealed class VisionTransformerAttentionSourceTests
{
    private static VisionTransformer Model(int mergeCount) => new(new VisionTransformerOptions
    {
        ImageSize = 16, PatchSize = 4, Width = 16, Depth = 3, Heads = 2, ClassCount = 5, MergeCount = mergeCount,
        DropoutRate = 0.3, DropPathRate = 0.5,
    }, new Generator(5));

    [TestMethod]
    public void ScoresAreTheEvalModeRecoveredAttentionAndTrainingIsRestored()
    {
        using var model = Model(8);
        IAttentionSource source = new VisionTransformerAttentionSource(model);
        Assert.AreEqual(4, source.PatchSize);
        using var images = randn(new long[] { 2, 3, 16, 16 }, generator: new Generator(9));

        model.train();
        using var scores = source.PatchAttention(images);
        Assert.IsTrue(model.training, "training flag not restored");
        Assert.IsFalse(scores.requires_grad);
        CollectionAssert.AreEqual(new long[] { 2, 16 }, scores.shape);

        model.eval();
        using var scope = NewDisposeScope();
        using var reference = model.Forward(images, merge: true, captureAttention: true);
        CollectionAssert.AreEqual(reference.PatchAttention!.data<float>().ToArray(), scores.data<float>().ToArray());

        // With merging switched off on the model the source follows it (all 17 tokens reach block 2).
        model.MergeEnabled = false;
        using var unmerged = model.Forward(images, merge: false, captureAttention: true);
        CollectionAssert.AreEqual(unmerged.PatchAttention!.data<float>().ToArray(), source.PatchAttention(images).data<float>().ToArray());
        Assert.IsFalse(model.training);
    }

    [TestMethod]
    public void ScoresOutliveTheCallersScope()
    {
        using var model = Model(8);
        var source = new VisionTransformerAttentionSource(model);
        Tensor scores;
        using (var scope = NewDisposeScope())
        {
            using var images = randn(new long[] { 1, 3, 16, 16 }, generator: new Generator(9));
            scores = source.PatchAttention(images).MoveToOuterDisposeScope();
        }
        using (scores)
        {
            Assert.AreEqual(16, scores.shape[1]);
            Assert.IsTrue(scores.sum().item<float>() > 0);
        }
    }
}
