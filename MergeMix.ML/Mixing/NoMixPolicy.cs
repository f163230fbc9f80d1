using MergeMix.ML.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace MergeMix.ML.Mixing;

/// <summary>
/// The identity policy ("none"): images unchanged, each row its own partner, λ = 1 and one-hot soft labels, so a
/// trainer can run every configuration through the same <see cref="IMixPolicy"/> path.
/// </summary>
public sealed class NoMixPolicy : IMixPolicy
{
    /// <inheritdoc/>
    public string Name => "none";

    /// <inheritdoc/>
    public bool NeedsAttention => false;

    /// <inheritdoc/>
    public MixResult Mix(Tensor images, Tensor labels, int classCount, Generator generator, IAttentionSource? attention = null)
    {
        MixValidation.CheckBatch(images, labels, classCount, generator);
        using var scope = torch.NewDisposeScope();
        using var noGrad = torch.no_grad();
        // A copy, because the caller disposes the result and must not lose its input with it.
        var mixed = images.detach().clone();
        var partner = Scalars.Arange(images.shape[0], ScalarType.Int64, images.device);
        return MixOutputs.Finish(new MixCore(mixed, partner, MixOutputs.ConstantLambda(images, 1.0), null), labels, classCount);
    }
}
