using TorchSharp;
using static TorchSharp.torch;

namespace MergeMix.ML.Mixing;

/// <summary>
/// The DeiT recipe (timm's Mixup switch): each batch is CutMix(<see cref="CutMixAlpha"/>) with probability
/// <see cref="SwitchProbability"/>, otherwise MixUp(<see cref="MixupAlpha"/>). Label smoothing is left to the loss.
/// </summary>
public sealed class DeitMixPolicy : IMixPolicy
{
    private double _mixupAlpha = 0.8, _cutMixAlpha = 1.0, _switchProbability = 0.5;

    /// <summary>Beta(α, α) parameter of the MixUp branch (default 0.8). Must be &gt; 0.</summary>
    public double MixupAlpha { get => _mixupAlpha; set => _mixupAlpha = MixValidation.Positive(value, nameof(MixupAlpha)); }

    /// <summary>Beta(α, α) parameter of the CutMix branch (default 1.0). Must be &gt; 0.</summary>
    public double CutMixAlpha { get => _cutMixAlpha; set => _cutMixAlpha = MixValidation.Positive(value, nameof(CutMixAlpha)); }

    /// <summary>Probability that a batch uses CutMix rather than MixUp (default 0.5).</summary>
    public double SwitchProbability
    {
        get => _switchProbability;
        set => _switchProbability = MixValidation.Probability(value, nameof(SwitchProbability));
    }

    /// <inheritdoc/>
    public string Name => "deit";

    /// <inheritdoc/>
    public bool NeedsAttention => false;

    /// <inheritdoc/>
    public MixResult Mix(Tensor images, Tensor labels, int classCount, Generator generator, IAttentionSource? attention = null)
    {
        MixValidation.CheckBatch(images, labels, classCount, generator);
        using var scope = torch.NewDisposeScope();
        using var noGrad = torch.no_grad();
        var core = MixRandom.Uniform(generator) < SwitchProbability
            ? CutMixPolicy.Cut(images, CutMixAlpha, generator)
            : MixupPolicy.Blend(images, MixupAlpha, generator);
        return MixOutputs.Finish(core, labels, classCount);
    }
}
