namespace MergeMix.ML.TokenMerging;

/// <summary>
/// Per-layer token-merge counts for a ToMe vision transformer, reproducing openmixup's
/// <c>parse_r</c> / <c>check_parse_r</c> (<c>openmixup/models/utils/merge.py</c>) and the way its MergeMix backbone
/// consumes them.
/// </summary>
public static class MergeSchedule
{
    /// <summary>
    /// openmixup's <c>parse_r(layerCount, (r, inflection), total)</c>: a linear list of <paramref name="layerCount"/>
    /// integers from <c>min = (int)(r·(1 − inflection))</c> to <c>max = 2r − min</c> (each entry truncated toward zero),
    /// so a negative inflection gives a decreasing schedule. When <paramref name="total"/> is given, the difference
    /// <c>total − sum</c> is added to the first layer (inflection &lt; 0) or to the last one (otherwise); that can make
    /// the first entry negative (24 layers, 98 merges → −4).
    /// </summary>
    /// <param name="layerCount">Number of transformer blocks (≥ 1).</param>
    /// <param name="r">Average merges per layer (≥ 0).</param>
    /// <param name="inflection">Trend of the schedule in [−1, 1]: −1 decreasing, 0 constant, +1 increasing.</param>
    /// <param name="total">Optional exact total the list must sum to.</param>
    /// <exception cref="ArgumentOutOfRangeException">layerCount &lt; 1, r &lt; 0 or inflection outside [−1, 1].</exception>
    public static int[] ParseR(int layerCount, int r, double inflection, int? total = null)
    {
        CheckLayerCount(layerCount);
        if (r < 0) throw new ArgumentOutOfRangeException(nameof(r), r, "r (merges per layer) must be ≥ 0.");
        CheckInflection(inflection);

        int min = (int)(r * (1.0 - inflection));
        int max = 2 * r - min;
        // The reference divides by (layerCount − 1) and fails for a single layer; one layer simply gets min.
        double step = layerCount == 1 ? 0.0 : (max - min) / (double)(layerCount - 1);
        var list = new int[layerCount];
        for (int i = 0; i < layerCount; i++)
            list[i] = (int)(min + step * i); // C# and Python both truncate toward zero here.

        if (total is int t)
        {
            int remainder = t - list.Sum();
            if (inflection < 0) list[0] += remainder;
            else list[^1] += remainder;
        }
        return list;
    }

    /// <summary>
    /// openmixup's <c>check_parse_r</c>: the r in [0, mergeCount) whose <see cref="ParseR"/> list (without a total)
    /// sums closest to <paramref name="mergeCount"/>; the scan stops at the first r that is strictly worse than the
    /// best so far, and ties keep the smaller r. Returns 0 when <paramref name="mergeCount"/> is 0.
    /// </summary>
    /// <param name="layerCount">Number of transformer blocks (≥ 1).</param>
    /// <param name="mergeCount">Total number of tokens to merge (≥ 0).</param>
    /// <param name="tokenCount">Number of patch tokens; only used when <paramref name="requireSquareKeep"/> is true.</param>
    /// <param name="inflection">Schedule trend in [−1, 1].</param>
    /// <param name="requireSquareKeep">
    /// The reference's <c>sqrt</c> flag: skip candidates whose kept token count <c>tokenCount − sum</c> is not a
    /// perfect square.
    /// </param>
    public static int CheckParseR(int layerCount, int mergeCount, int tokenCount, double inflection = -0.5, bool requireSquareKeep = false)
    {
        CheckLayerCount(layerCount);
        if (mergeCount < 0) throw new ArgumentOutOfRangeException(nameof(mergeCount), mergeCount, "mergeCount must be ≥ 0.");
        if (tokenCount < 0) throw new ArgumentOutOfRangeException(nameof(tokenCount), tokenCount, "tokenCount must be ≥ 0.");
        CheckInflection(inflection);

        long bestGap = long.MaxValue;
        int best = 0;
        for (int i = 0; i < mergeCount; i++)
        {
            long sum = ParseR(layerCount, i, inflection).Sum();
            long gap = Math.Abs(sum - mergeCount);
            if (bestGap > gap)
            {
                long keep = tokenCount - sum;
                if (requireSquareKeep && !IsPerfectSquare(keep)) continue;
                best = i;
                bestGap = gap;
            }
            else if (bestGap < gap)
            {
                break;
            }
        }
        return best;
    }

    /// <summary>
    /// The per-layer merge counts a backbone of <paramref name="layerCount"/> blocks over
    /// <paramref name="patchCount"/> patch tokens (plus one CLS token) actually applies for a total of
    /// <paramref name="mergeCount"/> merges: <c>ParseR(layerCount, CheckParseR(...), inflection, mergeCount)</c>, then
    /// each entry clamped to [0, mergeable/2] where mergeable is the number of non-CLS tokens entering that layer
    /// (bipartite matching cannot merge more than half of them). Negative entries merge nothing, as in the reference
    /// (its matching is the identity for r ≤ 0), so the sum can differ from <paramref name="mergeCount"/>: 24 layers
    /// and 98 merges give −4 on layer 0 and 102 merges in the other layers.
    /// </summary>
    /// <remarks>
    /// openmixup passes a hard-coded 196 (224/16 squared) as the token count because all its ToMe runs use
    /// 224-pixel inputs with 16-pixel patches. Here the patch count comes from the model (32×32 images with 4-pixel
    /// patches have 64), and it matters: the half-of-the-tokens clamp and the range check on
    /// <paramref name="mergeCount"/> are only right for the real count.
    /// </remarks>
    /// <exception cref="ArgumentOutOfRangeException">mergeCount &lt; 0 or ≥ patchCount, patchCount &lt; 1, layerCount &lt; 1.</exception>
    public static int[] ForModel(int layerCount, int mergeCount, int patchCount, double inflection = -0.5)
    {
        CheckLayerCount(layerCount);
        if (patchCount < 1) throw new ArgumentOutOfRangeException(nameof(patchCount), patchCount, "patchCount must be ≥ 1.");
        if (mergeCount < 0 || mergeCount >= patchCount)
            throw new ArgumentOutOfRangeException(nameof(mergeCount), mergeCount,
                $"mergeCount must be in [0, {patchCount - 1}] (fewer than the {patchCount} patch tokens).");

        int r = CheckParseR(layerCount, mergeCount, patchCount, inflection);
        int[] list = ParseR(layerCount, r, inflection, mergeCount);
        int mergeable = patchCount;
        for (int i = 0; i < list.Length; i++)
        {
            list[i] = Math.Clamp(list[i], 0, mergeable / 2);
            mergeable -= list[i];
        }
        return list;
    }

    private static bool IsPerfectSquare(long n)
    {
        if (n < 0) return false;
        long root = (long)Math.Sqrt(n);
        while (root * root > n) root--;
        while ((root + 1) * (root + 1) <= n) root++;
        return root * root == n;
    }

    private static void CheckLayerCount(int layerCount)
    {
        if (layerCount < 1) throw new ArgumentOutOfRangeException(nameof(layerCount), layerCount, "layerCount must be ≥ 1.");
    }

    private static void CheckInflection(double inflection)
    {
        if (!(inflection >= -1.0 && inflection <= 1.0))
            throw new ArgumentOutOfRangeException(nameof(inflection), inflection, "inflection must be in [-1, 1].");
    }
}
