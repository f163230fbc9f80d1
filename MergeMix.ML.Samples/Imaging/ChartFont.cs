using SkiaSharp;

namespace MergeMix.ML.Samples.Imaging;

/// <summary>
/// The typeface of every caption, axis and legend the samples draw: DejaVu Sans, shipped inside this assembly.
/// </summary>
/// <remarks>
/// Skia finds installed fonts by family name and silently returns an empty typeface when there are none (a bare
/// Debian or container image has no fonts), which renders every label invisible. Shipping the font makes the
/// pictures readable and pixel-identical on every machine, whatever is installed.
/// </remarks>
public static class ChartFont
{
    /// <summary>Manifest resource name of the shipped font file.</summary>
    public const string ResourceName = "MergeMix.ML.Samples.Imaging.Fonts.DejaVuSans.ttf";

    private static readonly Lazy<SKTypeface> Shipped = new(Load);

    /// <summary>The shipped DejaVu Sans typeface (loaded once; never disposed).</summary>
    public static SKTypeface Typeface => Shipped.Value;

    private static SKTypeface Load()
    {
        using var stream = typeof(ChartFont).Assembly.GetManifestResourceStream(ResourceName)
            ?? throw new InvalidOperationException($"The font resource '{ResourceName}' is missing from {typeof(ChartFont).Assembly.GetName().Name}.");
        using var data = SKData.Create(stream);
        return SKTypeface.FromData(data)
            ?? throw new InvalidOperationException($"The font resource '{ResourceName}' is not a font Skia can read.");
    }
}
