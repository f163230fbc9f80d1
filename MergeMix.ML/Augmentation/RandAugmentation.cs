using MergeMix.ML.Data;
using TorchSharp;
using static TorchSharp.torch;

namespace MergeMix.ML.Augmentation;

/// <summary>
/// TorchVision's RandAugment applied image by image to a float batch of 8-bit pixel values, with every random draw
/// taken from one seeded <see cref="Generator"/> (same generator state, same batch → same output).
/// </summary>
/// <remarks>
/// TorchVision draws one set of operations per call, so a whole-batch call would give every image the same
/// operations; per-image calls give each its own, as the recipe intends. Its operations need uint8 images
/// (equalize and posterize reject floats) and only handle 3 channels (equalize fails on 1), so the batch is
/// quantised to bytes (lossless for decoded images) and grey images go through as three equal channels, which every
/// operation keeps equal. TorchVision's operations pass temporary torch Scalars to native code, so they are exposed to
/// TorchSharp 0.107's Scalar finalizer race; the trainer's per-epoch checkpoints are the protection there.
/// </remarks>
public sealed class RandAugmentation
{
    private readonly torchvision.ITransform _transform;

    /// <summary>Creates the transform; <paramref name="generator"/> (CPU) supplies every random draw and must outlive it.</summary>
    public RandAugmentation(RandAugmentOptions options, Generator generator)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(generator);
        options.Validate(nameof(options));
        _transform = torchvision.transforms.RandAugment(options.Operations, options.Magnitude, options.MagnitudeBins, generator: generator);
    }

    /// <summary>
    /// Augments float [B, C, H, W] (C = 1 or 3) pixel values 0..255 on the CPU; returns a new float tensor of the same
    /// shape with whole-number values.
    /// </summary>
    public Tensor Apply(Tensor images)
    {
        ArgumentNullException.ThrowIfNull(images);
        if (images.dim() != 4 || (images.shape[1] != 1 && images.shape[1] != 3))
            throw new ArgumentException($"RandAugment needs images [B, C, H, W] with C = 1 or 3; got [{string.Join(", ", images.shape)}].", nameof(images));
        using var scope = NewDisposeScope();
        using Scalar low = 0, high = 255;
        var bytes = images.round().clamp(low, high).to(ScalarType.Byte);
        bool grey = images.shape[1] == 1;
        var augmented = new Tensor[bytes.shape[0]];
        for (int i = 0; i < augmented.Length; i++)
        {
            var image = grey ? bytes[i].expand(3, -1, -1).contiguous() : bytes[i];
            var result = _transform.call(image);
            augmented[i] = grey ? result[TensorIndex.Slice(0, 1)] : result;
        }
        return stack(augmented).to(ScalarType.Float32).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// Throws when <paramref name="set"/> holds values outside 0..255: RandAugment's operations assume 8-bit pixels
    /// (ML.NET's <c>ExtractPixels</c> with its default scale), and would otherwise clip the data silently.
    /// </summary>
    public static void CheckPixelRange(LabeledImageSet set, string optionName)
    {
        ArgumentNullException.ThrowIfNull(set);
        float min = float.PositiveInfinity, max = float.NegativeInfinity;
        foreach (float v in set.Pixels)
        {
            if (v < min) min = v;
            if (v > max) max = v;
        }
        if (!(min >= 0 && max <= 255))
            throw new ArgumentException(
                $"{optionName} works on 8-bit pixel values 0..255 (ExtractPixels with its default scale and offset); the training images hold values in [{min}, {max}].",
                optionName);
    }
}
