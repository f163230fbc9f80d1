using TorchSharp;
using static TorchSharp.torch;

namespace MergeMix.ML.Mixing;

/// <summary>
/// TransMix: with probability <see cref="MixupProbability"/> a plain MixUp(<see cref="MixupAlpha"/>) batch, otherwise
/// a CutMix(<see cref="Alpha"/>) batch whose label weight is re-assigned by attention: λ_i = Σ_l a_il·s_il / Σ_l a_il,
/// with a the attention over the patches of the mixed image and s the share of each patch's pixels from the original.
/// </summary>
/// <remarks>
/// <see cref="MixResult.Lambda"/> holds the attention-weighted label share; <see cref="MixResult.Mask"/> still gives the
/// pixel origin. The attention comes from a separate no-gradient pass over the mixed batch.
/// </remarks>
public sealed class TransMixPolicy : IMixPolicy
{
    private double _alpha = 1.0, _mixupAlpha = 0.8, _mixupProbability = 0.2;

    /// <summary>Beta(α, α) parameter of the CutMix branch (default 1.0). Must be &gt; 0.</summary>
    public double Alpha { get => _alpha; set => _alpha = MixValidation.Positive(value, nameof(Alpha)); }

    /// <summary>Beta(α, α) parameter of the MixUp branch (default 0.8). Must be &gt; 0.</summary>
    public double MixupAlpha { get => _mixupAlpha; set => _mixupAlpha = MixValidation.Positive(value, nameof(MixupAlpha)); }

    /// <summary>Probability of a MixUp batch instead of a TransMix batch (default 0.2, the OpenMixup setting).</summary>
    public double MixupProbability
    {
        get => _mixupProbability;
        set => _mixupProbability = MixValidation.Probability(value, nameof(MixupProbability));
    }

    /// <inheritdoc/>
    public string Name => "transmix";

    /// <inheritdoc/>
    public bool NeedsAttention => true;

    /// <inheritdoc/>
    public MixResult Mix(Tensor images, Tensor labels, int classCount, Generator generator, IAttentionSource? attention = null)
    {
        MixValidation.CheckBatch(images, labels, classCount, generator);
        if (attention is null)
            throw new InvalidOperationException(
                "TransMix needs an attention source (IAttentionSource) to re-weight the labels; pass the model's attention to Mix.");
        var (rows, columns) = MixValidation.PatchGrid(images, attention.PatchSize, "attention.PatchSize");
        using var scope = torch.NewDisposeScope();
        using var noGrad = torch.no_grad();
        if (MixRandom.Uniform(generator) < MixupProbability)
            return MixOutputs.Finish(MixupPolicy.Blend(images, MixupAlpha, generator), labels, classCount);

        var cut = CutMixPolicy.Cut(images, Alpha, generator);
        var scores = MixOutputs.PatchScores(attention, cut.Mixed, rows * columns);
        var share = MixMath.PatchShare(cut.Mask!, attention.PatchSize);
        var lambda = MixMath.AttentionLambda(scores, share, cut.Lambda);
        return MixOutputs.Finish(cut with { Lambda = lambda }, labels, classCount);
    }
}
