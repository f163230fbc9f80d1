using MergeMix.ML.Mixing;
using static TorchSharp.torch;

namespace MergeMix.ML.Vision;

/// <summary>
/// <see cref="IAttentionSource"/> backed by a <see cref="VisionTransformer"/>: the recovered CLS attention of its
/// <see cref="VisionTransformer.AttentionLayer"/>, computed in eval mode without gradient, with token merging on iff
/// the model's <see cref="VisionTransformer.MergeEnabled"/>.
/// </summary>
public sealed class VisionTransformerAttentionSource : IAttentionSource
{
    private readonly VisionTransformer model;

    /// <summary>Wraps <paramref name="model"/> (not owned: the caller keeps disposing it).</summary>
    public VisionTransformerAttentionSource(VisionTransformer model)
    {
        this.model = model ?? throw new ArgumentNullException(nameof(model));
    }

    /// <inheritdoc />
    public int PatchSize => model.PatchSize;

    /// <summary>
    /// float [B, PatchCount] recovered attention scores (row-major patch order) on the images' device. The model's
    /// training flag is restored afterwards, so this can run in the middle of a training step.
    /// </summary>
    public Tensor PatchAttention(Tensor images)
    {
        bool wasTraining = model.training;
        model.eval();
        try
        {
            using var scope = NewDisposeScope();
            using var noGrad = no_grad();
            return model.PatchAttention(images, model.MergeEnabled).MoveToOuterDisposeScope();
        }
        finally
        {
            if (wasTraining) model.train();
        }
    }
}
