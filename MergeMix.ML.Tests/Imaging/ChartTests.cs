using MergeMix.ML.Samples.Imaging;
using OxyPlot;
using SkiaSharp;

namespace MergeMix.ML.Tests.Imaging;

[TestClass]
public sealed class ChartTests
{
    private static SKColor Sk(OxyColor c) => new(c.R, c.G, c.B);

    /// <summary>Pixels within a small RGB distance of <paramref name="colour"/> (anti-aliasing blends edges).</summary>
    private static int CountNear(SKBitmap bitmap, SKColor colour, int tolerance = 24)
    {
        int count = 0;
        for (int y = 0; y < bitmap.Height; y++)
            for (int x = 0; x < bitmap.Width; x++)
            {
                var p = bitmap.GetPixel(x, y);
                if (Math.Abs(p.Red - colour.Red) + Math.Abs(p.Green - colour.Green) + Math.Abs(p.Blue - colour.Blue) <= tolerance) count++;
            }
        return count;
    }

    private static int CountDark(SKBitmap bitmap, int left, int top, int right, int bottom)
    {
        int count = 0;
        for (int y = top; y < bottom; y++)
            for (int x = left; x < right; x++)
            {
                var p = bitmap.GetPixel(x, y);
                if (p.Red + p.Green + p.Blue < 200) count++;
            }
        return count;
    }

    [TestMethod]
    public void ShippedFontHasTheGlyphsOurLabelsUse()
    {
        var typeface = ChartFont.Typeface;
        Assert.AreEqual("DejaVu Sans", typeface.FamilyName);
        foreach (char c in "λ±≥≻→×−%/0123456789AZaz")
            Assert.IsTrue(typeface.ContainsGlyphs(c.ToString()), $"glyph for '{c}'");
    }

    [TestMethod]
    public void LinePlotWritesAPngOfTheRequestedSizeWithEachSeriesAndText()
    {
        string folder = Directory.CreateTempSubdirectory("mergemix-chart-").FullName;
        try
        {
            string path = Path.Combine(folder, "sub", "lines.png");
            LinePlot.Save(path, "validation top-1 per epoch", "epoch", "top-1 %", new[]
            {
                new PlotSeries("none", new double[] { 1, 2, 3, 4 }, new double[] { 10, 20, 30, 40 }),
                new PlotSeries("mergemix", new double[] { 1, 2, 3, 4 }, new double[] { 12, double.NaN, 33, 41 }),
            }, width: 640, height: 400);
            using var png = SKBitmap.Decode(path);
            Assert.AreEqual(640, png.Width);
            Assert.AreEqual(400, png.Height);
            Assert.IsTrue(CountNear(png, Sk(ChartImage.Palette[0])) > 100, "first series drawn");
            Assert.IsTrue(CountNear(png, Sk(ChartImage.Palette[1])) > 100, "second series drawn");
            Assert.IsTrue(CountDark(png, 0, 0, png.Width, 30) > 50, "title text in the top band");
        }
        finally
        {
            Directory.Delete(folder, recursive: true);
        }
    }

    [TestMethod]
    public void BarChartDrawsOneColouredBarPerValueWithLabels()
    {
        var bars = new[] { ("none", 6.6, 0.45), ("mixup", 12.9, 0.5), ("mergemix-random", 9.25, 0.0) };
        using var bitmap = ChartImage.Render(BarChart.Model("test ECE", "ECE %", bars), 480, 320);
        Assert.AreEqual(480, bitmap.Width);
        Assert.AreEqual(320, bitmap.Height);
        int[] areas = Enumerable.Range(0, 3).Select(i => CountNear(bitmap, Sk(ChartImage.Palette[i]), 6)).ToArray();
        Assert.IsTrue(areas.All(a => a > 500), $"bar areas {string.Join(", ", areas)}");
        // Bar area follows the value: mixup (12.9) > mergemix-random (9.25) > none (6.6).
        Assert.IsTrue(areas[1] > areas[2] && areas[2] > areas[0], $"bar areas {string.Join(", ", areas)}");
        Assert.IsTrue(CountDark(bitmap, 0, bitmap.Height - 40, bitmap.Width, bitmap.Height) > 50, "category labels under the bars");
    }

    [TestMethod]
    public void BadChartInputsAreRejectedWithTheParameterName()
    {
        Assert.AreEqual("series", Assert.ThrowsExactly<ArgumentException>(() =>
            LinePlot.Model("t", "x", "y", new[] { new PlotSeries("a", new double[] { 0 }, new double[] { 0, 1 }) })).ParamName);
        Assert.AreEqual("series", Assert.ThrowsExactly<ArgumentException>(() => LinePlot.Model("t", "x", "y", Array.Empty<PlotSeries>())).ParamName);
        Assert.AreEqual("series", Assert.ThrowsExactly<ArgumentException>(() =>
            LinePlot.Model("t", "x", "y", new[] { new PlotSeries("a", new[] { double.NaN }, new[] { 1.0 }) })).ParamName);
        Assert.AreEqual("bars", Assert.ThrowsExactly<ArgumentException>(() => BarChart.Model("t", "y", new[] { ("a", double.NaN, 0.0) })).ParamName);
        Assert.AreEqual("bars", Assert.ThrowsExactly<ArgumentException>(() => BarChart.Model("t", "y", new[] { ("a", 1.0, -1.0) })).ParamName);
        string jpg = Path.Combine(Path.GetTempPath(), "chart.jpg");
        Assert.AreEqual("path", Assert.ThrowsExactly<ArgumentException>(() =>
            BarChart.Save(jpg, "t", "y", new[] { ("a", 1.0, 0.0) })).ParamName);
    }
}
