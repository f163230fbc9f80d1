using System.Globalization;
using OxyPlot;
using OxyPlot.Annotations;
using OxyPlot.Axes;
using OxyPlot.Legends;
using OxyPlot.Series;
using SkiaSharp;

namespace MergeMix.ML.Samples.Imaging;

/// <summary>One line of a <see cref="LinePlot"/>: a name for the legend and its points.</summary>
/// <param name="Name">Legend text.</param>
/// <param name="X">X values (same length as <paramref name="Y"/>).</param>
/// <param name="Y">Y values; a NaN point leaves a gap in the line.</param>
public sealed record PlotSeries(string Name, IReadOnlyList<double> X, IReadOnlyList<double> Y);

/// <summary>Line charts (training curves, occlusion curves) drawn with OxyPlot into a PNG.</summary>
public static class LinePlot
{
    /// <summary>Renders the series and writes a PNG to <paramref name="path"/>.</summary>
    public static void Save(string path, string title, string xLabel, string yLabel, IReadOnlyList<PlotSeries> series, int width = 960, int height = 600) =>
        ChartImage.Save(path, Model(title, xLabel, yLabel, series), width, height);

    /// <summary>The OxyPlot model: one line with square markers per series, legend outside on the right so it never hides data.</summary>
    public static PlotModel Model(string title, string xLabel, string yLabel, IReadOnlyList<PlotSeries> series)
    {
        ArgumentNullException.ThrowIfNull(series);
        if (series.Count == 0) throw new ArgumentException("Need at least one series.", nameof(series));
        foreach (var s in series)
            if (s.X.Count != s.Y.Count) throw new ArgumentException($"Series '{s.Name}' has {s.X.Count} x values but {s.Y.Count} y values.", nameof(series));
        if (!series.Any(s => s.X.Zip(s.Y).Any(p => double.IsFinite(p.First) && double.IsFinite(p.Second))))
            throw new ArgumentException("The series have no finite points.", nameof(series));

        var model = ChartImage.NewModel(title);
        var xAxis = ChartImage.ValueAxis(AxisPosition.Bottom, xLabel);
        // Whole-number x values (epochs, steps) get whole-number ticks: no "epoch 1.5".
        if (series.All(s => s.X.All(x => !double.IsFinite(x) || x == Math.Floor(x))))
        {
            xAxis.MinimumMajorStep = 1;
            xAxis.MinimumMinorStep = 1;
        }
        model.Axes.Add(xAxis);
        model.Axes.Add(ChartImage.ValueAxis(AxisPosition.Left, yLabel));
        model.Legends.Add(new Legend
        {
            LegendPlacement = LegendPlacement.Outside,
            LegendPosition = LegendPosition.RightTop,
            LegendFontSize = ChartImage.FontSize,
            LegendBorder = OxyColors.Transparent,
        });
        for (int i = 0; i < series.Count; i++)
        {
            var colour = ChartImage.Palette[i % ChartImage.Palette.Count];
            var line = new LineSeries
            {
                Title = series[i].Name,
                Color = colour,
                StrokeThickness = 2,
                MarkerType = MarkerType.Square,
                MarkerSize = 2.5,
                MarkerFill = colour,
            };
            for (int j = 0; j < series[i].X.Count; j++)
            {
                double x = series[i].X[j], y = series[i].Y[j];
                line.Points.Add(double.IsFinite(x) && double.IsFinite(y) ? new DataPoint(x, y) : DataPoint.Undefined);
            }
            model.Series.Add(line);
        }
        return model;
    }
}

/// <summary>Bar charts with optional error bars (e.g. mean ± std over seeds), drawn with OxyPlot into a PNG.</summary>
public static class BarChart
{
    /// <summary>Renders the bars and writes a PNG to <paramref name="path"/>. Error is the half-length of the error bar (0 for none).</summary>
    public static void Save(string path, string title, string yLabel, IReadOnlyList<(string Label, double Value, double Error)> bars, int width = 960, int height = 600) =>
        ChartImage.Save(path, Model(title, yLabel, bars), width, height);

    /// <summary>The OxyPlot model: vertical bars in palette order, value printed above each error bar.</summary>
    public static PlotModel Model(string title, string yLabel, IReadOnlyList<(string Label, double Value, double Error)> bars)
    {
        ArgumentNullException.ThrowIfNull(bars);
        if (bars.Count == 0) throw new ArgumentException("Need at least one bar.", nameof(bars));
        if (bars.Any(b => !double.IsFinite(b.Value) || !(b.Error >= 0) || double.IsInfinity(b.Error)))
            throw new ArgumentException("Bar values must be finite and errors finite and ≥ 0.", nameof(bars));

        var model = ChartImage.NewModel(title);
        // Category labels are tilted so that long method names never run into their neighbours.
        model.Axes.Add(new CategoryAxis
        {
            Position = AxisPosition.Bottom,
            Key = "methods",
            ItemsSource = bars.Select(b => b.Label).ToArray(),
            Angle = bars.Count > 6 ? -30 : 0,
            FontSize = ChartImage.FontSize,
            IsPanEnabled = false,
            IsZoomEnabled = false,
        });
        var valueAxis = ChartImage.ValueAxis(AxisPosition.Left, yLabel);
        valueAxis.Key = "values";
        valueAxis.MinimumPadding = 0;
        valueAxis.MaximumPadding = 0.12; // room for the value labels above the tallest error bar
        if (bars.All(b => b.Value - b.Error >= 0)) valueAxis.Minimum = 0;
        model.Axes.Add(valueAxis);
        // Without any error (one seed) there are no error bars at all, rather than flat caps that look like a measurement.
        bool errorBars = bars.Any(b => b.Error > 0);
        BarSeries series = errorBars ? new ErrorBarSeries { ErrorStrokeThickness = 1.5, ErrorWidth = 0.25 } : new BarSeries();
        series.XAxisKey = "values";
        series.YAxisKey = "methods";
        series.BarWidth = 0.7;
        for (int i = 0; i < bars.Count; i++)
        {
            var colour = ChartImage.Palette[i % ChartImage.Palette.Count];
            series.Items.Add(errorBars ? new ErrorBarItem(bars[i].Value, bars[i].Error) { Color = colour } : new BarItem(bars[i].Value) { Color = colour });
            // The series' own labels sit at the bar end, under the error bar; these sit above the error bar's cap.
            double end = bars[i].Value >= 0 ? bars[i].Value + bars[i].Error : bars[i].Value - bars[i].Error;
            model.Annotations.Add(new TextAnnotation
            {
                XAxisKey = "methods",
                YAxisKey = "values",
                TextPosition = new DataPoint(i, end),
                Text = bars[i].Value.ToString("0.##", CultureInfo.InvariantCulture),
                TextVerticalAlignment = bars[i].Value >= 0 ? VerticalAlignment.Bottom : VerticalAlignment.Top,
                Offset = new ScreenVector(0, bars[i].Value >= 0 ? -4 : 4),
                FontSize = ChartImage.FontSize - 2,
                Stroke = OxyColors.Transparent,
                Background = OxyColors.Transparent,
            });
        }
        model.Series.Add(series);
        return model;
    }
}

/// <summary>Shared chart style and the OxyPlot → PNG step (Skia, with the shipped font).</summary>
public static class ChartImage
{
    /// <summary>Font size of labels, ticks and legends, in pixels.</summary>
    public const double FontSize = 14;

    /// <summary>Distinct colours for up to 12 series (then they repeat); the first ten are matplotlib's "tab10".</summary>
    public static IReadOnlyList<OxyColor> Palette { get; } = new[]
    {
        OxyColor.FromRgb(31, 119, 180), OxyColor.FromRgb(255, 127, 14), OxyColor.FromRgb(44, 160, 44), OxyColor.FromRgb(214, 39, 40),
        OxyColor.FromRgb(148, 103, 189), OxyColor.FromRgb(140, 86, 75), OxyColor.FromRgb(227, 119, 194), OxyColor.FromRgb(127, 127, 127),
        OxyColor.FromRgb(188, 189, 34), OxyColor.FromRgb(23, 190, 207), OxyColor.FromRgb(0, 0, 0), OxyColor.FromRgb(255, 215, 0),
    };

    /// <summary>Renders <paramref name="model"/> at <paramref name="width"/>×<paramref name="height"/> pixels onto a white bitmap.</summary>
    public static SKBitmap Render(PlotModel model, int width, int height)
    {
        ArgumentNullException.ThrowIfNull(model);
        if (width < 1) throw new ArgumentOutOfRangeException(nameof(width), width, "width must be at least 1.");
        if (height < 1) throw new ArgumentOutOfRangeException(nameof(height), height, "height must be at least 1.");
        var bitmap = new SKBitmap(new SKImageInfo(width, height, SKColorType.Rgba8888, SKAlphaType.Premul));
        using var canvas = new SKCanvas(bitmap);
        canvas.Clear(SKColors.White);
        using var context = new ShippedFontRenderContext { SkCanvas = canvas, RenderTarget = OxyPlot.SkiaSharp.RenderTarget.PixelGraphic };
        ((IPlotModel)model).Update(true);
        ((IPlotModel)model).Render(context, new OxyRect(0, 0, width, height));
        canvas.Flush();
        return bitmap;
    }

    /// <summary>Renders <paramref name="model"/> and writes it as a PNG to <paramref name="path"/> (missing folders are created).</summary>
    public static void Save(string path, PlotModel model, int width, int height)
    {
        using var bitmap = Render(model, width, height);
        SavePng(path, bitmap);
    }

    /// <summary>Writes <paramref name="bitmap"/> as a PNG; the path must end in ".png".</summary>
    public static void SavePng(string path, SKBitmap bitmap)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(path);
        if (!string.Equals(Path.GetExtension(path), ".png", StringComparison.OrdinalIgnoreCase))
            throw new ArgumentException($"path must end in \".png\"; got \"{path}\".", nameof(path));
        string? folder = Path.GetDirectoryName(Path.GetFullPath(path));
        if (!string.IsNullOrEmpty(folder)) Directory.CreateDirectory(folder);
        using var image = SKImage.FromBitmap(bitmap);
        using var png = image.Encode(SKEncodedImageFormat.Png, 100);
        using var file = File.Create(path);
        png.SaveTo(file);
    }

    internal static PlotModel NewModel(string title) => new()
    {
        Title = title,
        TitleFontSize = FontSize + 3,
        DefaultFontSize = FontSize,
        Background = OxyColors.White,
        PlotAreaBorderColor = OxyColors.Black,
        PlotAreaBorderThickness = new OxyThickness(1, 0, 0, 1),
        Padding = new OxyThickness(8, 8, 16, 8),
    };

    internal static LinearAxis ValueAxis(AxisPosition position, string title) => new()
    {
        Position = position,
        Title = title,
        FontSize = FontSize,
        MajorGridlineStyle = LineStyle.Solid,
        MajorGridlineColor = OxyColor.FromRgb(225, 225, 225),
        // Room around the data so that the first and last markers are not cut by the plot border.
        MinimumPadding = 0.03,
        MaximumPadding = 0.03,
        IsPanEnabled = false,
        IsZoomEnabled = false,
    };
}
