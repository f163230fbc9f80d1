using System.Globalization;

namespace MergeMix.ML.Imaging;

/// <summary>One line of a <see cref="LinePlot"/>: a name for the legend and its points.</summary>
/// <param name="Name">Legend text.</param>
/// <param name="X">X values (same length as <paramref name="Y"/>).</param>
/// <param name="Y">Y values; NaN points are skipped.</param>
public sealed record PlotSeries(string Name, IReadOnlyList<double> X, IReadOnlyList<double> Y);

/// <summary>
/// Line charts rendered with the built-in bitmap font into a PNG — no plotting or font library, so nothing can clash
/// with the SkiaSharp version ML.NET's image transforms need.
/// </summary>
public static class LinePlot
{
    /// <summary>Distinct colours for up to 12 series (then they repeat).</summary>
    public static IReadOnlyList<Rgb> Palette { get; } = new Rgb[]
    {
        new(31, 119, 180), new(255, 127, 14), new(44, 160, 44), new(214, 39, 40), new(148, 103, 189), new(140, 86, 75),
        new(227, 119, 194), new(127, 127, 127), new(188, 189, 34), new(23, 190, 207), new(0, 0, 0), new(255, 215, 0),
    };

    /// <summary>Renders the series and writes a PNG to <paramref name="path"/>.</summary>
    public static void Save(string path, string title, string xLabel, string yLabel, IReadOnlyList<PlotSeries> series, int width = 960, int height = 600) =>
        Render(title, xLabel, yLabel, series, width, height).Save(path);

    /// <summary>Renders the series onto a new canvas.</summary>
    public static RgbCanvas Render(string title, string xLabel, string yLabel, IReadOnlyList<PlotSeries> series, int width = 960, int height = 600)
    {
        ArgumentNullException.ThrowIfNull(series);
        if (series.Count == 0) throw new ArgumentException("Need at least one series.", nameof(series));
        foreach (var s in series)
            if (s.X.Count != s.Y.Count) throw new ArgumentException($"Series '{s.Name}' has {s.X.Count} x values but {s.Y.Count} y values.", nameof(series));
        var points = series.SelectMany(s => s.X.Zip(s.Y)).Where(p => double.IsFinite(p.First) && double.IsFinite(p.Second)).ToList();
        if (points.Count == 0) throw new ArgumentException("The series have no finite points.", nameof(series));

        var frame = new PlotFrame(width, height, title, xLabel, yLabel,
            Axis.Nice(points.Min(p => p.First), points.Max(p => p.First)), Axis.Nice(points.Min(p => p.Second), points.Max(p => p.Second)));
        var canvas = frame.DrawAxes();
        for (int i = 0; i < series.Count; i++)
        {
            var colour = Palette[i % Palette.Count];
            (int X, int Y)? previous = null;
            for (int j = 0; j < series[i].X.Count; j++)
            {
                double x = series[i].X[j], y = series[i].Y[j];
                if (!double.IsFinite(x) || !double.IsFinite(y)) { previous = null; continue; }
                var point = frame.ToPixel(x, y);
                if (previous is { } p) DrawLine(canvas, p.X, p.Y, point.X, point.Y, colour);
                canvas.FillRectangle(point.X - 2, point.Y - 2, 5, 5, colour);
                previous = point;
            }
        }
        var pixels = points.Select(p => frame.ToPixel(p.First, p.Second)).ToList();
        frame.DrawLegend(canvas, series.Select((s, i) => (s.Name, Palette[i % Palette.Count])).ToList(), pixels);
        return canvas;
    }

    /// <summary>A 2-pixel-thick line (Bresenham).</summary>
    internal static void DrawLine(RgbCanvas canvas, int x0, int y0, int x1, int y1, Rgb colour)
    {
        int dx = Math.Abs(x1 - x0), sx = x0 < x1 ? 1 : -1, dy = -Math.Abs(y1 - y0), sy = y0 < y1 ? 1 : -1, err = dx + dy;
        while (true)
        {
            canvas.FillRectangle(x0, y0, 2, 2, colour);
            if (x0 == x1 && y0 == y1) break;
            int e2 = 2 * err;
            if (e2 >= dy) { err += dy; x0 += sx; }
            if (e2 <= dx) { err += dx; y0 += sy; }
        }
    }
}

/// <summary>Bar charts with optional error bars (e.g. mean ± std over seeds), as PNG.</summary>
public static class BarChart
{
    /// <summary>Renders the bars and writes a PNG to <paramref name="path"/>. Error is the half-length of the error bar (0 for none).</summary>
    public static void Save(string path, string title, string yLabel, IReadOnlyList<(string Label, double Value, double Error)> bars, int width = 960, int height = 600) =>
        Render(title, yLabel, bars, width, height).Save(path);

    /// <summary>Renders the bars onto a new canvas.</summary>
    public static RgbCanvas Render(string title, string yLabel, IReadOnlyList<(string Label, double Value, double Error)> bars, int width = 960, int height = 600)
    {
        ArgumentNullException.ThrowIfNull(bars);
        if (bars.Count == 0) throw new ArgumentException("Need at least one bar.", nameof(bars));
        if (bars.Any(b => !double.IsFinite(b.Value) || !(b.Error >= 0)))
            throw new ArgumentException("Bar values must be finite and errors ≥ 0.", nameof(bars));
        double low = Math.Min(0, bars.Min(b => b.Value - b.Error)), high = Math.Max(0, bars.Max(b => b.Value + b.Error));
        var frame = new PlotFrame(width, height, title, "", yLabel, new Axis(-0.5, bars.Count - 0.5, Array.Empty<double>()), Axis.Nice(low, high));
        var canvas = frame.DrawAxes();
        double slot = frame.PlotWidth / (double)bars.Count;
        for (int i = 0; i < bars.Count; i++)
        {
            var colour = LinePlot.Palette[i % LinePlot.Palette.Count];
            var (left, _) = frame.ToPixel(i - 0.35, 0);
            var (right, zero) = frame.ToPixel(i + 0.35, 0);
            var (_, top) = frame.ToPixel(i, bars[i].Value);
            canvas.FillRectangle(left, Math.Min(top, zero), right - left, Math.Abs(zero - top) + 1, colour);
            var (cx, errTop) = frame.ToPixel(i, bars[i].Value + bars[i].Error);
            if (bars[i].Error > 0)
            {
                var (_, errBottom) = frame.ToPixel(i, bars[i].Value - bars[i].Error);
                canvas.FillRectangle(cx - 1, errTop, 2, errBottom - errTop + 1, Rgb.Black);
                canvas.FillRectangle(cx - 6, errTop, 12, 2, Rgb.Black);
                canvas.FillRectangle(cx - 6, errBottom, 12, 2, Rgb.Black);
            }
            // Labels are clamped into the canvas and values sit centred above the error bar, so neither is cut off
            // by the image edge nor runs into the neighbouring bar when the bars are many.
            string label = bars[i].Label.ToUpperInvariant();
            int labelWidth = BitmapFont.MeasureWidth(label, 2);
            int labelX = Math.Clamp((int)(frame.Left + slot * (i + 0.5)) - labelWidth / 2, 0, Math.Max(0, width - labelWidth));
            canvas.DrawText(label, labelX, frame.Bottom + 8 + (i % 2) * 20, Rgb.Black, 2);
            string value = bars[i].Value.ToString("0.##", CultureInfo.InvariantCulture);
            int valueY = Math.Max(0, Math.Min(Math.Min(top, zero), errTop) - BitmapFont.MeasureHeight(1) - 4);
            canvas.DrawText(value, cx - BitmapFont.MeasureWidth(value, 1) / 2, valueY, Rgb.Black);
        }
        return canvas;
    }
}

/// <summary>An axis range with its tick values.</summary>
internal sealed record Axis(double Min, double Max, IReadOnlyList<double> Ticks)
{
    /// <summary>A range covering [low, high] with 4–8 ticks at 1, 2 or 5 × 10^k steps.</summary>
    public static Axis Nice(double low, double high)
    {
        if (high - low < 1e-12) { low -= 0.5; high += 0.5; }
        double raw = (high - low) / 6;
        double magnitude = Math.Pow(10, Math.Floor(Math.Log10(raw)));
        double step = new[] { 1.0, 2.0, 5.0, 10.0 }.Select(m => m * magnitude).First(s => s >= raw);
        double min = Math.Floor(low / step) * step, max = Math.Ceiling(high / step) * step;
        var ticks = new List<double>();
        for (double t = min; t <= max + step / 2; t += step) ticks.Add(Math.Round(t / step) * step);
        return new Axis(min, max, ticks);
    }
}

/// <summary>Layout shared by the charts: margins, axes, ticks, titles, legend.</summary>
internal sealed class PlotFrame
{
    private const int TextScale = 2;
    private readonly int _width, _height;
    private readonly string _title, _xLabel, _yLabel;
    private readonly Axis _x, _y;

    public PlotFrame(int width, int height, string title, string xLabel, string yLabel, Axis x, Axis y)
    {
        if (width < 200 || height < 150) throw new ArgumentOutOfRangeException(nameof(width), $"A chart needs at least 200×150 pixels, got {width}×{height}.");
        (_width, _height, _title, _xLabel, _yLabel, _x, _y) = (width, height, title, xLabel, yLabel, x, y);
    }

    public int Left => 90;
    public int Top => 50;
    public int Right => _width - 30;
    public int Bottom => _height - 70;
    public int PlotWidth => Right - Left;

    public (int X, int Y) ToPixel(double x, double y) =>
        ((int)Math.Round(Left + (x - _x.Min) / (_x.Max - _x.Min) * (Right - Left)),
         (int)Math.Round(Bottom - (y - _y.Min) / (_y.Max - _y.Min) * (Bottom - Top)));

    public RgbCanvas DrawAxes()
    {
        var canvas = new RgbCanvas(_width, _height, Rgb.White);
        canvas.DrawText(_title.ToUpperInvariant(), (_width - BitmapFont.MeasureWidth(_title, TextScale)) / 2, 14, Rgb.Black, TextScale);
        foreach (double t in _y.Ticks)
        {
            var (_, py) = ToPixel(_x.Min, t);
            canvas.FillRectangle(Left, py, Right - Left, 1, Rgb.Grey(225));
            string text = Format(t);
            canvas.DrawText(text, Left - 8 - BitmapFont.MeasureWidth(text, TextScale), py - BitmapFont.MeasureHeight(TextScale) / 2, Rgb.Black, TextScale);
        }
        foreach (double t in _x.Ticks)
        {
            var (px, _) = ToPixel(t, _y.Min);
            canvas.FillRectangle(px, Top, 1, Bottom - Top, Rgb.Grey(225));
            string text = Format(t);
            canvas.DrawText(text, px - BitmapFont.MeasureWidth(text, TextScale) / 2, Bottom + 8, Rgb.Black, TextScale);
        }
        canvas.FillRectangle(Left, Top, 2, Bottom - Top + 1, Rgb.Black);
        canvas.FillRectangle(Left, Bottom, Right - Left + 1, 2, Rgb.Black);
        canvas.DrawText(_xLabel.ToUpperInvariant(), (Left + Right - BitmapFont.MeasureWidth(_xLabel, TextScale)) / 2, _height - 28, Rgb.Black, TextScale);
        canvas.DrawText(_yLabel.ToUpperInvariant(), 8, Top - 22, Rgb.Black, TextScale);
        return canvas;
    }

    /// <summary>Draws the legend in the plot corner that covers the fewest data points.</summary>
    public void DrawLegend(RgbCanvas canvas, IReadOnlyList<(string Name, Rgb Colour)> entries, IReadOnlyList<(int X, int Y)> dataPixels)
    {
        int lineHeight = BitmapFont.MeasureHeight(TextScale) + 6;
        int boxWidth = entries.Max(e => BitmapFont.MeasureWidth(e.Name.ToUpperInvariant(), TextScale)) + 40;
        int boxHeight = entries.Count * lineHeight + 8;
        var corners = new[] { (X: Right - boxWidth - 8, Y: Top + 8), (X: Right - boxWidth - 8, Y: Bottom - boxHeight - 4), (X: Left + 14, Y: Top + 8), (X: Left + 14, Y: Bottom - boxHeight - 4) };
        var (x, y) = corners.MinBy(c => dataPixels.Count(p => p.X >= c.X - 12 && p.X <= c.X + boxWidth + 12 && p.Y >= c.Y - 12 && p.Y <= c.Y + boxHeight + 12));
        canvas.FillRectangle(x - 6, y - 6, boxWidth + 12, entries.Count * lineHeight + 8, Rgb.Grey(245));
        foreach (var (name, colour) in entries)
        {
            canvas.FillRectangle(x, y + 5, 24, 4, colour);
            canvas.DrawText(name.ToUpperInvariant(), x + 32, y, Rgb.Black, TextScale);
            y += lineHeight;
        }
    }

    private static string Format(double value) => value.ToString(Math.Abs(value) >= 1000 ? "0" : "0.###", CultureInfo.InvariantCulture);
}
