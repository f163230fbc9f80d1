using TorchSharp;
using static TorchSharp.torch;

namespace MergeMix.ML.Mixing;

/// <summary>
/// ResizeMix: the whole partner image is shrunk (bilinear) into a box of side ratio τ ~ U(<see cref="MinScale"/>,
/// <see cref="MaxScale"/>) at a uniform position inside the image (one box per batch); λ = 1 − box area/(H·W).
/// </summary>
public sealed class ResizeMixPolicy : IMixPolicy
{
    private double _minScale = 0.1, _maxScale = 0.8;

    /// <summary>Smallest box side ratio τ (default 0.1). In (0, 1] and ≤ <see cref="MaxScale"/>.</summary>
    public double MinScale { get => _minScale; set => _minScale = CheckScale(value, nameof(MinScale)); }

    /// <summary>Largest box side ratio τ (default 0.8). In (0, 1] and ≥ <see cref="MinScale"/>.</summary>
    public double MaxScale { get => _maxScale; set => _maxScale = CheckScale(value, nameof(MaxScale)); }

    /// <inheritdoc/>
    public string Name => "resizemix";

    /// <inheritdoc/>
    public bool NeedsAttention => false;

    /// <inheritdoc/>
    public MixResult Mix(Tensor images, Tensor labels, int classCount, Generator generator, IAttentionSource? attention = null)
    {
        MixValidation.CheckBatch(images, labels, classCount, generator);
        if (MinScale > MaxScale)
            throw new ArgumentOutOfRangeException(nameof(MinScale), MinScale, $"MinScale must not exceed MaxScale = {MaxScale}.");
        using var scope = torch.NewDisposeScope();
        using var noGrad = torch.no_grad();
        int height = (int)images.shape[2], width = (int)images.shape[3];
        double tau = MixRandom.Uniform(MinScale, MaxScale, generator);
        var partner = MixOutputs.DrawPartner(images, generator);
        var (boxHeight, boxWidth) = BoxSize(height, width, tau);
        int top = MixRandom.UniformInt(height - boxHeight + 1, generator);
        int left = MixRandom.UniformInt(width - boxWidth + 1, generator);
        var box = new PixelBox(top, left, top + boxHeight, left + boxWidth);

        var x = images.detach();
        var shrunk = torch.nn.functional.interpolate(x.index_select(0, partner), new long[] { boxHeight, boxWidth },
            mode: InterpolationMode.Bilinear, align_corners: false);
        var mixed = x.clone();
        mixed.narrow(2, top, boxHeight).narrow(3, left, boxWidth).copy_(shrunk);
        var mask = MixMath.BoxMask(images.shape[0], height, width, box, images.device);
        var lambda = MixOutputs.ConstantLambda(images, MixMath.BoxLambda(box, height, width));
        return MixOutputs.Finish(new MixCore(mixed, partner, lambda, mask), labels, classCount);
    }

    /// <summary>Box sides for ratio τ: each image side times τ, truncated, at least one pixel.</summary>
    public static (int Height, int Width) BoxSize(int height, int width, double tau) =>
        (Math.Clamp((int)(height * tau), 1, height), Math.Clamp((int)(width * tau), 1, width));

    private static double CheckScale(double value, string name)
    {
        if (!(value > 0 && value <= 1))
            throw new ArgumentOutOfRangeException(name, value, $"{name} must lie in (0, 1].");
        return value;
    }
}
