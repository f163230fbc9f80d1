using MergeMix.ML.Mixing;
using TorchSharp;
using static TorchSharp.torch;
using static MergeMix.ML.Tests.Mixing.MixTestData;

namespace MergeMix.ML.Tests.Mixing;

[TestClass]
public sealed class SwitchingPolicyTests
{
    [TestMethod]
    public void TransMixLambdaIsTheAttentionOnOriginalPixels()
    {
        // Patch size 1 and all attention on pixel (0, 0): λ is 1 if that pixel is the original's, else 0.
        const int side = 8;
        var attention = new FakeAttention(1, images =>
        {
            var scores = torch.zeros(images.shape[0], side * side);
            scores[TensorIndex.Colon, 0] = 1;
            return scores;
        });
        using var images = DistinctImages(3, 2, side, side);
        long[] labels = { 0, 1, 2 };
        using var y = Labels(labels);
        var policy = new TransMixPolicy { MixupProbability = 0 };
        var seen = new HashSet<float>();
        for (ulong seed = 0; seed < 30; seed++)
        {
            using var g = new torch.Generator(seed);
            using var result = policy.Mix(images, y, 3, g, attention);
            float[] mask = Floats(result.Mask!), lambda = Floats(result.Lambda);
            for (int b = 0; b < 3; b++)
            {
                Assert.AreEqual(mask[b * side * side], lambda[b], $"seed {seed}, row {b}");
                seen.Add(lambda[b]);
            }
            AssertMaskSelects(images, result);
            AssertSoftLabels(result, labels, 3);
        }
        CollectionAssert.AreEquivalent(new[] { 0f, 1f }, seen.ToArray());
    }

    [TestMethod]
    public void TransMixWithUniformAttentionGivesTheAreaLambdaAndSeesTheMixedImages()
    {
        // Copied out as values: tensors made inside Mix belong to its dispose scope.
        float[]? seenInput = null;
        var attention = new FakeAttention(2, images =>
        {
            seenInput = Floats(images);
            return torch.ones(images.shape[0], 16);
        });
        using var images = DistinctImages(2, 1, 8, 8);
        using var y = Labels(1, 0);
        for (ulong seed = 0; seed < 5; seed++)
        {
            using var g = new torch.Generator(seed);
            using var result = new TransMixPolicy { MixupProbability = 0 }.Mix(images, y, 2, g, attention);
            float[] mask = Floats(result.Mask!), lambda = Floats(result.Lambda);
            Assert.AreEqual(mask.Take(64).Average(), lambda[0], 1e-6);
            Assert.AreEqual(mask.Skip(64).Average(), lambda[1], 1e-6);
            CollectionAssert.AreEqual(Floats(result.Mixed), seenInput, "attention must be taken on the mixed batch");
        }
    }

    [TestMethod]
    public void TransMixMixupBranchSkipsTheAttention()
    {
        var attention = FakeAttention.Fixed(2, new[] { new float[16], new float[16] });
        using var images = DistinctImages(2, 1, 8, 8);
        using var y = Labels(1, 0);
        using var g = new torch.Generator(9);
        using var result = new TransMixPolicy { MixupProbability = 1 }.Mix(images, y, 2, g, attention);
        using var replay = new torch.Generator(9);
        MixRandom.Uniform(replay);
        double lambda = MixRandom.Beta(0.8, replay);
        Assert.IsNull(result.Mask);
        CollectionAssert.AreEqual(new[] { (float)lambda, (float)lambda }, Floats(result.Lambda));
        Assert.AreEqual(0, attention.Calls);

        var missing = Assert.ThrowsExactly<InvalidOperationException>(() => new TransMixPolicy().Mix(images, y, 2, g));
        StringAssert.Contains(missing.Message, "attention source");
    }

    [TestMethod]
    public void TransMixUsesMixupAboutOneBatchInFive()
    {
        var attention = new FakeAttention(2, images => torch.ones(images.shape[0], 16));
        using var images = DistinctImages(2, 1, 8, 8);
        using var y = Labels(1, 0);
        var policy = new TransMixPolicy();
        int mixup = 0;
        for (ulong seed = 0; seed < 100; seed++)
        {
            using var g = new torch.Generator(seed);
            using var result = policy.Mix(images, y, 2, g, attention);
            if (result.Mask is null) mixup++;
        }
        Assert.IsTrue(mixup >= 8 && mixup <= 32, $"{mixup} MixUp batches of 100 at p = 0.2");
    }

    [TestMethod]
    public void DeitSwitchesBetweenMixupAndCutMix()
    {
        using var images = DistinctImages(4, 1, 8, 8);
        long[] labels = { 0, 1, 2, 3 };
        using var y = Labels(labels);
        var policy = new DeitMixPolicy();
        int cutmix = 0, mixup = 0;
        for (ulong seed = 0; seed < 40; seed++)
        {
            using var g = new torch.Generator(seed);
            using var result = policy.Mix(images, y, 4, g);
            using var replay = new torch.Generator(seed);
            bool expectCut = MixRandom.Uniform(replay) < 0.5;
            Assert.AreEqual(expectCut, result.Mask is not null, $"seed {seed}");
            if (expectCut)
            {
                cutmix++;
                AssertMaskSelects(images, result);
            }
            else
            {
                mixup++;
                Assert.AreEqual((float)MixRandom.Beta(0.8, replay), Floats(result.Lambda)[0]);
            }
            AssertSoftLabels(result, labels, 4);
        }
        Assert.IsTrue(cutmix >= 8 && mixup >= 8, $"CutMix {cutmix}, MixUp {mixup}");
        using var always = new torch.Generator(0);
        using var cut = new DeitMixPolicy { SwitchProbability = 1 }.Mix(images, y, 4, always);
        Assert.IsNotNull(cut.Mask);
    }
}
