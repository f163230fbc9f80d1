using System.Globalization;
using MergeMix.ML.Mixing;
using TorchSharp;
using static TorchSharp.torch;

namespace MergeMix.ML.Imaging;

/// <summary>
/// Renders a mixed batch for inspection: one row per sample with the columns original | partner | mask (white =
/// original pixel) | mixed, and a caption "λ=0.63 own/partner" naming both classes.
/// </summary>
public static class MixGrid
{
    /// <summary>Blank pixels around and between cells.</summary>
    public const int Gap = 4;

    /// <summary>Font scale of the captions (the column titles use scale 1).</summary>
    public const int CaptionScale = 2;

    /// <summary>Column titles, left to right.</summary>
    public static IReadOnlyList<string> ColumnTitles { get; } = new[] { "ORIGINAL", "PARTNER", "MASK", "MIXED" };

    private static readonly Rgb Background = Rgb.Grey(32);
    private static readonly Rgb Ink = Rgb.Grey(230);

    /// <summary>Renders the grid (see <see cref="Render"/>) and writes it as a PNG to <paramref name="path"/>.</summary>
    public static void Save(string path, Tensor originals, MixResult result, IReadOnlyList<string>? classNames, int rows = 8, int upscale = 3) =>
        Render(originals, result, classNames, rows, upscale).Save(path);

    /// <summary>
    /// Draws the first min(<paramref name="rows"/>, B) samples. Images are scaled by one linear map taken from the
    /// smallest and largest value of the originals and the shown mixed images, so normalised inputs stay viewable.
    /// For blend policies (no mask) the mask cell is a flat grey of level λ.
    /// </summary>
    /// <param name="originals">float [B, C, H, W] (C = 1 or 3): the batch that was passed to the policy.</param>
    /// <param name="result">The policy's output for that batch.</param>
    /// <param name="classNames">Names by class index; null prints the indices.</param>
    /// <param name="rows">Most samples to show (≥ 1).</param>
    /// <param name="upscale">Pixel repeat factor per side (≥ 1).</param>
    public static RgbCanvas Render(Tensor originals, MixResult result, IReadOnlyList<string>? classNames, int rows = 8, int upscale = 3)
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

        int cellWidth = width * upscale, cellHeight = height * upscale;
        int rowHeight = Math.Max(cellHeight, BitmapFont.MeasureHeight(CaptionScale));
        int captionWidth = captions.Max(c => BitmapFont.MeasureWidth(c, CaptionScale));
        int top = Gap + BitmapFont.MeasureHeight() + Gap;
        var canvas = new RgbCanvas(Gap + 4 * (cellWidth + Gap) + captionWidth + Gap, top + shown * (rowHeight + Gap), Background);

        int titleChars = (cellWidth + 1) / BitmapFont.Advance;
        for (int col = 0; col < 4; col++)
        {
            string title = ColumnTitles[col];
            canvas.DrawText(title[..Math.Min(title.Length, titleChars)], CellLeft(col, cellWidth), Gap, Ink);
        }

        for (int i = 0; i < shown; i++)
        {
            int y = top + i * (rowHeight + Gap);
            int j = (int)partner[i];
            canvas.DrawImage(x.AsSpan(i * image, image), channels, height, width, CellLeft(0, cellWidth), y, upscale, low, high);
            canvas.DrawImage(x.AsSpan(j * image, image), channels, height, width, CellLeft(1, cellWidth), y, upscale, low, high);
            ReadOnlySpan<float> maskPlane = mask is null
                ? Enumerable.Repeat(lambda[i], plane).ToArray()
                : mask.AsSpan(i * plane, plane);
            canvas.DrawImage(maskPlane, 1, height, width, CellLeft(2, cellWidth), y, upscale, 0f, 1f);
            canvas.DrawImage(mixed.AsSpan(i * image, image), channels, height, width, CellLeft(3, cellWidth), y, upscale, low, high);
            canvas.DrawText(captions[i], CellLeft(4, cellWidth), y, Ink, CaptionScale);
        }
        return canvas;
    }

    /// <summary>
    /// The caption of one row: "λ=0.63 CAT/DOG" (λ with two decimals, own class then partner class), the class
    /// indices when <paramref name="classNames"/> is null, and only the λ part when the labels are unknown.
    /// </summary>
    public static string Caption(float lambda, long? ownClass, long? partnerClass, IReadOnlyList<string>? classNames)
    {
        string text = "λ=" + lambda.ToString("0.00", CultureInfo.InvariantCulture);
        if (ownClass is null || partnerClass is null) return text;
        return $"{text} {ClassName(ownClass.Value, classNames)}/{ClassName(partnerClass.Value, classNames)}";
    }

    /// <summary>Left edge of column <paramref name="column"/> (4 = the caption).</summary>
    private static int CellLeft(int column, int cellWidth) => Gap + column * (cellWidth + Gap);

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
