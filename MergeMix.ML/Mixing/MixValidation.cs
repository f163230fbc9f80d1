using TorchSharp;
using static TorchSharp.torch;

namespace MergeMix.ML.Mixing;

/// <summary>Argument checks shared by every policy, so that bad input fails the same way everywhere.</summary>
public static class MixValidation
{
    /// <summary>
    /// Checks the arguments of <see cref="IMixPolicy.Mix"/>: <paramref name="images"/> float [B, C, H, W] with B ≥ 2
    /// and only finite values, <paramref name="labels"/> integer [B] in [0, <paramref name="classCount"/>), and a
    /// generator. Throws <see cref="ArgumentException"/> (or a subclass) naming the offending argument.
    /// </summary>
    public static void CheckBatch(Tensor images, Tensor labels, int classCount, Generator generator)
    {
        ArgumentNullException.ThrowIfNull(images);
        ArgumentNullException.ThrowIfNull(labels);
        ArgumentNullException.ThrowIfNull(generator);
        if (images.dim() != 4)
            throw new ArgumentException(
                $"images must be a 4-D float tensor [B, C, H, W]; got shape [{string.Join(", ", images.shape)}].", nameof(images));
        if (!images.is_floating_point())
            throw new ArgumentException($"images must hold floating-point values; got {images.dtype}.", nameof(images));
        long batch = images.shape[0];
        if (batch < 2)
            throw new ArgumentException($"images must hold at least 2 samples to mix (B ≥ 2); got B = {batch}.", nameof(images));
        if (images.shape[1] < 1 || images.shape[2] < 1 || images.shape[3] < 1)
            throw new ArgumentException(
                $"images must have C, H, W ≥ 1; got shape [{string.Join(", ", images.shape)}].", nameof(images));
        if (classCount < 1)
            throw new ArgumentOutOfRangeException(nameof(classCount), classCount, "classCount must be at least 1.");
        if (labels.dim() != 1 || labels.shape[0] != batch)
            throw new ArgumentException(
                $"labels must be a 1-D tensor of length B = {batch}; got shape [{string.Join(", ", labels.shape)}].", nameof(labels));
        if (labels.is_floating_point() || labels.dtype == ScalarType.Bool || labels.is_complex())
            throw new ArgumentException($"labels must hold integer class indices (int64); got {labels.dtype}.", nameof(labels));
        using (var min = labels.min())
        using (var max = labels.max())
        {
            long lo = min.to_type(ScalarType.Int64).item<long>(), hi = max.to_type(ScalarType.Int64).item<long>();
            if (lo < 0 || hi >= classCount)
                throw new ArgumentException(
                    $"labels must lie in [0, classCount = {classCount}); found values from {lo} to {hi}.", nameof(labels));
        }
        using (var finite = images.isfinite())
        using (var all = finite.all())
        {
            if (!all.item<bool>())
                throw new ArgumentException("images contains NaN or infinite values.", nameof(images));
        }
    }

    /// <summary>Returns <paramref name="value"/> when it is a finite number &gt; 0; otherwise throws naming <paramref name="optionName"/>.</summary>
    public static double Positive(double value, string optionName)
    {
        if (!(value > 0) || double.IsInfinity(value))
            throw new ArgumentOutOfRangeException(optionName, value, $"{optionName} must be a finite number > 0.");
        return value;
    }

    /// <summary>Returns <paramref name="value"/> when it lies in [0, 1]; otherwise throws naming <paramref name="optionName"/>.</summary>
    public static double Probability(double value, string optionName)
    {
        if (!(value >= 0 && value <= 1))
            throw new ArgumentOutOfRangeException(optionName, value, $"{optionName} must be a probability in [0, 1].");
        return value;
    }

    /// <summary>
    /// Checks that the image side lengths are multiples of <paramref name="patchSize"/> and returns the patch grid
    /// (rows, columns). Throws <see cref="ArgumentException"/> naming <c>images</c> otherwise.
    /// </summary>
    public static (int Rows, int Columns) PatchGrid(Tensor images, int patchSize, string patchSizeSource)
    {
        if (patchSize < 1)
            throw new ArgumentOutOfRangeException(patchSizeSource, patchSize, $"{patchSizeSource} must be at least 1.");
        long h = images.shape[2], w = images.shape[3];
        if (h % patchSize != 0 || w % patchSize != 0)
            throw new ArgumentException(
                $"images must have H and W divisible by the patch size {patchSize} ({patchSizeSource}); got H = {h}, W = {w}.",
                nameof(images));
        return ((int)(h / patchSize), (int)(w / patchSize));
    }
}
