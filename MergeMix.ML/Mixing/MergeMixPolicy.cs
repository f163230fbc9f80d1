using MergeMix.ML.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace MergeMix.ML.Mixing;

/// <summary>
/// MergeMix (arXiv 2510.23479): λ ~ Beta(α, α) once per batch; every image keeps its ⌊λ·L⌋ most-attended patches
/// (attention recovered from the token-merged ViT) and takes the rest from its partner. λ per row is the kept
/// share of patches, the soft label λ·y_i + (1−λ)·y_j.
/// </summary>
/// <remarks>
/// The Gaussian λ̂ re-scaling and the extra MixUp base loss of the reference training step belong to the trainer;
/// this policy returns the mask share λ as OpenMixup does when <c>lam_scale</c> is off.
/// </remarks>
public sealed class MergeMixPolicy : IMixPolicy
{
    private double _alpha = 1.0;

    /// <summary>Beta(α, α) parameter (default 1.0, used by every MergeMix configuration). Must be &gt; 0.</summary>
    public double Alpha { get => _alpha; set => _alpha = MixValidation.Positive(value, nameof(Alpha)); }

    /// <inheritdoc/>
    public string Name => "mergemix";

    /// <inheritdoc/>
    public bool NeedsAttention => true;

    /// <inheritdoc/>
    public MixResult Mix(Tensor images, Tensor labels, int classCount, Generator generator, IAttentionSource? attention = null)
    {
        MixValidation.CheckBatch(images, labels, classCount, generator);
        if (attention is null)
            throw new InvalidOperationException(
                "MergeMix needs an attention source (IAttentionSource) to rank the patches; pass the model's attention to Mix.");
        var (rows, columns) = MixValidation.PatchGrid(images, attention.PatchSize, "attention.PatchSize");
        using var scope = torch.NewDisposeScope();
        using var noGrad = torch.no_grad();
        double lambda = MixRandom.Beta(Alpha, generator);
        var partner = MixOutputs.DrawPartner(images, generator);
        var scores = MixOutputs.PatchScores(attention, images.detach(), rows * columns);
        return MixOutputs.Finish(KeepTopPatches(images, partner, scores, lambda, rows, columns, attention.PatchSize), labels, classCount);
    }

    /// <summary>
    /// Keeps the top ⌊λ·L⌋ patches of each row by <paramref name="scores"/> and fills the rest from the partner;
    /// runs inside the caller's scope.
    /// </summary>
    internal static MixCore KeepTopPatches(Tensor images, Tensor partner, Tensor scores, double lambda, int rows, int columns, int patchSize)
    {
        int length = rows * columns;
        int keep = MixMath.KeepCount(lambda, length);
        var patchMask = MixMath.TopScoreMask(scores, keep);
        var mask = MixMath.UpsamplePatchMask(patchMask, rows, columns, patchSize);
        var x = images.detach();
        var mixed = MixMath.MixByMask(x, x.index_select(0, partner), mask);
        using var patchCount = length.ToScalar();
        var rowLambda = patchMask.sum(1).div(patchCount);
        return new MixCore(mixed, partner, rowLambda, mask);
    }
}
