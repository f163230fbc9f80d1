using static TorchSharp.torch;

namespace MergeMix.ML.Vision;

/// <summary>Which part of a block's attention matrix gives each token its MergeMix score.</summary>
public enum AttentionDirection
{
    /// <summary>
    /// The CLS query's row, A[CLS, j]: how much the classification token reads token j (MergeMix's LLaVA code,
    /// <c>attention[:, :, 0, 1:]</c>). Each head's row sums to 1.
    /// </summary>
    ClsQuery,

    /// <summary>
    /// The CLS key's column, A[j, CLS]: how much token j reads the classification token (openmixup's classification
    /// path, column 0 of the head-summed attention).
    /// </summary>
    ClsKey,
}

/// <summary>Token scores taken from a softmax attention matrix.</summary>
public static class AttentionScores
{
    /// <summary>
    /// float [B, N] scores of the N tokens from <paramref name="attention"/> float [B, H, N, N] (query × key,
    /// rows softmax-normalised), averaged over the H heads. openmixup sums over heads; the mean only divides by H,
    /// so the ranking (and with it every mask) is the same, and a CLS-query row keeps summing to 1.
    /// </summary>
    public static Tensor FromAttention(Tensor attention, AttentionDirection direction)
    {
        ArgumentNullException.ThrowIfNull(attention);
        if (attention.dim() != 4 || attention.shape[2] != attention.shape[3])
            throw new ArgumentException($"attention must be [B, H, N, N]; got [{string.Join(", ", attention.shape)}].", nameof(attention));
        using var scope = NewDisposeScope();
        var perHead = direction switch
        {
            AttentionDirection.ClsQuery => attention.select(2, 0),
            AttentionDirection.ClsKey => attention.select(3, 0),
            _ => throw new ArgumentOutOfRangeException(nameof(direction), direction, "direction must be ClsQuery or ClsKey."),
        };
        return perHead.mean(new long[] { 1 }).MoveToOuterDisposeScope();
    }
}
