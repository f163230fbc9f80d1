namespace MergeMix.ML.Imaging;

/// <summary>
/// A small in-memory RGB raster (row-major, 3 bytes per pixel) for composing diagnostic images; drawing calls clip
/// to the canvas, and <see cref="Save"/> writes it as a PNG.
/// </summary>
public sealed class RgbCanvas
{
    private readonly byte[] _pixels;

    /// <summary>Creates a <paramref name="width"/>×<paramref name="height"/> canvas filled with <paramref name="background"/>.</summary>
    public RgbCanvas(int width, int height, Rgb background)
    {
        if (width < 1) throw new ArgumentOutOfRangeException(nameof(width), width, "width must be at least 1.");
        if (height < 1) throw new ArgumentOutOfRangeException(nameof(height), height, "height must be at least 1.");
        Width = width;
        Height = height;
        _pixels = new byte[(long)width * height * 3];
        FillRectangle(0, 0, width, height, background);
    }

    /// <summary>Width in pixels.</summary>
    public int Width { get; }

    /// <summary>Height in pixels.</summary>
    public int Height { get; }

    /// <summary>The raw pixels: R, G, B per pixel, rows top to bottom.</summary>
    public ReadOnlySpan<byte> Pixels => _pixels;

    /// <summary>The colour at (<paramref name="x"/>, <paramref name="y"/>); throws outside the canvas.</summary>
    public Rgb GetPixel(int x, int y)
    {
        long i = Index(x, y);
        return new Rgb(_pixels[i], _pixels[i + 1], _pixels[i + 2]);
    }

    /// <summary>Sets the colour at (<paramref name="x"/>, <paramref name="y"/>); ignored outside the canvas.</summary>
    public void SetPixel(int x, int y, Rgb color)
    {
        if ((uint)x >= (uint)Width || (uint)y >= (uint)Height) return;
        long i = Index(x, y);
        _pixels[i] = color.R;
        _pixels[i + 1] = color.G;
        _pixels[i + 2] = color.B;
    }

    /// <summary>Fills the rectangle at (<paramref name="x"/>, <paramref name="y"/>) of the given size, clipped to the canvas.</summary>
    public void FillRectangle(int x, int y, int width, int height, Rgb color)
    {
        int x0 = Math.Max(0, x), y0 = Math.Max(0, y);
        int x1 = Math.Min(Width, x + width), y1 = Math.Min(Height, y + height);
        for (int yy = y0; yy < y1; yy++)
            for (int xx = x0; xx < x1; xx++)
                SetPixel(xx, yy, color);
    }

    /// <summary>
    /// Draws <paramref name="text"/> with <see cref="BitmapFont"/>, top-left at (<paramref name="x"/>, <paramref name="y"/>),
    /// each font pixel a <paramref name="scale"/>×<paramref name="scale"/> block. Returns the drawn width.
    /// </summary>
    public int DrawText(string text, int x, int y, Rgb color, int scale = 1)
    {
        ArgumentNullException.ThrowIfNull(text);
        if (scale < 1) throw new ArgumentOutOfRangeException(nameof(scale), scale, "scale must be at least 1.");
        for (int i = 0; i < text.Length; i++)
        {
            int left = x + i * BitmapFont.Advance * scale;
            for (int gy = 0; gy < BitmapFont.GlyphHeight; gy++)
                for (int gx = 0; gx < BitmapFont.GlyphWidth; gx++)
                    if (BitmapFont.IsInk(text[i], gx, gy))
                        FillRectangle(left + gx * scale, y + gy * scale, scale, scale, color);
        }
        return BitmapFont.MeasureWidth(text, scale);
    }

    /// <summary>
    /// Draws a planar (channel, row, column) image with 1 (grey) or 3 (RGB) channels, top-left at
    /// (<paramref name="x"/>, <paramref name="y"/>), each pixel repeated <paramref name="upscale"/> times per side.
    /// Values map linearly from [<paramref name="low"/>, <paramref name="high"/>] to 0..255 (clamped); when
    /// high ≤ low every pixel is mid-grey.
    /// </summary>
    public void DrawImage(ReadOnlySpan<float> chw, int channels, int height, int width, int x, int y, int upscale, float low, float high)
    {
        if (channels != 1 && channels != 3)
            throw new ArgumentOutOfRangeException(nameof(channels), channels, "channels must be 1 (grey) or 3 (RGB).");
        if (upscale < 1) throw new ArgumentOutOfRangeException(nameof(upscale), upscale, "upscale must be at least 1.");
        int plane = height * width;
        if (chw.Length != channels * plane)
            throw new ArgumentException($"chw must hold channels·height·width = {channels * plane} values; got {chw.Length}.", nameof(chw));
        float range = high - low;
        for (int py = 0; py < height; py++)
            for (int px = 0; px < width; px++)
            {
                int pixel = py * width + px;
                int green = channels == 1 ? 0 : plane, blue = channels == 1 ? 0 : 2 * plane;
                var color = new Rgb(
                    Level(chw[pixel], low, range), Level(chw[green + pixel], low, range), Level(chw[blue + pixel], low, range));
                FillRectangle(x + px * upscale, y + py * upscale, upscale, upscale, color);
            }
    }

    /// <summary>Writes the canvas as an opaque RGB PNG (see <see cref="PngWriter.SaveRgb"/>).</summary>
    public void Save(string path) => PngWriter.SaveRgb(path, _pixels, Width, Height);

    private static byte Level(float value, float low, float range) =>
        range > 0 ? PngWriter.ToByte((value - low) / range * 255f) : (byte)128;

    private long Index(int x, int y)
    {
        if ((uint)x >= (uint)Width) throw new ArgumentOutOfRangeException(nameof(x), x, $"x must lie in [0, {Width}).");
        if ((uint)y >= (uint)Height) throw new ArgumentOutOfRangeException(nameof(y), y, $"y must lie in [0, {Height}).");
        return ((long)y * Width + x) * 3;
    }
}
