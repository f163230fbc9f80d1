using Microsoft.ML.Data;

namespace MergeMix.ML.Imaging;

/// <summary>Writes RGB PNG files through ML.NET's <see cref="MLImage"/> (no extra imaging dependency).</summary>
public static class PngWriter
{
    /// <summary>
    /// Saves a planar (channel, row, column) float image as an opaque RGB PNG. Each value is multiplied by
    /// <paramref name="scale"/>, rounded to the nearest integer and clamped to 0..255 (NaN becomes 0). One channel is
    /// written as grey; three channels as R, G, B.
    /// </summary>
    /// <param name="path">Target file; must end in ".png". Missing folders are created.</param>
    /// <param name="chw">channels·height·width values, channel-major.</param>
    /// <param name="channels">1 or 3.</param>
    /// <param name="height">Image height in pixels (≥ 1).</param>
    /// <param name="width">Image width in pixels (≥ 1).</param>
    /// <param name="scale">Factor applied before clamping (e.g. 255 for values in [0, 1]).</param>
    public static void Save(string path, ReadOnlySpan<float> chw, int channels, int height, int width, float scale = 1f)
    {
        if (channels != 1 && channels != 3)
            throw new ArgumentOutOfRangeException(nameof(channels), channels, "channels must be 1 (grey) or 3 (RGB).");
        CheckSize(height, width);
        long plane = (long)height * width;
        if (chw.Length != channels * plane)
            throw new ArgumentException(
                $"chw must hold channels·height·width = {channels * plane} values; got {chw.Length}.", nameof(chw));
        var rgb = new byte[plane * 3];
        for (long p = 0; p < plane; p++)
            for (int c = 0; c < 3; c++)
                rgb[p * 3 + c] = ToByte(chw[(int)((channels == 1 ? 0 : c) * plane + p)] * scale);
        SaveRgb(path, rgb, width, height);
    }

    /// <summary>Saves interleaved 8-bit RGB pixels (row-major, 3 bytes per pixel) as an opaque PNG.</summary>
    /// <param name="path">Target file; must end in ".png". Missing folders are created.</param>
    /// <param name="rgb">width·height·3 bytes.</param>
    /// <param name="width">Image width in pixels (≥ 1).</param>
    /// <param name="height">Image height in pixels (≥ 1).</param>
    public static void SaveRgb(string path, ReadOnlySpan<byte> rgb, int width, int height)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(path);
        if (!string.Equals(Path.GetExtension(path), ".png", StringComparison.OrdinalIgnoreCase))
            throw new ArgumentException($"path must end in \".png\"; got \"{path}\".", nameof(path));
        CheckSize(height, width);
        long pixels = (long)width * height;
        if (rgb.Length != pixels * 3)
            throw new ArgumentException($"rgb must hold width·height·3 = {pixels * 3} bytes; got {rgb.Length}.", nameof(rgb));
        var rgba = new byte[pixels * 4];
        for (long p = 0; p < pixels; p++)
        {
            rgba[p * 4] = rgb[(int)(p * 3)];
            rgba[p * 4 + 1] = rgb[(int)(p * 3 + 1)];
            rgba[p * 4 + 2] = rgb[(int)(p * 3 + 2)];
            rgba[p * 4 + 3] = 255;
        }
        string? folder = Path.GetDirectoryName(Path.GetFullPath(path));
        if (!string.IsNullOrEmpty(folder)) Directory.CreateDirectory(folder);
        using var image = MLImage.CreateFromPixels(width, height, MLPixelFormat.Rgba32, rgba);
        image.Save(path);
    }

    /// <summary>The byte for an already scaled value: rounded half away from zero, clamped to 0..255, NaN → 0.</summary>
    public static byte ToByte(float value)
    {
        if (float.IsNaN(value)) return 0;
        return (byte)Math.Clamp(MathF.Round(value, MidpointRounding.AwayFromZero), 0f, 255f);
    }

    private static void CheckSize(int height, int width)
    {
        if (height < 1) throw new ArgumentOutOfRangeException(nameof(height), height, "height must be at least 1.");
        if (width < 1) throw new ArgumentOutOfRangeException(nameof(width), width, "width must be at least 1.");
    }
}
