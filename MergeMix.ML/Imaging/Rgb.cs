namespace MergeMix.ML.Imaging;

/// <summary>An opaque 8-bit RGB colour.</summary>
/// <param name="R">Red.</param>
/// <param name="G">Green.</param>
/// <param name="B">Blue.</param>
public readonly record struct Rgb(byte R, byte G, byte B)
{
    /// <summary>Black (0, 0, 0).</summary>
    public static Rgb Black => new(0, 0, 0);

    /// <summary>White (255, 255, 255).</summary>
    public static Rgb White => new(255, 255, 255);

    /// <summary>A grey with all three channels at <paramref name="level"/>.</summary>
    public static Rgb Grey(byte level) => new(level, level, level);
}
