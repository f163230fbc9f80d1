using MergeMix.ML.Mixing;
using TorchSharp;
using static TorchSharp.torch;
using static MergeMix.ML.Tests.Mixing.MixTestData;

namespace MergeMix.ML.Tests.Mixing;

[TestClass]
public sealed class BaselinePolicyTests
{
    /// <summary>The zero pixels of row <paramref name="b"/>'s mask as a box, asserting they form one solid rectangle.</summary>
    private static PixelBox ZeroBox(float[] mask, int b, int height, int width)
    {
        var zeros = new List<(int Y, int X)>();
        for (int y = 0; y < height; y++)
            for (int x = 0; x < width; x++)
                if (mask[(b * height + y) * width + x] == 0f) zeros.Add((y, x));
        if (zeros.Count == 0) return default;
        var box = new PixelBox(zeros.Min(z => z.Y), zeros.Min(z => z.X), zeros.Max(z => z.Y) + 1, zeros.Max(z => z.X) + 1);
        Assert.AreEqual(box.Area, (long)zeros.Count, "the partner's pixels must form a solid rectangle");
        return box;
    }

    [TestMethod]
    public void MixupBlendsWithOneBetaLambda()
    {
        using var images = DistinctImages(3, 2, 4, 4);
        long[] labels = { 0, 1, 1 };
        using var y = Labels(labels);
        var policy = new MixupPolicy();
        Assert.AreEqual(0.8, policy.Alpha);
        for (ulong seed = 0; seed < 4; seed++)
        {
            using var g = new torch.Generator(seed);
            using var result = policy.Mix(images, y, 2, g);
            using var replay = new torch.Generator(seed);
            double lambda = MixRandom.Beta(0.8, replay);
            long[] partner = MixRandom.PartnerPermutation(3, replay);
            CollectionAssert.AreEqual(partner, Longs(result.Partner));
            Assert.IsNull(result.Mask);
            CollectionAssert.AreEqual(Enumerable.Repeat((float)lambda, 3).ToArray(), Floats(result.Lambda));
            float[] x = Floats(images), mixed = Floats(result.Mixed);
            int plane = 2 * 16;
            for (int b = 0; b < 3; b++)
                for (int i = 0; i < plane; i++)
                {
                    double expected = lambda * x[b * plane + i] + (1 - lambda) * x[partner[b] * plane + i];
                    Assert.AreEqual(expected, mixed[b * plane + i], 1e-5 * Math.Abs(expected) + 1e-4);
                }
            AssertSoftLabels(result, labels, 2);
        }
    }

    [TestMethod]
    public void CutMixPastesOneClippedBoxAndCorrectsLambda()
    {
        const int height = 10, width = 8;
        using var images = DistinctImages(4, 3, height, width);
        long[] labels = { 3, 0, 2, 1 };
        using var y = Labels(labels);
        var policy = new CutMixPolicy();
        Assert.AreEqual(2.0, policy.Alpha);
        bool clipped = false;
        for (ulong seed = 0; seed < 12; seed++)
        {
            using var g = new torch.Generator(seed);
            using var result = policy.Mix(images, y, 4, g);
            using var replay = new torch.Generator(seed);
            double lambda = MixRandom.Beta(2.0, replay);
            MixRandom.PartnerPermutation(4, replay);
            var (boxHeight, boxWidth) = MixMath.CutSize(height, width, lambda);
            int cy = MixRandom.UniformInt(height, replay), cx = MixRandom.UniformInt(width, replay);
            var expected = MixMath.CenteredBox(height, width, cy, cx, boxHeight, boxWidth);
            clipped |= expected.Height < boxHeight || expected.Width < boxWidth;

            float[] mask = Floats(result.Mask!);
            for (int b = 0; b < 4; b++) Assert.AreEqual(expected.Area == 0 ? default : expected, ZeroBox(mask, b, height, width));
            float area = (float)(1 - expected.Area / 80.0);
            CollectionAssert.AreEqual(Enumerable.Repeat(area, 4).ToArray(), Floats(result.Lambda));
            AssertMaskSelects(images, result);
            AssertSoftLabels(result, labels, 4);
        }
        Assert.IsTrue(clipped, "some seed should clip the box at the border");
    }

    [TestMethod]
    public void ResizeMixPastesTheShrunkPartnerAndLambdaIsOneMinusArea()
    {
        // Constant images: any bilinear shrink of image j is exactly its constant.
        const int side = 10;
        var values = new[] { 10f, 20f, 30f };
        using var images = torch.tensor(values.SelectMany(v => Enumerable.Repeat(v, 3 * side * side)).ToArray(), new long[] { 3, 3, side, side });
        long[] labels = { 0, 1, 2 };
        using var y = Labels(labels);
        var policy = new ResizeMixPolicy();
        for (ulong seed = 0; seed < 8; seed++)
        {
            using var g = new torch.Generator(seed);
            using var result = policy.Mix(images, y, 3, g);
            float[] mask = Floats(result.Mask!), mixed = Floats(result.Mixed);
            long[] partner = Longs(result.Partner);
            var box = ZeroBox(mask, 0, side, side);
            Assert.IsTrue(box.Height >= 1 && box.Height <= 8 && box.Height == box.Width, $"box {box} must be square with τ in [0.1, 0.8]");
            for (int b = 0; b < 3; b++)
            {
                Assert.AreEqual(box, ZeroBox(mask, b, side, side), "one box for the whole batch");
                for (int c = 0; c < 3; c++)
                    for (int p = 0; p < side * side; p++)
                    {
                        float expected = mask[b * side * side + p] == 1f ? values[b] : values[partner[b]];
                        Assert.AreEqual(expected, mixed[(b * 3 + c) * side * side + p], 1e-4f);
                    }
            }
            CollectionAssert.AreEqual(Enumerable.Repeat((float)(1 - box.Area / 100.0), 3).ToArray(), Floats(result.Lambda));
            AssertSoftLabels(result, labels, 3);
        }
    }

    [TestMethod]
    public void ResizeMixShrinksBilinearly()
    {
        // τ fixed at 0.5: a 4×4 image becomes 2×2, and a bilinear ×½ shrink averages each 2×2 block.
        float[] ramp = Enumerable.Range(0, 16).Select(i => (float)i).ToArray();
        using var images = torch.tensor(ramp.Concat(ramp.Select(v => v + 100)).ToArray(), new long[] { 2, 1, 4, 4 });
        using var y = Labels(0, 1);
        using var g = new torch.Generator(4);
        using var result = new ResizeMixPolicy { MinScale = 0.5, MaxScale = 0.5 }.Mix(images, y, 2, g);
        float[] mask = Floats(result.Mask!), mixed = Floats(result.Mixed);
        var box = ZeroBox(mask, 0, 4, 4);
        Assert.AreEqual(2, box.Height);
        Assert.AreEqual(2, box.Width);
        float[] blocks = { 2.5f, 4.5f, 10.5f, 12.5f };   // means of the 2×2 blocks of 0..15
        for (int by = 0; by < 2; by++)
            for (int bx = 0; bx < 2; bx++)
            {
                int pixel = (box.Top + by) * 4 + box.Left + bx;
                Assert.AreEqual(blocks[by * 2 + bx] + 100f, mixed[pixel], 1e-4f, "row 0 shows row 1 shrunk");
                Assert.AreEqual(blocks[by * 2 + bx], mixed[16 + pixel], 1e-4f, "row 1 shows row 0 shrunk");
            }
        Assert.AreEqual((112, 112), ResizeMixPolicy.BoxSize(224, 224, 0.5));
        Assert.AreEqual((1, 1), ResizeMixPolicy.BoxSize(10, 10, 0.05));
        var order = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => new ResizeMixPolicy { MinScale = 0.9 }.Mix(images, y, 2, g));
        Assert.AreEqual("MinScale", order.ParamName);
    }

    [TestMethod]
    public void FMixMaskMeanIsLambdaWithinOnePixel()
    {
        const int side = 8, pixels = side * side;
        using var images = DistinctImages(3, 2, side, side);
        long[] labels = { 1, 1, 0 };
        using var y = Labels(labels);
        var policy = new FMixPolicy();
        for (ulong seed = 0; seed < 6; seed++)
        {
            using var g = new torch.Generator(seed);
            using var result = policy.Mix(images, y, 2, g);
            using var replay = new torch.Generator(seed);
            double lambda = MixRandom.Beta(1.0, replay);
            float[] mask = Floats(result.Mask!);
            float[] first = mask.Take(pixels).ToArray();
            for (int b = 1; b < 3; b++) CollectionAssert.AreEqual(first, mask.Skip(b * pixels).Take(pixels).ToArray(), "one mask per batch");
            float mean = first.Sum() / pixels;
            Assert.AreEqual((float)Math.Floor(lambda * pixels) / pixels, mean);
            Assert.IsTrue(Math.Abs(mean - lambda) < 1.0 / pixels, $"mask mean {mean} vs λ {lambda}");
            CollectionAssert.AreEqual(Enumerable.Repeat(mean, 3).ToArray(), Floats(result.Lambda));
            AssertMaskSelects(images, result);
            AssertSoftLabels(result, labels, 2);
        }
    }

    [TestMethod]
    public void FMixNoiseIsLowFrequency()
    {
        // With δ = 3 the noise is dominated by the lowest frequencies: neighbouring pixels correlate strongly.
        using var g = new torch.Generator(11);
        using var noise = FMixPolicy.LowFrequencyNoise(32, 32, 3.0, g);
        double[] v = noise.data<double>().ToArray();
        double mean = v.Average(), var = v.Select(a => (a - mean) * (a - mean)).Average();
        double lag = 0;
        for (int yy = 0; yy < 32; yy++)
            for (int xx = 0; xx < 31; xx++)
                lag += (v[yy * 32 + xx] - mean) * (v[yy * 32 + xx + 1] - mean);
        double correlation = lag / (32 * 31) / var;
        Assert.IsTrue(correlation > 0.8, $"lag-1 correlation {correlation}");
    }

    private static Tensor SpotImages(int side, (int Y, int X) spot0, (int Y, int X) spot1)
    {
        var values = Enumerable.Repeat(0.2f, 2 * side * side).ToArray();
        foreach (var (b, spot) in new[] { (0, spot0), (1, spot1) })
            for (int dy = -1; dy <= 1; dy++)
                for (int dx = -1; dx <= 1; dx++)
                    values[b * side * side + (spot.Y + dy) * side + spot.X + dx] = dy == 0 && dx == 0 ? 1f : 0.8f;
        return torch.tensor(values, new long[] { 2, 1, side, side });
    }

    [TestMethod]
    public void SaliencyPeaksOnTheBrightSpot()
    {
        using var images = SpotImages(16, (3, 4), (12, 10));
        using var grey = SpectralResidual.Greyscale(images);
        using var saliency = SpectralResidual.Saliency(grey, 2.0);
        var peaks = SpectralResidual.Peaks(saliency);
        Assert.AreEqual((3, 4), peaks[0]);
        Assert.AreEqual((12, 10), peaks[1]);

        // Saliency is not brightness: a dark spot on a bright background is what stands out.
        using var dark = 1f - images;
        using var darkSaliency = SpectralResidual.Saliency(SpectralResidual.Greyscale(dark), 2.0);
        var darkPeaks = SpectralResidual.Peaks(darkSaliency);
        Assert.AreEqual((3, 4), darkPeaks[0]);
        Assert.AreEqual((12, 10), darkPeaks[1]);
    }

    [TestMethod]
    public void SaliencyMixCentresTheBoxOnThePartnersBrightSpot()
    {
        const int side = 16;
        using var images = SpotImages(side, (3, 4), (12, 10));
        long[] labels = { 0, 1 };
        using var y = Labels(labels);
        var policy = new SaliencyMixPolicy { Alpha = 1.0 };
        Assert.AreEqual(0.2, new SaliencyMixPolicy().Alpha);
        bool clippedDifferently = false;
        for (ulong seed = 0; seed < 6; seed++)
        {
            using var g = new torch.Generator(seed);
            using var result = policy.Mix(images, y, 2, g);
            using var replay = new torch.Generator(seed);
            var (boxHeight, boxWidth) = MixMath.CutSize(side, side, MixRandom.Beta(1.0, replay));
            CollectionAssert.AreEqual(new long[] { 1, 0 }, Longs(result.Partner));
            // Row 0 takes its box from image 1, centred on image 1's spot, and the reverse.
            var box0 = MixMath.CenteredBox(side, side, 12, 10, boxHeight, boxWidth);
            var box1 = MixMath.CenteredBox(side, side, 3, 4, boxHeight, boxWidth);
            float[] mask = Floats(result.Mask!);
            Assert.AreEqual(box0.Area == 0 ? default : box0, ZeroBox(mask, 0, side, side));
            Assert.AreEqual(box1.Area == 0 ? default : box1, ZeroBox(mask, 1, side, side));
            float[] expectedLambda = { (float)MixMath.BoxLambda(box0, side, side), (float)MixMath.BoxLambda(box1, side, side) };
            CollectionAssert.AreEqual(expectedLambda, Floats(result.Lambda));
            clippedDifferently |= expectedLambda[0] != expectedLambda[1];
            AssertMaskSelects(images, result);
            AssertSoftLabels(result, labels, 2);
        }
        Assert.IsTrue(clippedDifferently, "boxes at different places clip differently, so λ is per row");
    }
}
