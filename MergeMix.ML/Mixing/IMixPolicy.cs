using TorchSharp;
using static TorchSharp.torch;

namespace MergeMix.ML.Mixing;

/// <summary>
/// A mixing policy: a pure function of a batch of images, their labels and a seeded generator.
/// Implementations must be deterministic for a given generator state and must not keep tensors between calls.
/// </summary>
public interface IMixPolicy
{
    /// <summary>Short stable name used in options, CSV files and plots (e.g. "mergemix", "mixup").</summary>
    string Name { get; }

    /// <summary>True when <see cref="Mix"/> needs an <see cref="IAttentionSource"/> (MergeMix, TransMix).</summary>
    bool NeedsAttention { get; }

    /// <summary>
    /// Mixes a batch. <paramref name="images"/> is float [B, C, H, W] (any value range), <paramref name="labels"/> is
    /// int64 [B] with values in [0, classCount). Needs B ≥ 2.
    /// </summary>
    MixResult Mix(Tensor images, Tensor labels, int classCount, Generator generator, IAttentionSource? attention = null);
}

/// <summary>
/// Gives, for a batch of images, one attention score per patch of the full patch grid: the CLS attention of a
/// chosen ViT layer, mapped back onto the original patches (attention recovery).
/// </summary>
public interface IAttentionSource
{
    /// <summary>Side of a square patch, in pixels.</summary>
    int PatchSize { get; }

    /// <summary>Returns float [B, (H/P)·(W/P)] scores in row-major patch order, computed without gradient.</summary>
    Tensor PatchAttention(Tensor images);
}

/// <summary>The outcome of mixing one batch. All tensors live on the input's device; the caller owns (disposes) them.</summary>
/// <param name="Mixed">float [B, C, H, W] mixed images.</param>
/// <param name="Partner">int64 [B]: row j whose content fills the rest of row i.</param>
/// <param name="Lambda">float [B]: share of row i's own label in its soft label (for mask mixers, the share of its own pixels).</param>
/// <param name="SoftLabels">float [B, K]: λ·onehot(y_i) + (1−λ)·onehot(y_partner); each row sums to 1.</param>
/// <param name="Mask">float [B, 1, H, W] with 1 where the pixel comes from the original image, or null for blend mixers (Mixup).</param>
public sealed record MixResult(Tensor Mixed, Tensor Partner, Tensor Lambda, Tensor SoftLabels, Tensor? Mask) : IDisposable
{
    /// <summary>
    /// int64 [B]: a copy of the input labels, so that captions and diagnostics can name both classes of a row
    /// (the soft labels alone cannot tell which class is row i's own when λ = 0.5); null when not recorded.
    /// </summary>
    public Tensor? Labels { get; init; }

    /// <summary>Disposes every tensor of the result.</summary>
    public void Dispose()
    {
        Mixed.Dispose(); Partner.Dispose(); Lambda.Dispose(); SoftLabels.Dispose(); Mask?.Dispose(); Labels?.Dispose();
    }
}
