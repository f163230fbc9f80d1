using TorchSharp;
using static TorchSharp.torch;

namespace MergeMix.ML.Mixing;

/// <summary>
/// CutMix: one box per batch, of side ratio √(1−λ) with λ ~ Beta(α, α) and a uniform centre, clipped to the image,
/// is filled from the partner; λ is then corrected to the share of the image left outside the clipped box.
/// </summary>
public sealed class CutMixPolicy : IMixPolicy
{
    private double _alpha = 2.0;

    /// <summary>Beta(α, α) parameter (default 2.0, the OpenMixup CIFAR baseline; DeiT's switch uses 1.0). Must be &gt; 0.</summary>
    public double Alpha { get => _alpha; set => _alpha = MixValidation.Positive(value, nameof(Alpha)); }

    /// <inheritdoc/>
    public string Name => "cutmix";

    /// <inheritdoc/>
    public bool NeedsAttention => false;

    /// <inheritdoc/>
    public MixResult Mix(Tensor images, Tensor labels, int classCount, Generator generator, IAttentionSource? attention = null)
    {
        MixValidation.CheckBatch(images, labels, classCount, generator);
        using var scope = torch.NewDisposeScope();
        using var noGrad = torch.no_grad();
        return MixOutputs.Finish(Cut(images, Alpha, generator), labels, classCount);
    }

    /// <summary>Draws λ, the partners and the box centre (in that order) and pastes; runs inside the caller's scope.</summary>
    internal static MixCore Cut(Tensor images, double alpha, Generator generator)
    {
        int height = (int)images.shape[2], width = (int)images.shape[3];
        double lambda = MixRandom.Beta(alpha, generator);
        var partner = MixOutputs.DrawPartner(images, generator);
        var (boxHeight, boxWidth) = MixMath.CutSize(height, width, lambda);
        int centreY = MixRandom.UniformInt(height, generator);
        int centreX = MixRandom.UniformInt(width, generator);
        var box = MixMath.CenteredBox(height, width, centreY, centreX, boxHeight, boxWidth);
        var mask = MixMath.BoxMask(images.shape[0], height, width, box, images.device);
        var x = images.detach();
        var mixed = MixMath.MixByMask(x, x.index_select(0, partner), mask);
        return new MixCore(mixed, partner, MixOutputs.ConstantLambda(images, MixMath.BoxLambda(box, height, width)), mask);
    }
}
