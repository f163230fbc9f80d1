using MergeMix.ML.Mixing;
using MergeMix.ML.Samples.Imaging;
using SkiaSharp;
using TorchSharp;
using static TorchSharp.torch;

namespace MergeMix.ML.Tests.Imaging;

[TestClass]
public sealed class MixGridTests
{
    private static SKColor Grey(byte level) => new(level, level, level);

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

    /// <summary>Top of the first row and the row height, from the shipped font's line spacing.</summary>
    private static (int Top, int RowHeight) Layout(int cellHeight)
    {
        using var title = MixGrid.TextPaint(MixGrid.TitleSize);
        using var caption = MixGrid.TextPaint(MixGrid.CaptionSize);
        return (MixGrid.Gap + (int)MathF.Ceiling(title.FontSpacing) + MixGrid.Gap, Math.Max(cellHeight, (int)MathF.Ceiling(caption.FontSpacing)));
    }

    private static bool HasInk(SKBitmap bitmap, int left, int top, int right, int bottom)
    {
        for (int y = top; y < bottom; y++)
            for (int x = left; x < right; x++)
                if (bitmap.GetPixel(x, y) != MixGrid.Background) return true;
        return false;
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
    public void LevelsRoundHalfAwayFromZeroAndClamp()
    {
        Assert.AreEqual(70, MixGrid.Level(3, 0, 11));      // 69.55
        Assert.AreEqual(128, MixGrid.Level(0.5f, 0, 1));    // 127.5 → 128
        Assert.AreEqual(0, MixGrid.Level(-1, 0, 1));
        Assert.AreEqual(255, MixGrid.Level(2, 0, 1));
        Assert.AreEqual(0, MixGrid.Level(float.NaN, 0, 1));
        Assert.AreEqual(128, MixGrid.Level(5, 1, 0));       // empty range: mid-grey
    }

    [TestMethod]
    public void GridHasOneRowPerSampleAndTheFourColumnsWithExactPixels()
    {
        var (originals, result) = HandMade();
        using var _ = originals;
        using var __ = result;
        using var grid = MixGrid.Render(originals, result, new[] { "cat", "dog" }, rows: 2, upscale: 3);

        // Cells are 6×6; a row is as high as the 16 px caption line, which is taller than a cell.
        var (top, rowHeight) = Layout(6);
        Assert.IsTrue(rowHeight >= 16, $"row height {rowHeight}");
        Assert.AreEqual(top + 2 * (rowHeight + MixGrid.Gap), grid.Height);
        int captionLeft = MixGrid.CellLeft(4, 6);
        Assert.IsTrue(grid.Width > captionLeft + 80, "caption 'λ=0.50 cat/dog' needs room");

        // Values map 0..11 → 0..255: 3 → 69.5 → 70, 4 → 92.7 → 93, 5 → 115.9 → 116; upscaling is nearest-neighbour.
        Assert.AreEqual(Grey(0), grid.GetPixel(4, top));                  // original 0, pixel (0,0)
        Assert.AreEqual(Grey(70), grid.GetPixel(4 + 5, top + 5));         // original 0, pixel (1,1)
        Assert.AreEqual(Grey(93), grid.GetPixel(14, top));                // partner = image 1, pixel (0,0)
        Assert.AreEqual(Grey(255), grid.GetPixel(24, top));               // mask: original
        Assert.AreEqual(Grey(0), grid.GetPixel(24 + 3, top));             // mask: partner
        Assert.AreEqual(Grey(116), grid.GetPixel(34 + 3, top));           // mixed pixel (0,1) = 5
        Assert.AreEqual(MixGrid.Background, grid.GetPixel(10, top));      // the gap between cells
        // Row 1 starts one row lower and shows image 1 with partner image 2.
        int next = top + rowHeight + MixGrid.Gap;
        Assert.AreEqual(Grey(93), grid.GetPixel(4, next));
        Assert.AreEqual(Grey(185), grid.GetPixel(14, next));              // image 2, pixel (0,0) = 8 → 185.45
        // Captions and column titles are drawn (the shipped font has ink).
        Assert.IsTrue(HasInk(grid, captionLeft, top, grid.Width, top + rowHeight), "caption of row 0");
        Assert.IsTrue(HasInk(grid, captionLeft, next, grid.Width, next + rowHeight), "caption of row 1");
        Assert.IsTrue(HasInk(grid, 4, 0, 10, top), "title over the original column");
    }

    [TestMethod]
    public void BlendResultsShowLambdaAsAFlatGreyMask()
    {
        var (originals, result) = HandMade(withMask: false, withLabels: false);
        using var _ = originals;
        using var __ = result;
        using var grid = MixGrid.Render(originals, result, null, upscale: 1);
        var (top, rowHeight) = Layout(2);
        Assert.AreEqual(top + 3 * (rowHeight + MixGrid.Gap), grid.Height);
        Assert.AreEqual(Grey(128), grid.GetPixel(MixGrid.CellLeft(2, 2), top));                                 // λ = 0.5
        Assert.AreEqual(Grey(191), grid.GetPixel(MixGrid.CellLeft(2, 2) + 1, top + rowHeight + MixGrid.Gap + 1)); // λ = 0.75 → 191.25
    }

    [TestMethod]
    public void SavesAPngWithTheRenderedPixels()
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
            using var rendered = MixGrid.Render(images, result, names, rows: 4, upscale: 2);
            using var saved = SKBitmap.Decode(path);
            Assert.AreEqual(rendered.Width, saved.Width);
            Assert.AreEqual(rendered.Height, saved.Height);
            Assert.AreEqual(MixGrid.CellLeft(4, 16) + MixGrid.Gap, saved.Width - (int)MathF.Ceiling(MaxCaptionWidth(result, names)));
            for (int y = 0; y < saved.Height; y++)
                for (int x = 0; x < saved.Width; x++)
                    Assert.AreEqual(rendered.GetPixel(x, y), saved.GetPixel(x, y), $"pixel ({x}, {y})");
        }
        finally
        {
            Directory.Delete(folder, recursive: true);
        }
    }

    private static float MaxCaptionWidth(MixResult result, string[] names)
    {
        using var paint = MixGrid.TextPaint(MixGrid.CaptionSize);
        long[] labels = result.Labels!.data<long>().ToArray(), partner = result.Partner.data<long>().ToArray();
        float[] lambda = result.Lambda.data<float>().ToArray();
        return Enumerable.Range(0, 4).Max(i => paint.MeasureText(MixGrid.Caption(lambda[i], labels[i], labels[partner[i]], names)));
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
        string png = Path.Combine(Path.GetTempPath(), "x.jpg");
        Assert.AreEqual("path", Assert.ThrowsExactly<ArgumentException>(() => MixGrid.Save(png, originals, result, null)).ParamName);
    }
}
