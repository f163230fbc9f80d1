using MergeMix.ML.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace MergeMix.ML.Alignment;

/// <summary>
/// Per-sequence response log-probabilities: <see cref="Sum"/> = S(y) = Σ_t log π(y_t | ·) over scored tokens and
/// <see cref="TokenCount"/> = |y|. Both are [B]; the caller owns (disposes) them.
/// </summary>
/// <param name="Sum">float [B]: summed log-probs of the scored tokens (0 for a row without any).</param>
/// <param name="TokenCount">float [B]: number of scored tokens per row.</param>
public sealed record SequenceLogProb(Tensor Sum, Tensor TokenCount) : IDisposable
{
    /// <summary>
    /// A(y) = S(y) / |y| (SimPO, IPO), with the count clamped to at least 1 so a row without scored tokens gives 0,
    /// not NaN. The caller owns the result.
    /// </summary>
    public Tensor Average()
    {
        using var scope = NewDisposeScope();
        return (Sum / TokenCount.clamp_min(Scalars.One)).MoveToOuterDisposeScope();
    }

    /// <summary>Disposes both tensors.</summary>
    public void Dispose()
    {
        Sum.Dispose(); TokenCount.Dispose();
    }
}

/// <summary>
/// Scores label sequences under a causal LM's logits, the way DPO, SimPO and TRL do it: logits at position t predict
/// the label at t + 1, positions labelled <see cref="IgnoreIndex"/> (prompt, padding) are left out.
/// </summary>
public static class SequenceLogProbs
{
    /// <summary>Label value of positions that are not scored (prompt tokens, padding), as in PyTorch/TRL.</summary>
    public const long IgnoreIndex = -100;

    private static readonly Scalar IgnoreIndexScalar = IgnoreIndex;

    /// <summary>
    /// Computes summed response log-probs and token counts.
    /// </summary>
    /// <param name="logits">float [B, T, V]: text logits (image positions already dropped), position t predicting token t + 1.</param>
    /// <param name="labels">int64 [B, T]: target ids aligned with the input ids, <see cref="IgnoreIndex"/> where not scored.</param>
    /// <returns>Sums and counts [B]; the log-softmax is taken in fp32 (or fp64 for fp64 logits).</returns>
    public static SequenceLogProb Compute(Tensor logits, Tensor labels)
    {
        ArgumentNullException.ThrowIfNull(logits);
        ArgumentNullException.ThrowIfNull(labels);
        if (logits.dim() != 3)
            throw new ArgumentException($"logits must be [B, T, V], got shape [{string.Join(", ", logits.shape)}].", nameof(logits));
        if (labels.dim() != 2 || labels.shape[0] != logits.shape[0] || labels.shape[1] != logits.shape[1])
            throw new ArgumentException(
                $"labels must be [B, T] = [{logits.shape[0]}, {logits.shape[1]}] to match logits, got [{string.Join(", ", labels.shape)}].", nameof(labels));
        if (labels.dtype != ScalarType.Int64)
            throw new ArgumentException($"labels must be int64, got {labels.dtype}.", nameof(labels));
        long vocab = logits.shape[2];

        using var scope = NewDisposeScope();
        // Position t predicts label t + 1: drop the last logit row and the first label.
        var shiftedLabels = labels[.., 1..];
        var mask = shiftedLabels.ne(IgnoreIndexScalar);
        var scoredLabels = shiftedLabels.masked_select(mask);
        if (scoredLabels.numel() > 0)
        {
            long min = scoredLabels.min().item<long>(), max = scoredLabels.max().item<long>();
            if (min < 0 || max >= vocab)
                throw new ArgumentException(
                    $"labels contain id {(min < 0 ? min : max)}, outside [0, {vocab}) and not {IgnoreIndex}.", nameof(labels));
        }
        var working = logits.dtype == ScalarType.Float64 ? ScalarType.Float64 : ScalarType.Float32;
        var logProbs = logits[.., ..^1, ..].to_type(working).log_softmax(-1);
        // Ignored positions gather a dummy index 0 and are then zeroed by the mask.
        var index = shiftedLabels.masked_fill(mask.logical_not(), Scalars.Zero).unsqueeze(-1);
        var tokenLogProbs = logProbs.gather(-1, index).squeeze(-1);
        var maskF = mask.to_type(working);
        var sum = (tokenLogProbs * maskF).sum(1);
        var count = maskF.sum(1);
        return new SequenceLogProb(sum.MoveToOuterDisposeScope(), count.MoveToOuterDisposeScope());
    }
}
