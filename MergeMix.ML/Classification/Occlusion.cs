using MergeMix.ML.Data;
using MergeMix.ML.Mixing;
using MergeMix.ML.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace MergeMix.ML.Classification;

/// <summary>
/// Robustness to occlusion (the paper's occlusion tables, mergemix-method.md §5): top-1 accuracy when a random share
/// of every image's patches is hidden.
/// </summary>
public static class Occlusion
{
    /// <summary>The paper's fractions: 0, 0.1, …, 0.9 of the patches masked.</summary>
    public static IReadOnlyList<double> PaperFractions { get; } = Array.AsReadOnly(Enumerable.Range(0, 10).Select(i => i / 10.0).ToArray());

    /// <summary>
    /// Top-1 accuracy of <paramref name="model"/> on <paramref name="set"/> for every fraction f of
    /// <paramref name="fractions"/>: in each image, ⌊f·L⌋ of the L patches of the model's patch grid are replaced by the
    /// model's per-channel mean (zero after its normalisation). The patches are a seeded random ranking per image, the
    /// same for every fraction, so a larger fraction hides a superset of what a smaller one hides; the result depends
    /// only on the model, the set, the fractions and <paramref name="seed"/> (not on <paramref name="batchSize"/>).
    /// The model runs in eval mode, with token merging as its <c>Backbone.MergeEnabled</c> says.
    /// </summary>
    /// <param name="model">The classifier; its training flag is restored afterwards.</param>
    /// <param name="set">Images of the model's shape (raw pixels) with their labels.</param>
    /// <param name="fractions">Shares of masked patches, each in [0, 1].</param>
    /// <param name="seed">Seed of the patch rankings.</param>
    /// <param name="batchSize">Images per forward pass (≥ 1).</param>
    /// <returns>Accuracy in [0, 1] per fraction, in the order of <paramref name="fractions"/>.</returns>
    public static IReadOnlyList<double> Curve(ImageClassifierModel model, LabeledImageSet set, IReadOnlyList<double> fractions, int seed, int batchSize = 256)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(set);
        ArgumentNullException.ThrowIfNull(fractions);
        var o = model.Options;
        if (set.Channels != o.Channels || set.Height != o.ImageSize || set.Width != o.ImageSize)
            throw new ArgumentException($"The set's images are {set.Channels}×{set.Height}×{set.Width}, the model expects {o.Channels}×{o.ImageSize}×{o.ImageSize}.", nameof(set));
        if (set.Count == 0) throw new ArgumentException("The set has no images.", nameof(set));
        if (fractions.Count == 0) throw new ArgumentException("Give at least one fraction.", nameof(fractions));
        foreach (double f in fractions)
            if (!(f >= 0 && f <= 1)) throw new ArgumentOutOfRangeException(nameof(fractions), $"Every fraction must be in [0, 1], got {f}.");
        if (batchSize < 1) throw new ArgumentOutOfRangeException(nameof(batchSize), $"batchSize must be ≥ 1, got {batchSize}.");

        int length = o.PatchCount;
        var counts = fractions.Select(f => MaskedCount(f, length)).ToArray();
        var correct = new long[fractions.Count];
        var device = model.parameters().First().device;
        bool wasTraining = model.training;
        model.eval();
        try
        {
            using var noGrad = no_grad();
            using var generator = new Generator((ulong)seed);
            // One draw for the whole set up front, so the ranking of image i does not depend on the batching.
            using var rankings = rand(new long[] { set.Count, length }, generator: generator);
            using var mean = tensor(model.ChannelMean.ToArray(), new long[] { 1, o.Channels, 1, 1 }, device: device);
            int size = set.ImageSize;
            for (int start = 0; start < set.Count; start += batchSize)
            {
                int n = Math.Min(batchSize, set.Count - start);
                using var scope = NewDisposeScope();
                var images = tensor(set.Pixels.AsSpan(start * size, n * size).ToArray(), new long[] { n, o.Channels, o.ImageSize, o.ImageSize }, device: device);
                var labels = tensor(set.Labels.AsSpan(start, n).ToArray().Select(l => (long)l).ToArray(), device: device);
                var scores = rankings.narrow(0, start, n).to(device);
                for (int i = 0; i < counts.Length; i++)
                {
                    using var inner = NewDisposeScope();
                    var occluded = Occlude(images, scores, counts[i], mean, o.GridSize, o.PatchSize);
                    correct[i] += model.call(occluded).argmax(1).eq(labels).sum().item<long>();
                }
            }
        }
        finally
        {
            model.train(wasTraining);
        }
        return Array.AsReadOnly(correct.Select(c => c / (double)set.Count).ToArray());
    }

    /// <summary>⌊f·L⌋, the number of patches hidden at fraction f, clamped to [0, L] against rounding.</summary>
    internal static int MaskedCount(double fraction, int length) => MixMath.KeepCount(fraction, length);

    /// <summary>
    /// Images [B, C, H, W] with the <paramref name="masked"/> highest-scoring patches of each row of
    /// <paramref name="scores"/> [B, L] replaced by <paramref name="fill"/> [1, C, 1, 1].
    /// </summary>
    internal static Tensor Occlude(Tensor images, Tensor scores, int masked, Tensor fill, int grid, int patchSize)
    {
        using var scope = NewDisposeScope();
        var hidden = MixMath.UpsamplePatchMask(MixMath.TopScoreMask(scores, masked), grid, grid, patchSize);
        return (images * Scalars.OneMinus(hidden)).add(fill * hidden, Scalars.One).MoveToOuterDisposeScope();
    }
}
