using System.Globalization;
using MergeMix.ML.Mixing;
using SkiaSharp;
using TorchSharp;
using static TorchSharp.torch;

namespace MergeMix.ML.Samples.Imaging;

/// <summary>
/// Renders a mixed batch for inspection: one row per sample with the columns original | partner | mask (white =
/// original pixel) | mixed, and a caption "λ=0.63 own/partner" naming both classes. Drawn with SkiaSharp (the
/// version ML.NET's image transforms already bring) in <see cref="ChartFont"/>.
/// </summary>
public static class MixGrid
{
    /// <summary>Blank pixels around and between cells.</summary>
    public const int Gap = 4;

    /// <summary>Text size of the row captions, in pixels.</summary>
    public const float CaptionSize = 16;

    /// <summary>Text size of the column titles, in pixels.</summary>
    public const float TitleSize = 11;

    /// <summary>Column titles, left to right.</summary>
    public static IReadOnlyList<string> ColumnTitles { get; } = new[] { "original", "partner", "mask", "mixed" };

    /// <summary>Background colour (dark grey, so that white masks and bright images keep their edges).</summary>
    public static SKColor Background { get; } = new(32, 32, 32);

    /// <summary>Text colour.</summary>
    public static SKColor Ink { get; } = new(230, 230, 230);

    /// <summary>Renders the grid (see <see cref="Render"/>) and writes it as a PNG to <paramref name="path"/>.</summary>
    public static void Save(string path, Tensor originals, MixResult result, IReadOnlyList<string>? classNames, int rows = 8, int upscale = 3)
    {
        using var bitmap = Render(originals, result, classNames, rows, upscale);
        ChartImage.SavePng(path, bitmap);
    }

    /// <summary>
    /// Draws the first min(<paramref name="rows"/>, B) samples. Images are scaled by one linear map taken from the
    /// smallest and largest value of the originals and the shown mixed images, so normalised inputs stay viewable;
    /// each pixel becomes an <paramref name="upscale"/>² block (no smoothing, so patch edges stay visible).
    /// For blend policies (no mask) the mask cell is a flat grey of level λ.
    /// </summary>
    /// <param name="originals">float [B, C, H, W] (C = 1 or 3): the batch that was passed to the policy.</param>
    /// <param name="result">The policy's output for that batch.</param>
    /// <param name="classNames">Names by class index; null prints the indices.</param>
    /// <param name="rows">Most samples to show (≥ 1).</param>
    /// <param name="upscale">Pixel repeat factor per side (≥ 1).</param>
    public static SKBitmap Render(Tensor originals, MixResult result, IReadOnlyList<string>? classNames, int rows = 8, int upscale = 3)
    {
        ArgumentNullException.ThrowIfNull(originals);
        ArgumentNullException.ThrowIfNull(result);
        if (originals.dim() != 4 || (originals.shape[1] != 1 && originals.shape[1] != 3))
            throw new ArgumentException(
                $"originals must be [B, C, H, W] with C = 1 or 3; got [{string.Join(", ", originals.shape)}].", nameof(originals));
        if (!result.Mixed.shape.SequenceEqual(originals.shape))
            throw new ArgumentException(
                $"result.Mixed has shape [{string.Join(", ", result.Mixed.shape)}] but originals [{string.Join(", ", originals.shape)}].", nameof(result));
        if (rows < 1) throw new ArgumentOutOfRangeException(nameof(rows), rows, "rows must be at least 1.");
        if (upscale < 1) throw new ArgumentOutOfRangeException(nameof(upscale), upscale, "upscale must be at least 1.");

        int batch = (int)originals.shape[0], channels = (int)originals.shape[1];
        int height = (int)originals.shape[2], width = (int)originals.shape[3];
        int shown = Math.Min(rows, batch), image = channels * height * width, plane = height * width;
        float[] x = ToFloats(originals), mixed = ToFloats(result.Mixed), lambda = ToFloats(result.Lambda);
        float[]? mask = result.Mask is null ? null : ToFloats(result.Mask);
        long[] partner = ToLongs(result.Partner);
        long[]? labels = result.Labels is null ? null : ToLongs(result.Labels);

        float low = Math.Min(x.Min(), mixed.Take(shown * image).Min());
        float high = Math.Max(x.Max(), mixed.Take(shown * image).Max());
        var captions = Enumerable.Range(0, shown)
            .Select(i => Caption(lambda[i], labels?[i], labels?[partner[i]], classNames))
            .ToArray();

        using var captionInk = TextPaint(CaptionSize);
        using var titleInk = TextPaint(TitleSize);
        int cellWidth = width * upscale, cellHeight = height * upscale;
        int captionHeight = (int)MathF.Ceiling(captionInk.FontSpacing);
        int rowHeight = Math.Max(cellHeight, captionHeight);
        int captionWidth = (int)MathF.Ceiling(captions.Max(c => captionInk.MeasureText(c)));
        int top = Gap + (int)MathF.Ceiling(titleInk.FontSpacing) + Gap;

        var bitmap = new SKBitmap(new SKImageInfo(Gap + 4 * (cellWidth + Gap) + captionWidth + Gap, top + shown * (rowHeight + Gap),
            SKColorType.Rgba8888, SKAlphaType.Opaque));
        using var canvas = new SKCanvas(bitmap);
        canvas.Clear(Background);
        for (int col = 0; col < 4; col++)
        {
            // A title wider than its cell is cut at the cell edge rather than running into the next column.
            canvas.Save();
            canvas.ClipRect(new SKRect(CellLeft(col, cellWidth), 0, CellLeft(col, cellWidth) + cellWidth, top));
            canvas.DrawText(ColumnTitles[col], CellLeft(col, cellWidth), Gap - titleInk.FontMetrics.Ascent, titleInk);
            canvas.Restore();
        }

        for (int i = 0; i < shown; i++)
        {
            int y = top + i * (rowHeight + Gap);
            int j = (int)partner[i];
            DrawImage(canvas, x.AsSpan(i * image, image), channels, height, width, CellLeft(0, cellWidth), y, upscale, low, high);
            DrawImage(canvas, x.AsSpan(j * image, image), channels, height, width, CellLeft(1, cellWidth), y, upscale, low, high);
            ReadOnlySpan<float> maskPlane = mask is null
                ? Enumerable.Repeat(lambda[i], plane).ToArray()
                : mask.AsSpan(i * plane, plane);
            DrawImage(canvas, maskPlane, 1, height, width, CellLeft(2, cellWidth), y, upscale, 0f, 1f);
            DrawImage(canvas, mixed.AsSpan(i * image, image), channels, height, width, CellLeft(3, cellWidth), y, upscale, low, high);
            canvas.DrawText(captions[i], CellLeft(4, cellWidth), y - captionInk.FontMetrics.Ascent, captionInk);
        }
        canvas.Flush();
        return bitmap;
    }

    /// <summary>
    /// The caption of one row: "λ=0.63 cat/dog" (λ with two decimals, own class then partner class), the class
    /// indices when <paramref name="classNames"/> is null, and only the λ part when the labels are unknown.
    /// </summary>
    public static string Caption(float lambda, long? ownClass, long? partnerClass, IReadOnlyList<string>? classNames)
    {
        string text = "λ=" + lambda.ToString("0.00", CultureInfo.InvariantCulture);
        if (ownClass is null || partnerClass is null) return text;
        return $"{text} {ClassName(ownClass.Value, classNames)}/{ClassName(partnerClass.Value, classNames)}";
    }

    /// <summary>
    /// The 8-bit level of <paramref name="value"/> under the linear map [low, low + range] → [0, 255]: rounded half
    /// away from zero, clamped, NaN → 0; mid-grey when the range is empty.
    /// </summary>
    public static byte Level(float value, float low, float range)
    {
        if (!(range > 0)) return 128;
        float scaled = (value - low) / range * 255f;
        if (float.IsNaN(scaled)) return 0;
        return (byte)Math.Clamp(MathF.Round(scaled, MidpointRounding.AwayFromZero), 0f, 255f);
    }

    /// <summary>The paint every grid text is drawn and measured with: the shipped font at <paramref name="size"/> pixels.</summary>
    public static SKPaint TextPaint(float size) => new() { Typeface = ChartFont.Typeface, TextSize = size, Color = Ink, IsAntialias = true, SubpixelText = true };

    /// <summary>Left edge of column <paramref name="column"/> (4 = the caption).</summary>
    public static int CellLeft(int column, int cellWidth) => Gap + column * (cellWidth + Gap);

    private static void DrawImage(SKCanvas canvas, ReadOnlySpan<float> chw, int channels, int height, int width, int left, int top, int upscale, float low, float high)
    {
        int plane = height * width;
        float range = high - low;
        using var cell = new SKBitmap(new SKImageInfo(width, height, SKColorType.Rgba8888, SKAlphaType.Opaque));
        for (int py = 0; py < height; py++)
            for (int px = 0; px < width; px++)
            {
                int pixel = py * width + px;
                int green = channels == 1 ? 0 : plane, blue = channels == 1 ? 0 : 2 * plane;
                cell.SetPixel(px, py, new SKColor(Level(chw[pixel], low, range), Level(chw[green + pixel], low, range), Level(chw[blue + pixel], low, range)));
            }
        using var nearest = new SKPaint { FilterQuality = SKFilterQuality.None, IsAntialias = false };
        canvas.DrawBitmap(cell, new SKRect(left, top, left + width * upscale, top + height * upscale), nearest);
    }

    private static string ClassName(long index, IReadOnlyList<string>? names) =>
        names is not null && index >= 0 && index < names.Count ? names[(int)index] : index.ToString(CultureInfo.InvariantCulture);

    private static float[] ToFloats(Tensor t)
    {
        using var scope = torch.NewDisposeScope();
        return t.detach().to(ScalarType.Float32, torch.CPU).contiguous().data<float>().ToArray();
    }

    private static long[] ToLongs(Tensor t)
    {
        using var scope = torch.NewDisposeScope();
        return t.detach().to(ScalarType.Int64, torch.CPU).contiguous().data<long>().ToArray();
    }
}
