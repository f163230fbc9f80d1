using MergeMix.ML.Imaging;

namespace MergeMix.ML.Tests.Imaging;

[TestClass]
public sealed class LinePlotTests
{
    [TestMethod]
    public void NiceAxisCoversTheRangeWithRoundTicks()
    {
        // span 0.74 / 6 = 0.123 → step 0.2 (the first of 0.1, 0.2, 0.5, 1 that is ≥ it); range floored/ceiled to steps.
        var axis = Axis.Nice(0.13, 0.87);
        Assert.AreEqual(0.0, axis.Min, 1e-12);
        Assert.AreEqual(1.0, axis.Max, 1e-12);
        CollectionAssert.AreEqual(new[] { 0.0, 0.2, 0.4, 0.6, 0.8, 1.0 }, axis.Ticks.Select(t => Math.Round(t, 10)).ToArray());
    }

    [TestMethod]
    public void SeriesAreDrawnInTheirColourAtTheRightPlace()
    {
        var canvas = LinePlot.Render("t", "x", "y", new[] { new PlotSeries("a", new double[] { 0, 10 }, new double[] { 0, 1 }) }, 400, 300);
        Assert.AreEqual((400, 300), (canvas.Width, canvas.Height));
        // The first point (0, 0) sits at the axes' origin; its marker has the first palette colour.
        var frame = new PlotFrame(400, 300, "t", "x", "y", Axis.Nice(0, 10), Axis.Nice(0, 1));
        var (px, py) = frame.ToPixel(0, 0);
        Assert.AreEqual((90, 230), (px, py));
        Assert.AreEqual(LinePlot.Palette[0], canvas.GetPixel(px + 2, py - 2));
        var (ex, ey) = frame.ToPixel(10, 1);
        Assert.AreEqual(LinePlot.Palette[0], canvas.GetPixel(ex - 1, ey + 1));
    }

    [TestMethod]
    public void BadSeriesAreRejected()
    {
        Assert.ThrowsExactly<ArgumentException>(() => LinePlot.Render("t", "x", "y", new[] { new PlotSeries("a", new double[] { 0 }, new double[] { 0, 1 }) }));
        Assert.ThrowsExactly<ArgumentException>(() => LinePlot.Render("t", "x", "y", Array.Empty<PlotSeries>()));
        Assert.ThrowsExactly<ArgumentException>(() => BarChart.Render("t", "y", new[] { ("a", double.NaN, 0.0) }));
    }

    [TestMethod]
    public void BarsReachTheirValue()
    {
        var canvas = BarChart.Render("ece", "ece", new[] { ("a", 0.5, 0.1), ("b", 1.0, 0.0) }, 400, 300);
        var frame = new PlotFrame(400, 300, "ece", "", "ece", new Axis(-0.5, 1.5, Array.Empty<double>()), Axis.Nice(0, 1.0));
        var (x, top) = frame.ToPixel(1, 1.0);
        Assert.AreEqual(LinePlot.Palette[1], canvas.GetPixel(x + 3, top + 2));
        var (_, above) = frame.ToPixel(1, 1.05);
        Assert.AreEqual(Rgb.White, canvas.GetPixel(x + 3, above - 3));
    }
}
