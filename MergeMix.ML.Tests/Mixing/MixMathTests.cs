using MergeMix.ML.Mixing;
using TorchSharp;
using static TorchSharp.torch;
using static MergeMix.ML.Tests.Mixing.MixTestData;

namespace MergeMix.ML.Tests.Mixing;

[TestClass]
public sealed class MixMathTests
{
    [TestMethod]
    public void SoftLabelsWeighBothClassesAndGiveOneForTheSameClass()
    {
        using var labels = Labels(0, 2, 2, 1);
        using var partner = Labels(1, 2, 3, 0);   // row 1 (class 2) is paired with row 2 (class 2)
        using var lambda = torch.tensor(new float[] { 0.3f, 0.7f, 0.25f, 1f });
        using var soft = MixMath.SoftLabels(labels, partner, lambda, 3);
        CollectionAssert.AreEqual(new long[] { 4, 3 }, soft.shape);
        float[] expected =
        {
            0.3f, 0f, 0.7f,
            0f, 0f, 1f,
            0f, 0.75f, 0.25f,
            0f, 1f, 0f,
        };
        float[] actual = Floats(soft);
        for (int i = 0; i < expected.Length; i++) Assert.AreEqual(expected[i], actual[i], 1e-6f, $"entry {i}");
        Assert.AreEqual(1f, actual[5], "same-class rows must carry exactly 1");
    }

    [TestMethod]
    public void TopScoreMaskKeepsTheHighestScoresAndBreaksTiesByIndex()
    {
        using var scores = torch.tensor(new float[] { 1, 3, 3, 2, 5, 5, 5, 5 }, new long[] { 2, 4 });
        using var two = MixMath.TopScoreMask(scores, 2);
        CollectionAssert.AreEqual(new float[] { 0, 1, 1, 0, 1, 1, 0, 0 }, Floats(two));
        using var three = MixMath.TopScoreMask(scores, 3);
        CollectionAssert.AreEqual(new float[] { 0, 1, 1, 1, 1, 1, 1, 0 }, Floats(three));
        using var none = MixMath.TopScoreMask(scores, 0);
        CollectionAssert.AreEqual(new float[8], Floats(none));
    }

    [TestMethod]
    public void RescaledLambdaMinMaxNormalisesTheGaussianDrawsOverTheBatch()
    {
        // z = 0.5 + 1·n = [0.5, 1.5, −0.5, 2.5]: min −0.5, range 3 (+ τ).
        using var noise = torch.tensor(new double[] { 0, 1, -1, 2 });
        using var ones = torch.ones(4);
        using var lambda = MixMath.RescaledLambda(noise, 0.5, ones, 1e-5);
        Assert.AreEqual(ScalarType.Float32, lambda.dtype);
        CollectionAssert.AreEqual(new[] { (float)(1 / 3.00001), (float)(2 / 3.00001), 0f, (float)(3 / 3.00001) }, lambda.data<float>().ToArray());

        // Per-row σ: z = 0 + [0.5, 2]·1 = [0.5, 2] → [0, 1.5 / (1.5 + τ)].
        using var two = torch.tensor(new double[] { 1, 1 });
        using var std = torch.tensor(new float[] { 0.5f, 2f });
        using var perRow = MixMath.RescaledLambda(two, 0, std, 1e-5);
        CollectionAssert.AreEqual(new[] { 0f, (float)(1.5 / 1.50001) }, perRow.data<float>().ToArray());

        // Equal draws: every row gets 0 (τ keeps 0/0 away), and the result stays in [0, 1].
        using var same = torch.full(3, 0.7, ScalarType.Float64);
        using var flat = MixMath.RescaledLambda(same, 0.5, torch.ones(3), 1e-5);
        CollectionAssert.AreEqual(new[] { 0f, 0f, 0f }, flat.data<float>().ToArray());
        Assert.ThrowsExactly<ArgumentException>(() => MixMath.RescaledLambda(noise, 0.5, torch.ones(3)));
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => MixMath.RescaledLambda(noise, 0.5, ones, 0));
    }

    [TestMethod]
    public void KeepCountIsTheFloorOfLambdaTimesCount()
    {
        Assert.AreEqual(8, MixMath.KeepCount(0.5, 16));
        Assert.AreEqual(15, MixMath.KeepCount(0.999, 16));
        Assert.AreEqual(16, MixMath.KeepCount(1.0, 16));
        Assert.AreEqual(0, MixMath.KeepCount(0.0624, 16));
    }

    [TestMethod]
    public void UpsamplePatchMaskRepeatsEachPatchOverItsPixels()
    {
        using var patches = torch.tensor(new float[] { 1, 0, 0, 1 }, new long[] { 1, 4 });
        using var pixels = MixMath.UpsamplePatchMask(patches, 2, 2, 2);
        CollectionAssert.AreEqual(new long[] { 1, 1, 4, 4 }, pixels.shape);
        CollectionAssert.AreEqual(new float[]
        {
            1, 1, 0, 0,
            1, 1, 0, 0,
            0, 0, 1, 1,
            0, 0, 1, 1,
        }, Floats(pixels));
    }

    [TestMethod]
    public void PatchShareAveragesThePixelMaskPerPatch()
    {
        using var mask = torch.tensor(new float[]
        {
            1, 1, 0, 0,
            1, 0, 0, 0,
            0, 0, 1, 1,
            0, 0, 1, 1,
        }, new long[] { 1, 1, 4, 4 });
        using var share = MixMath.PatchShare(mask, 2);
        CollectionAssert.AreEqual(new float[] { 0.75f, 0f, 0f, 1f }, Floats(share));
    }

    [TestMethod]
    public void CutBoxIsClippedAtTheCornerAndLambdaIsAreaCorrected()
    {
        // 6×4 box centred at (1, 7) of a 10×8 image: rows −2..4 → 0..4, columns 5..9 → 5..8.
        var box = MixMath.CenteredBox(10, 8, 1, 7, 6, 4);
        Assert.AreEqual(new PixelBox(0, 5, 4, 8), box);
        Assert.AreEqual(12L, box.Area);
        Assert.AreEqual(1 - 12.0 / 80, MixMath.BoxLambda(box, 10, 8), 1e-12);

        var inside = MixMath.CenteredBox(10, 8, 5, 4, 6, 4);
        Assert.AreEqual(new PixelBox(2, 2, 8, 6), inside);
        Assert.AreEqual(0.7, MixMath.BoxLambda(inside, 10, 8), 1e-12);

        var odd = MixMath.CenteredBox(10, 10, 5, 5, 5, 3);
        Assert.AreEqual(new PixelBox(3, 4, 8, 7), odd);
    }

    [TestMethod]
    public void CutSizeScalesBothSidesBySqrtOneMinusLambda()
    {
        Assert.AreEqual((5, 4), MixMath.CutSize(10, 8, 0.75));
        Assert.AreEqual((0, 0), MixMath.CutSize(10, 8, 1.0));
        Assert.AreEqual((10, 8), MixMath.CutSize(10, 8, 0.0));
        Assert.AreEqual((7, 7), MixMath.CutSize(10, 10, 0.5)); // √0.5·10 = 7.07
    }

    [TestMethod]
    public void BoxMaskIsZeroInsideTheBox()
    {
        using var mask = MixMath.BoxMask(2, 3, 4, new PixelBox(1, 1, 3, 3), torch.CPU);
        float[] one = { 1, 1, 1, 1, 1, 0, 0, 1, 1, 0, 0, 1 };
        CollectionAssert.AreEqual(one.Concat(one).ToArray(), Floats(mask));
    }

    [TestMethod]
    public void AttentionLambdaWeighsThePatchSharesByAttention()
    {
        using var attention = torch.tensor(new float[] { 1, 0, 0, 3, 0, 0, 0, 0 }, new long[] { 2, 4 });
        using var share = torch.tensor(new float[] { 0.5f, 1, 1, 0, 1, 1, 0, 0 }, new long[] { 2, 4 });
        using var fallback = torch.tensor(new float[] { 0.9f, 0.6f });
        using var lambda = MixMath.AttentionLambda(attention, share, fallback);
        // Row 0: (1·0.5 + 3·0) / 4; row 1 has no attention mass and keeps its area λ.
        CollectionAssert.AreEqual(new float[] { 0.125f, 0.6f }, Floats(lambda));
    }
}
