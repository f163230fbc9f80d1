using MergeMix.ML.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace MergeMix.ML.TokenMerging;

/// <summary>
/// The outcome of one bipartite soft matching step (ToMe) on a batch of N tokens: which tokens of set a (even
/// indices) are merged into which tokens of set b (odd indices), and where every token lands in the merged sequence
/// <c>[unmerged a-tokens in their original order, then all b-tokens in order]</c>. All index tensors are int64 on the
/// metric's device; the plan owns them. A plan with r = 0 is the identity: it neither merges nor reorders.
/// </summary>
/// <param name="TokenCount">N, the number of tokens the plan applies to.</param>
/// <param name="MergeCount">r, the number of tokens merged away (after clamping).</param>
/// <param name="UnmergedA">[B, ⌈N/2⌉ − r]: indices into set a of the tokens kept, ascending.</param>
/// <param name="MergedA">[B, r]: indices into set a of the merged tokens, most similar first.</param>
/// <param name="Destination">[B, r]: for each merged a-token, the index into set b of the token it joins.</param>
/// <param name="TokenMap">[B, N]: for each current token, its index in the merged sequence of N − r tokens.</param>
public sealed record MergePlan(int TokenCount, int MergeCount, Tensor UnmergedA, Tensor MergedA, Tensor Destination, Tensor TokenMap) : IDisposable
{
    /// <summary>Number of tokens after merging, N − r.</summary>
    public int OutputCount => TokenCount - MergeCount;

    /// <summary>Disposes the index tensors.</summary>
    public void Dispose()
    {
        UnmergedA.Dispose(); MergedA.Dispose(); Destination.Dispose(); TokenMap.Dispose();
    }
}

/// <summary>
/// Token Merging's bipartite soft matching (Bolya et al., ICLR 2023) as pure batch-first tensor functions, with
/// size-weighted merging and source-map tracking as used by MergeMix.
/// </summary>
public static class BipartiteSoftMatching
{
    private static readonly Scalar NormFloor = 1e-12;

    /// <summary>
    /// Plans the merge of <paramref name="r"/> tokens: L2-normalises <paramref name="metric"/>, splits tokens into
    /// a (even indices) and b (odd indices), scores every a-token by its best cosine similarity to a b-token, and
    /// merges the r best-scoring a-tokens into their matches. With <paramref name="protectClassToken"/> the token at
    /// index 0 (CLS, in set a) is never merged and stays at index 0. r is clamped to (N − protected)/2. Runs without
    /// gradient; ties are broken toward the lower index.
    /// </summary>
    /// <param name="metric">float [B, N, C] similarity features (ToMe uses the attention keys averaged over heads).</param>
    /// <param name="r">Requested number of merges (≥ 0).</param>
    /// <param name="protectClassToken">Keep token 0 out of the matching.</param>
    public static MergePlan Match(Tensor metric, int r, bool protectClassToken = true)
    {
        if (metric.dim() != 3) throw new ArgumentException($"metric must be [B, N, C]; got [{string.Join(", ", metric.shape)}].", nameof(metric));
        if (r < 0) throw new ArgumentOutOfRangeException(nameof(r), r, "r (tokens to merge) must be ≥ 0.");
        long batch = metric.shape[0], n = metric.shape[1];
        int protectedCount = protectClassToken ? 1 : 0;
        int merges = (int)Math.Max(0, Math.Min(r, (n - protectedCount) / 2));
        long na = (n + 1) / 2, nb = n / 2, kept = na - merges;
        var device = metric.device;

        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        if (merges == 0)
        {
            // Like the reference, nothing to merge means no reordering either.
            return new MergePlan((int)n, 0,
                Scalars.Arange(na, ScalarType.Int64, device).expand(batch, na).contiguous().MoveToOuterDisposeScope(),
                zeros(batch, 0, dtype: ScalarType.Int64, device: device).MoveToOuterDisposeScope(),
                zeros(batch, 0, dtype: ScalarType.Int64, device: device).MoveToOuterDisposeScope(),
                Scalars.Arange(n, ScalarType.Int64, device).expand(batch, n).contiguous().MoveToOuterDisposeScope());
        }

        // Clamping the norm keeps an all-zero token from turning every score into NaN.
        var unit = metric / metric.norm(-1, keepdim: true).clamp_min(NormFloor);
        var scores = unit.slice(1, 0, n, 2).matmul(unit.slice(1, 1, n, 2).transpose(1, 2)); // [B, na, nb]
        if (protectClassToken) scores.select(1, 0).fill_(Scalars.NegativeInfinity);
        var (best, bestIndex) = scores.max(-1);
        var order = best.sort(-1, descending: true, stable: true).Indices;
        var merged = order.slice(1, 0, merges, 1).contiguous();
        // Sorting the kept a-tokens restores their original order, so CLS (score −∞, never merged) stays first.
        var unmerged = order.slice(1, merges, na, 1).sort(-1).Values;
        var destination = bestIndex.gather(1, merged);

        var aMap = empty(batch, na, dtype: ScalarType.Int64, device: device);
        using var keptCount = kept.ToScalar();
        aMap.scatter_(1, unmerged, Scalars.Arange(kept, ScalarType.Int64, device).expand(batch, kept));
        aMap.scatter_(1, merged, destination.add(keptCount, Scalars.One));
        var tokenMap = empty(batch, n, dtype: ScalarType.Int64, device: device);
        tokenMap.slice(1, 0, n, 2).copy_(aMap);
        tokenMap.slice(1, 1, n, 2).copy_(Scalars.Arange(kept, kept + nb, ScalarType.Int64, device).expand(batch, nb));

        return new MergePlan((int)n, merges,
            unmerged.MoveToOuterDisposeScope(), merged.MoveToOuterDisposeScope(),
            destination.MoveToOuterDisposeScope(), tokenMap.MoveToOuterDisposeScope());
    }

    /// <summary>
    /// Applies <paramref name="plan"/> as a size-weighted average: every merged token becomes Σ(size·x)/Σsize over
    /// the tokens it absorbs, and its size becomes Σsize. Differentiable with respect to <paramref name="x"/>.
    /// Returns new tensors (aliases of the inputs when the plan merges nothing); the caller owns them.
    /// </summary>
    /// <param name="plan">A plan from <see cref="Match"/> for these N tokens.</param>
    /// <param name="x">float [B, N, C] tokens.</param>
    /// <param name="size">float [B, N, 1] number of original tokens each current token stands for.</param>
    public static (Tensor X, Tensor Size) MergeWeighted(MergePlan plan, Tensor x, Tensor size)
    {
        CheckTokens(plan, x, nameof(x));
        CheckTokens(plan, size, nameof(size));
        if (size.shape[2] != 1) throw new ArgumentException($"size must be [B, N, 1]; got [{string.Join(", ", size.shape)}].", nameof(size));
        if (plan.MergeCount == 0) return (x.alias(), size.alias());

        using var scope = NewDisposeScope();
        // TorchSharp has no scatter_reduce; summing every token into its TokenMap slot does the same in one op.
        var mergedSize = SumInto(plan, size);
        var mergedX = SumInto(plan, x * size) / mergedSize;
        return (mergedX.MoveToOuterDisposeScope(), mergedSize.MoveToOuterDisposeScope());
    }

    /// <summary>
    /// Moves a source map into the index space after <paramref name="plan"/>: <paramref name="sourceMap"/> gives,
    /// for each original patch, the index of the current token that holds it; the result gives the index of the
    /// merged token that holds it.
    /// </summary>
    /// <param name="plan">A plan from <see cref="Match"/>.</param>
    /// <param name="sourceMap">int64 [B, L], values in [0, N).</param>
    public static Tensor MergeSourceMap(MergePlan plan, Tensor sourceMap)
    {
        if (sourceMap.dim() != 2 || sourceMap.shape[0] != plan.TokenMap.shape[0])
            throw new ArgumentException($"sourceMap must be [B, L] with B = {plan.TokenMap.shape[0]}; got [{string.Join(", ", sourceMap.shape)}].", nameof(sourceMap));
        return plan.TokenMap.gather(1, sourceMap);
    }

    /// <summary>
    /// The source map before any merge: patch p (CLS excluded) is held by token p + 1. int64 [B, L].
    /// </summary>
    public static Tensor InitialSourceMap(long batch, long patchCount, Device? device = null)
        => Scalars.Arange(1, patchCount + 1, ScalarType.Int64, device).unsqueeze(0).expand(batch, patchCount).contiguous();

    /// <summary>
    /// Attention recovery: gives every original patch the value of the token that holds it.
    /// <paramref name="tokenValues"/> is [B, N] (one value per current token), <paramref name="sourceMap"/> int64
    /// [B, L]; the result is [B, L].
    /// </summary>
    public static Tensor Unmerge(Tensor tokenValues, Tensor sourceMap)
    {
        if (tokenValues.dim() != 2) throw new ArgumentException($"tokenValues must be [B, N]; got [{string.Join(", ", tokenValues.shape)}].", nameof(tokenValues));
        return tokenValues.gather(1, sourceMap);
    }

    private static Tensor SumInto(MergePlan plan, Tensor t)
    {
        long batch = t.shape[0], n = t.shape[1], c = t.shape[2];
        var index = plan.TokenMap.unsqueeze(-1).expand(batch, n, c);
        return zeros(batch, plan.OutputCount, c, dtype: t.dtype, device: t.device).scatter_add(1, index, t);
    }

    private static void CheckTokens(MergePlan plan, Tensor t, string name)
    {
        if (t.dim() != 3 || t.shape[1] != plan.TokenCount || t.shape[0] != plan.TokenMap.shape[0])
            throw new ArgumentException(
                $"{name} must be [{plan.TokenMap.shape[0]}, {plan.TokenCount}, C] to match the plan; got [{string.Join(", ", t.shape)}].", name);
    }
}
