using MergeMix.ML.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace MergeMix.ML.Mixing;

/// <summary>
/// MixUp: x̂ = λ·x_i + (1−λ)·x_j with one λ ~ Beta(α, α) per batch; labels mixed with the same λ. No mask.
/// </summary>
public sealed class MixupPolicy : IMixPolicy
{
    private double _alpha = 0.8;

    /// <summary>Beta(α, α) parameter (default 0.8, the DeiT / OpenMixup baseline value). Must be &gt; 0.</summary>
    public double Alpha { get => _alpha; set => _alpha = MixValidation.Positive(value, nameof(Alpha)); }

    /// <inheritdoc/>
    public string Name => "mixup";

    /// <inheritdoc/>
    public bool NeedsAttention => false;

    /// <inheritdoc/>
    public MixResult Mix(Tensor images, Tensor labels, int classCount, Generator generator, IAttentionSource? attention = null)
    {
        MixValidation.CheckBatch(images, labels, classCount, generator);
        using var scope = torch.NewDisposeScope();
        using var noGrad = torch.no_grad();
        return MixOutputs.Finish(Blend(images, Alpha, generator), labels, classCount);
    }

    /// <summary>Draws λ, then the partners, and blends; runs inside the caller's scope.</summary>
    internal static MixCore Blend(Tensor images, double alpha, Generator generator)
    {
        double lambda = MixRandom.Beta(alpha, generator);
        var partner = MixOutputs.DrawPartner(images, generator);
        var x = images.detach();
        using var own = lambda.ToScalar();
        using var other = (1 - lambda).ToScalar();
        var mixed = x.mul(own).add(x.index_select(0, partner).mul(other), Scalars.One);
        return new MixCore(mixed, partner, MixOutputs.ConstantLambda(images, lambda), null);
    }
}
