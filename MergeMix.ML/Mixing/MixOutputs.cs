using MergeMix.ML.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace MergeMix.ML.Mixing;

/// <summary>The tensors a policy's core produces, still owned by the caller's dispose scope.</summary>
/// <param name="Mixed">float [B, C, H, W] mixed images.</param>
/// <param name="Partner">int64 [B] partner rows.</param>
/// <param name="Lambda">float32 [B] label share of each row's own class.</param>
/// <param name="Mask">float32 [B, 1, H, W] (1 = original pixel) or null for blends.</param>
internal readonly record struct MixCore(Tensor Mixed, Tensor Partner, Tensor Lambda, Tensor? Mask);

/// <summary>Shared steps of every policy: drawing partners and packaging the result out of the call's dispose scope.</summary>
internal static class MixOutputs
{
    /// <summary>A derangement of the batch rows as an int64 tensor on the images' device.</summary>
    internal static Tensor DrawPartner(Tensor images, Generator generator)
    {
        long[] partner = MixRandom.PartnerPermutation((int)images.shape[0], generator);
        return torch.tensor(partner, ScalarType.Int64, images.device);
    }

    /// <summary>A float32 [B] tensor filled with <paramref name="lambda"/> on the images' device.</summary>
    internal static Tensor ConstantLambda(Tensor images, double lambda)
    {
        using var value = lambda.ToScalar();
        return torch.full(new long[] { images.shape[0] }, value, ScalarType.Float32, images.device);
    }

    /// <summary>
    /// Builds the <see cref="MixResult"/> (soft labels, a copy of the labels) and moves every tensor out of the
    /// current dispose scope, so the caller owns exactly what the result holds.
    /// </summary>
    internal static MixResult Finish(MixCore core, Tensor labels, int classCount)
    {
        var y = labels.to_type(ScalarType.Int64).to(core.Mixed.device).clone();
        var soft = MixMath.SoftLabels(y, core.Partner, core.Lambda, classCount);
        return new MixResult(
            core.Mixed.MoveToOuterDisposeScope(),
            core.Partner.MoveToOuterDisposeScope(),
            core.Lambda.MoveToOuterDisposeScope(),
            soft.MoveToOuterDisposeScope(),
            core.Mask?.MoveToOuterDisposeScope())
        {
            Labels = y.MoveToOuterDisposeScope(),
        };
    }

    /// <summary>Calls the attention source and checks that it returned one score per patch for every row.</summary>
    internal static Tensor PatchScores(IAttentionSource attention, Tensor images, int patchCount)
    {
        var scores = attention.PatchAttention(images);
        if (scores is null || scores.dim() != 2 || scores.shape[0] != images.shape[0] || scores.shape[1] != patchCount)
            throw new InvalidOperationException(
                $"The attention source must return [B, L] = [{images.shape[0]}, {patchCount}] patch scores; got " +
                (scores is null ? "null." : $"[{string.Join(", ", scores.shape)}]."));
        var onDevice = scores.to(ScalarType.Float32, images.device);
        using (var finite = onDevice.isfinite())
        using (var all = finite.all())
        {
            if (!all.item<bool>())
                throw new InvalidOperationException("The attention source returned NaN or infinite patch scores.");
        }
        return onDevice;
    }
}
