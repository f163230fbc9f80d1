using static TorchSharp.torch;

namespace MergeMix.ML.Vision;

/// <summary>
/// Everything one <see cref="VisionTransformer.Forward"/> call produced. The caller owns (disposes) the tensors.
/// </summary>
/// <param name="Logits">float [B, ClassCount].</param>
/// <param name="PatchAttention">
/// float [B, PatchCount] or null: the recovered CLS attention of the attention layer, one score per original patch
/// in row-major order (every patch gets the score of the token that holds it at that layer).
/// </param>
/// <param name="Features">float [B, T, Width] or null: the tokens output by the requested block, CLS dropped.</param>
/// <param name="TokenCounts">Number of tokens (CLS included) entering each block.</param>
/// <param name="TokenAttention">
/// float [B, N] or null: the same attention before recovery, over the N tokens entering the attention layer
/// (column 0 is CLS with itself); with <see cref="AttentionDirection.ClsQuery"/> each row sums to 1.
/// </param>
/// <param name="SourceMap">
/// int64 [B, PatchCount] or null: for each original patch, the index (in [1, N)) of the token entering the attention
/// layer that holds it.
/// </param>
public sealed record VisionForward(
    Tensor Logits, Tensor? PatchAttention, Tensor? Features, int[] TokenCounts, Tensor? TokenAttention, Tensor? SourceMap) : IDisposable
{
    /// <summary>Disposes every tensor of the result.</summary>
    public void Dispose()
    {
        Logits.Dispose(); PatchAttention?.Dispose(); Features?.Dispose(); TokenAttention?.Dispose(); SourceMap?.Dispose();
    }
}
