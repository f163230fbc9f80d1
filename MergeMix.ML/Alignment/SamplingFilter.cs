using TorchSharp;
using static TorchSharp.torch;

namespace MergeMix.ML.Alignment;

/// <summary>Temperature, top-k and top-p (nucleus) filtering of next-token logits, as Hugging Face's logits warpers do it.</summary>
public static class SamplingFilter
{
    /// <summary>
    /// Returns logits / temperature with every token outside the top-k, then outside the nucleus of mass
    /// <paramref name="topP"/>, set to −∞; the most likely token is always kept. The caller owns the result.
    /// </summary>
    /// <param name="logits">float [B, V].</param>
    /// <param name="temperature">&gt; 0.</param>
    /// <param name="topK">Tokens kept per row (0 = no limit; larger than V = no limit).</param>
    /// <param name="topP">Nucleus mass in (0, 1]: tokens are removed while the probability mass of the less likely ones
    /// stays at or below 1 − p (Hugging Face's rule); 1 = no limit.</param>
    public static Tensor Apply(Tensor logits, double temperature, int topK, double topP)
    {
        ArgumentNullException.ThrowIfNull(logits);
        if (logits.dim() != 2) throw new ArgumentException($"logits must be [B, V], got [{string.Join(", ", logits.shape)}].", nameof(logits));
        if (!(temperature > 0) || double.IsInfinity(temperature))
            throw new ArgumentOutOfRangeException(nameof(temperature), temperature, "temperature must be finite and > 0 to sample.");
        Check(topK, topP);
        using var scope = NewDisposeScope();
        using var t = temperature.ToScalar();
        using var minusInfinity = double.NegativeInfinity.ToScalar();
        var scores = logits.to_type(ScalarType.Float32).div(t);
        long vocab = scores.shape[1];
        if (topK > 0 && topK < vocab)
        {
            var kth = scores.topk(topK, dim: -1).values.narrow(1, topK - 1, 1);
            scores = scores.masked_fill(scores.lt(kth), minusInfinity);
        }
        if (topP < 1)
        {
            var (sorted, indices) = scores.sort(dim: -1, descending: false);
            var cumulative = sorted.softmax(-1).cumsum(-1);
            using var limit = (1 - topP).ToScalar();
            var remove = cumulative.le(limit);
            // The most likely token (last in ascending order) always stays.
            using var keep = false.ToScalar();
            remove.narrow(1, vocab - 1, 1).fill_(keep);
            var removeByToken = remove.scatter(1, indices, remove);
            scores = scores.masked_fill(removeByToken, minusInfinity);
        }
        return scores.MoveToOuterDisposeScope();
    }

    internal static void Check(int topK, double topP)
    {
        if (topK < 0) throw new ArgumentOutOfRangeException(nameof(topK), topK, "topK must be ≥ 0 (0 = no limit).");
        if (!(topP > 0 && topP <= 1)) throw new ArgumentOutOfRangeException(nameof(topP), topP, "topP must lie in (0, 1] (1 = no limit).");
    }
}
