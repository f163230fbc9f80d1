using MergeMix.ML.Imaging;
using MergeMix.ML.Mixing;
using TorchSharp;
using static TorchSharp.torch;

namespace MergeMix.ML.Tests.Imaging;

[TestClass]
public sealed class MixGridTests
{
    private static readonly Rgb Ink = Rgb.Grey(230);

    /// <summary>
    /// Three 2×2 grey images with values 0..11, partners [1, 2, 0]; row 0 keeps pixels 0 and 3 of image 0 and takes
    /// pixels 1 and 2 from image 1.
    /// </summary>
    private static (Tensor Originals, MixResult Result) HandMade(bool withMask = true, bool withLabels = true)
    {
        var originals = torch.arange(12, ScalarType.Float32).reshape(3, 1, 2, 2);
        var mask = torch.tensor(new float[] { 1, 0, 0, 1, 1, 1, 1, 0, 0, 0, 0, 0 }, new long[] { 3, 1, 2, 2 });
        var mixed = torch.tensor(new float[] { 0, 5, 6, 3, 4, 5, 6, 11, 0, 1, 2, 3 }, new long[] { 3, 1, 2, 2 });
        var result = new MixResult(
            mixed,
            torch.tensor(new long[] { 1, 2, 0 }),
            torch.tensor(new float[] { 0.5f, 0.75f, 0f }),
            torch.zeros(3, 2),
            withMask ? mask : null)
        {
            Labels = withLabels ? torch.tensor(new long[] { 0, 1, 1 }) : null,
        };
        if (!withMask) mask.Dispose();
        return (originals, result);
    }

    [TestMethod]
    public void CaptionsShowLambdaAndBothClasses()
    {
        var names = new[] { "cat", "dog" };
        Assert.AreEqual("λ=0.50 cat/dog", MixGrid.Caption(0.5f, 0, 1, names));
        Assert.AreEqual("λ=0.33 1/0", MixGrid.Caption(1f / 3, 1, 0, null));
        Assert.AreEqual("λ=1.00", MixGrid.Caption(0.999f, null, null, names));
    }

    [TestMethod]
    public void GridHasOneRowPerSampleAndTheFourColumns()
    {
        var (originals, result) = HandMade();
        using var _ = originals;
        using var __ = result;
        var canvas = MixGrid.Render(originals, result, new[] { "cat", "dog" }, rows: 2, upscale: 3);

        // Cells 6×6; rows 14 high (the scale-2 caption); captions "λ=0.50 cat/dog" and "λ=0.75 dog/cat": (14·6 − 1)·2 = 166.
        Assert.AreEqual(4 + 4 * (6 + 4) + 166 + 4, canvas.Width);
        Assert.AreEqual(4 + 7 + 4 + 2 * (14 + 4), canvas.Height);

        const int top = 15;
        // Values map 0..11 → 0..255: 3 → 69.5 → 70, 4 → 92.7 → 93, 5 → 115.9 → 116.
        Assert.AreEqual(Rgb.Black, canvas.GetPixel(4, top));                 // original 0, pixel (0,0)
        Assert.AreEqual(Rgb.Grey(70), canvas.GetPixel(4 + 5, top + 5));      // original 0, pixel (1,1)
        Assert.AreEqual(Rgb.Grey(93), canvas.GetPixel(14, top));             // partner = image 1, pixel (0,0)
        Assert.AreEqual(Rgb.White, canvas.GetPixel(24, top));                // mask: original
        Assert.AreEqual(Rgb.Black, canvas.GetPixel(24 + 3, top));            // mask: partner
        Assert.AreEqual(Rgb.Grey(116), canvas.GetPixel(34 + 3, top));        // mixed pixel (0,1) = 5
        Assert.AreEqual(Ink, canvas.GetPixel(44, top));                      // λ glyph, top-left ink
        Assert.AreEqual(Ink, canvas.GetPixel(45, top + 1));
        Assert.AreEqual(Rgb.Grey(32), canvas.GetPixel(46, top));             // λ glyph, blank font pixel
        // Row 1 starts 18 pixels lower and shows image 1 with partner image 2.
        Assert.AreEqual(Rgb.Grey(93), canvas.GetPixel(4, top + 18));
        Assert.AreEqual(Rgb.Grey(185), canvas.GetPixel(14, top + 18));       // image 2, pixel (0,0) = 8 → 185.45
        // Column titles fit one character per 6 pixels: "O" over the original column.
        Assert.AreEqual(Ink, canvas.GetPixel(4 + 1, 4));
    }

    [TestMethod]
    public void BlendResultsShowLambdaAsAFlatGreyMask()
    {
        var (originals, result) = HandMade(withMask: false, withLabels: false);
        using var _ = originals;
        using var __ = result;
        var canvas = MixGrid.Render(originals, result, null, upscale: 1);
        // All three rows; caption "λ=0.50" is 6 characters: (6·6 − 1)·2 = 70.
        Assert.AreEqual(4 + 4 * (2 + 4) + 70 + 4, canvas.Width);
        Assert.AreEqual(4 + 7 + 4 + 3 * (14 + 4), canvas.Height);
        Assert.AreEqual(Rgb.Grey(128), canvas.GetPixel(4 + 2 * 6, 15));         // λ = 0.5
        Assert.AreEqual(Rgb.Grey(191), canvas.GetPixel(4 + 2 * 6 + 1, 15 + 18)); // λ = 0.75 → 191.25
    }

    [TestMethod]
    public void SavesAPngOfTheRenderedSize()
    {
        string folder = Directory.CreateTempSubdirectory("mergemix-grid-").FullName;
        try
        {
            using var pixels = new torch.Generator(1);
            using var images = torch.rand(new long[] { 5, 3, 8, 8 }, generator: pixels);
            using var labels = torch.tensor(new long[] { 0, 1, 2, 0, 1 });
            using var g = new torch.Generator(2);
            using var result = new CutMixPolicy().Mix(images, labels, 3, g);
            string path = Path.Combine(folder, "grid.png");
            var names = new[] { "plane", "car", "bird" };
            MixGrid.Save(path, images, result, names, rows: 4, upscale: 2);
            var canvas = MixGrid.Render(images, result, names, rows: 4, upscale: 2);
            var (width, height, rgb) = PngWriterTests.ReadRgb(path);
            Assert.AreEqual(canvas.Width, width);
            Assert.AreEqual(canvas.Height, height);
            Assert.AreEqual(4 + 7 + 4 + 4 * (16 + 4), height);
            CollectionAssert.AreEqual(canvas.Pixels.ToArray(), rgb);
        }
        finally
        {
            Directory.Delete(folder, recursive: true);
        }
    }

    [TestMethod]
    public void BadInputsAreNamed()
    {
        var (originals, result) = HandMade();
        using var _ = originals;
        using var __ = result;
        using var flat = torch.zeros(3, 2, 2);
        Assert.AreEqual("originals", Assert.ThrowsExactly<ArgumentException>(() => MixGrid.Render(flat, result, null)).ParamName);
        using var wider = torch.zeros(3, 1, 2, 3);
        Assert.AreEqual("result", Assert.ThrowsExactly<ArgumentException>(() => MixGrid.Render(wider, result, null)).ParamName);
        Assert.AreEqual("rows", Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => MixGrid.Render(originals, result, null, rows: 0)).ParamName);
        Assert.AreEqual("upscale", Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => MixGrid.Render(originals, result, null, upscale: 0)).ParamName);
    }
}
