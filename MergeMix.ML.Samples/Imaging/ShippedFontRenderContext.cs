using OxyPlot;
using OxyPlot.SkiaSharp;
using SkiaSharp;

namespace MergeMix.ML.Samples.Imaging;

/// <summary>
/// OxyPlot's Skia renderer with text drawn in <see cref="ChartFont"/>. OxyPlot 2.2 looks fonts up by installed family
/// name only (its fallback to embedded fonts reads the entry assembly, which is the test host under a test runner), so
/// these two methods (re-implemented on the interface, as OxyPlot calls them through it) pin the typeface; all other drawing stays OxyPlot's. Our labels are Latin and Greek, which
/// need no text shaping, so Skia's plain text drawing is used (and HarfBuzz's native library is not needed).
/// </summary>
internal sealed class ShippedFontRenderContext : SkiaRenderContext, IRenderContext
{
    void IRenderContext.DrawText(ScreenPoint p, string text, OxyColor fill, string? fontFamily, double fontSize, double fontWeight,
        double rotation, HorizontalAlignment horizontalAlignment, VerticalAlignment verticalAlignment, OxySize? maxSize)
    {
        if (text is null || !fill.IsVisible()) return;
        using var paint = CreatePaint(fontSize, fontWeight);
        paint.Color = new SKColor(fill.R, fill.G, fill.B, fill.A);
        string[] lines = SplitLines(text);
        float lineHeight = paint.GetFontMetrics(out var metrics);
        float deltaY = verticalAlignment switch
        {
            VerticalAlignment.Top => -metrics.Ascent,
            VerticalAlignment.Middle => -(metrics.Ascent + metrics.Descent + lineHeight * (lines.Length - 1)) / 2,
            _ => -metrics.Descent - lineHeight * (lines.Length - 1),
        };
        using var restore = new SKAutoCanvasRestore(SkCanvas);
        SkCanvas.Translate((float)p.X * DpiScale, (float)p.Y * DpiScale);
        SkCanvas.RotateDegrees((float)rotation);
        foreach (string line in lines)
        {
            float width = paint.MeasureText(line);
            float deltaX = horizontalAlignment switch
            {
                HorizontalAlignment.Left => 0,
                HorizontalAlignment.Center => -width / 2,
                _ => -width,
            };
            SkCanvas.DrawText(line, deltaX, deltaY, paint);
            deltaY += lineHeight;
        }
    }

    OxySize IRenderContext.MeasureText(string text, string? fontFamily, double fontSize, double fontWeight)
    {
        if (text is null) return new OxySize(0, 0);
        using var paint = CreatePaint(fontSize, fontWeight);
        string[] lines = SplitLines(text);
        float height = paint.GetFontMetrics(out _) * lines.Length;
        float width = lines.Max(line => paint.MeasureText(line));
        return new OxySize(width / DpiScale, height / DpiScale);
    }

    // OxyPlot asks for weight 700 for titles; the shipped file has one (regular) weight, so bold is synthesised.
    private SKPaint CreatePaint(double fontSize, double fontWeight) => new()
    {
        Typeface = ChartFont.Typeface,
        TextSize = (float)fontSize * DpiScale,
        FakeBoldText = fontWeight >= 600,
        IsAntialias = true,
        SubpixelText = true,
    };

    private static string[] SplitLines(string text) => text.Split(new[] { "\r\n", "\n" }, StringSplitOptions.None);
}
