using MergeMix.ML.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace MergeMix.ML.Mixing;

/// <summary>An axis-aligned pixel box [Top, Bottom) × [Left, Right); empty when Bottom ≤ Top or Right ≤ Left.</summary>
/// <param name="Top">First row inside the box.</param>
/// <param name="Left">First column inside the box.</param>
/// <param name="Bottom">First row below the box (exclusive).</param>
/// <param name="Right">First column right of the box (exclusive).</param>
public readonly record struct PixelBox(int Top, int Left, int Bottom, int Right)
{
    /// <summary>Box height in pixels (0 when empty).</summary>
    public int Height => Math.Max(0, Bottom - Top);

    /// <summary>Box width in pixels (0 when empty).</summary>
    public int Width => Math.Max(0, Right - Left);

    /// <summary>Number of pixels inside the box.</summary>
    public long Area => (long)Height * Width;
}

/// <summary>The small pure functions the policies are built from (labels, masks, boxes).</summary>
public static class MixMath
{
    /// <summary>
    /// Soft labels λ·onehot(y_i) + (1−λ)·onehot(y_partner(i)), float32 [B, K]. Rows whose partner has the same class
    /// get exactly 1 on that class (not λ + (1−λ), which can round away from 1 in float32).
    /// </summary>
    /// <param name="labels">int64 [B] class indices.</param>
    /// <param name="partner">int64 [B] partner rows.</param>
    /// <param name="lambda">float [B] share of the row's own label.</param>
    /// <param name="classCount">K.</param>
    public static Tensor SoftLabels(Tensor labels, Tensor partner, Tensor lambda, int classCount)
    {
        using var scope = torch.NewDisposeScope();
        var y = labels.to_type(ScalarType.Int64);
        var yPartner = y.index_select(0, partner.to_type(ScalarType.Int64));
        var own = torch.nn.functional.one_hot(y, classCount).to_type(ScalarType.Float32);
        var other = torch.nn.functional.one_hot(yPartner, classCount).to_type(ScalarType.Float32);
        var lam = torch.where(y.eq(yPartner), torch.ones_like(lambda, ScalarType.Float32), lambda.to_type(ScalarType.Float32))
            .unsqueeze(1);
        return (own * lam).add(other * Scalars.OneMinus(lam), Scalars.One).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// MergeMix's re-scaled label share (openmixup <c>lam_scale</c>): z_i = μ + σ_i·n_i, then
    /// λ̂_i = clip((z_i − min z) / (max z − min z + τ), 0, 1) over the batch. openmixup draws with μ = MergeCount/L
    /// and σ_i = the row's kept share; when every σ_i is equal (every MergeMix row keeps ⌊λ·L⌋ patches) the min-max
    /// step cancels μ and σ up to τ, so λ̂ is the rank-normalised noise, unrelated to the mask (mergemix-method.md §7.2).
    /// </summary>
    /// <param name="noise">float [B] standard-normal draws n_i.</param>
    /// <param name="mean">μ.</param>
    /// <param name="std">float [B] σ_i ≥ 0.</param>
    /// <param name="tau">τ &gt; 0, keeps the division finite when every z_i is equal.</param>
    public static Tensor RescaledLambda(Tensor noise, double mean, Tensor std, double tau = 1e-5)
    {
        if (noise.dim() != 1 || std.dim() != 1 || noise.shape[0] != std.shape[0] || noise.shape[0] < 1)
            throw new ArgumentException($"noise and std must be [B] of the same length ≥ 1; got [{string.Join(", ", noise.shape)}] and [{string.Join(", ", std.shape)}].", nameof(noise));
        if (!(tau > 0)) throw new ArgumentOutOfRangeException(nameof(tau), tau, "tau must be > 0.");
        using var scope = torch.NewDisposeScope();
        using var meanScalar = mean.ToScalar();
        using var tauScalar = tau.ToScalar();
        using var zero = 0.0.ToScalar();
        using var one = 1.0.ToScalar();
        var z = std.to_type(ScalarType.Float64).mul(noise.to_type(ScalarType.Float64)).add(meanScalar, Scalars.One);
        var low = z.min();
        var range = z.max().sub(low).add(tauScalar, Scalars.One);
        return z.sub(low).div(range).clamp(zero, one).to_type(ScalarType.Float32).MoveToOuterDisposeScope();
    }

    /// <summary>⌊λ·n⌋, the number of the n units (patches, pixels) an image keeps, clamped to [0, n] against rounding.</summary>
    public static int KeepCount(double lambda, int count) => Math.Clamp((int)Math.Floor(lambda * count), 0, count);

    /// <summary>
    /// Float [B, L] mask with exactly <paramref name="keep"/> ones per row, on the highest scores of that row.
    /// Ties go to the lower patch index (a stable descending sort), so the mask is deterministic.
    /// </summary>
    public static Tensor TopScoreMask(Tensor scores, int keep)
    {
        if (scores.dim() != 2) throw new ArgumentException($"scores must be [B, L]; got [{string.Join(", ", scores.shape)}].", nameof(scores));
        long length = scores.shape[1];
        if (keep < 0 || keep > length)
            throw new ArgumentOutOfRangeException(nameof(keep), keep, $"keep must lie in [0, {length}].");
        using var scope = torch.NewDisposeScope();
        var mask = torch.zeros(scores.shape, ScalarType.Float32, scores.device);
        if (keep > 0)
        {
            var (_, order) = scores.sort(dim: 1, descending: true, stable: true);
            var top = order.narrow(1, 0, keep);
            mask = mask.scatter(1, top, torch.ones(top.shape, ScalarType.Float32, scores.device));
        }
        return mask.MoveToOuterDisposeScope();
    }

    /// <summary>
    /// Nearest upsampling of a patch mask [B, rows·columns] (row-major) to a pixel mask [B, 1, rows·P, columns·P]:
    /// every pixel takes the value of the patch that contains it.
    /// </summary>
    public static Tensor UpsamplePatchMask(Tensor patchMask, int rows, int columns, int patchSize)
    {
        if (patchMask.dim() != 2 || patchMask.shape[1] != (long)rows * columns)
            throw new ArgumentException(
                $"patchMask must be [B, {rows}·{columns}]; got [{string.Join(", ", patchMask.shape)}].", nameof(patchMask));
        using var scope = torch.NewDisposeScope();
        return patchMask.reshape(patchMask.shape[0], 1, rows, columns)
            .repeat_interleave(patchSize, 2).repeat_interleave(patchSize, 3)
            .MoveToOuterDisposeScope();
    }

    /// <summary>
    /// Area-average of a pixel mask [B, 1, H, W] over P×P patches, flattened row-major to [B, (H/P)·(W/P)]: the share
    /// of each patch's pixels that come from the original image.
    /// </summary>
    public static Tensor PatchShare(Tensor pixelMask, int patchSize)
    {
        using var scope = torch.NewDisposeScope();
        var pooled = torch.nn.functional.avg_pool2d(pixelMask.to_type(ScalarType.Float32), patchSize);
        return pooled.flatten(1).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// The CutMix box of size <paramref name="boxHeight"/>×<paramref name="boxWidth"/> centred at
    /// (<paramref name="centreY"/>, <paramref name="centreX"/>), clipped to the H×W image. The box starts ⌊size/2⌋ before
    /// the centre, so an unclipped box has exactly the requested size.
    /// </summary>
    public static PixelBox CenteredBox(int height, int width, int centreY, int centreX, int boxHeight, int boxWidth)
    {
        int top = centreY - boxHeight / 2, left = centreX - boxWidth / 2;
        return new PixelBox(
            Math.Clamp(top, 0, height), Math.Clamp(left, 0, width),
            Math.Clamp(top + boxHeight, 0, height), Math.Clamp(left + boxWidth, 0, width));
    }

    /// <summary>CutMix box side lengths for λ: each side times √(1−λ), truncated to whole pixels (timm's rule).</summary>
    public static (int Height, int Width) CutSize(int height, int width, double lambda)
    {
        double ratio = Math.Sqrt(Math.Clamp(1 - lambda, 0, 1));
        return ((int)(height * ratio), (int)(width * ratio));
    }

    /// <summary>Share of the image outside <paramref name="box"/>: 1 − area/(H·W), the area-corrected λ.</summary>
    public static double BoxLambda(PixelBox box, int height, int width) => 1.0 - (double)box.Area / ((double)height * width);

    /// <summary>Float32 pixel mask [<paramref name="batch"/>, 1, H, W]: 0 inside <paramref name="box"/> (partner), 1 elsewhere.</summary>
    public static Tensor BoxMask(long batch, int height, int width, PixelBox box, Device device)
    {
        var mask = torch.ones(new long[] { batch, 1, height, width }, ScalarType.Float32, device);
        if (box.Area > 0)
        {
            using var inside = mask.narrow(2, box.Top, box.Height).narrow(3, box.Left, box.Width);
            inside.fill_(Scalars.Zero);
        }
        return mask;
    }

    /// <summary>
    /// Per-row mask: 0 inside that row's box, 1 elsewhere; float32 [B, 1, H, W] with B = <paramref name="boxes"/>.Count.
    /// </summary>
    public static Tensor BoxMasks(IReadOnlyList<PixelBox> boxes, int height, int width, Device device)
    {
        var mask = torch.ones(new long[] { boxes.Count, 1, height, width }, ScalarType.Float32, device);
        for (int b = 0; b < boxes.Count; b++)
        {
            var box = boxes[b];
            if (box.Area == 0) continue;
            using var inside = mask.select(0, b).narrow(1, box.Top, box.Height).narrow(2, box.Left, box.Width);
            inside.fill_(Scalars.Zero);
        }
        return mask;
    }

    /// <summary>
    /// TransMix label weight per row: Σ_l a_l·s_l / Σ_l a_l, where a is the attention over patches of the mixed image
    /// and s the share of each patch that comes from the original. Rows whose attention sums to ≤ 0 (no usable
    /// signal) keep <paramref name="fallback"/>.
    /// </summary>
    public static Tensor AttentionLambda(Tensor attention, Tensor patchShare, Tensor fallback)
    {
        using var scope = torch.NewDisposeScope();
        var a = attention.to_type(ScalarType.Float32);
        var total = a.sum(1);
        var kept = (a * patchShare.to_type(ScalarType.Float32)).sum(1);
        var usable = total.gt(Scalars.Zero);
        var safeTotal = torch.where(usable, total, torch.ones_like(total));
        var lam = torch.where(usable, (kept / safeTotal).clamp(Scalars.Zero, Scalars.One), fallback.to_type(ScalarType.Float32));
        return lam.MoveToOuterDisposeScope();
    }

    /// <summary>
    /// Pixel-exact mask mixing: where <paramref name="mask"/> [B, 1, H, W] is 1 the original pixel, elsewhere the
    /// partner pixel. A select (not x·M + x_j·(1−M)) so every output pixel is bit-identical to one of its sources.
    /// </summary>
    public static Tensor MixByMask(Tensor images, Tensor partnerImages, Tensor mask)
    {
        using var keep = mask.gt(Scalars.Half);
        return torch.where(keep, images, partnerImages);
    }
}
