using MergeMix.ML.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace MergeMix.ML.Mixing;

/// <summary>
/// Spectral-residual saliency (Hou and Zhang, CVPR 2007), the detector SaliencyMix uses: the log-amplitude spectrum
/// minus its local 3×3 mean, recombined with the original phase, transformed back, squared and blurred.
/// </summary>
public static class SpectralResidual
{
    // ITU-R BT.601 luma weights.
    private static readonly Scalar Red = 0.299, Green = 0.587, Blue = 0.114;
    private static readonly Scalar AmplitudeFloor = 1e-12;

    /// <summary>Float64 [B, H, W] luminance: ITU-R BT.601 weights for 3 channels, the channel mean otherwise.</summary>
    public static Tensor Greyscale(Tensor images)
    {
        using var scope = torch.NewDisposeScope();
        var x = images.detach().to_type(ScalarType.Float64);
        Tensor grey = x.shape[1] == 3
            ? x.select(1, 0).mul(Red).add(x.select(1, 1).mul(Green), Scalars.One).add(x.select(1, 2).mul(Blue), Scalars.One)
            : x.mean(new long[] { 1 });
        return grey.MoveToOuterDisposeScope();
    }

    /// <summary>
    /// Float64 [B, H, W] saliency of float [B, H, W] greyscale maps, blurred with a Gaussian of
    /// <paramref name="blurSigma"/> pixels (0 = no blur). The spectrum is treated as periodic for the 3×3 mean.
    /// </summary>
    public static Tensor Saliency(Tensor grey, double blurSigma)
    {
        if (grey.dim() != 3) throw new ArgumentException($"grey must be [B, H, W]; got [{string.Join(", ", grey.shape)}].", nameof(grey));
        using var scope = torch.NewDisposeScope();
        var spectrum = torch.fft.fft2(grey.to_type(ScalarType.Float64));
        // The floor keeps log finite at frequencies with no energy (a flat image has only the DC term).
        var logAmplitude = spectrum.abs().clamp_min(AmplitudeFloor).log();
        var padded = torch.nn.functional.pad(logAmplitude.unsqueeze(1), new long[] { 1, 1, 1, 1 }, PaddingModes.Circular);
        var localMean = torch.nn.functional.avg_pool2d(padded, 3, stride: 1).squeeze(1);
        var residual = (logAmplitude - localMean).exp();
        var back = torch.fft.ifft2(torch.polar(residual, spectrum.angle()));
        var magnitude = back.abs();
        var saliency = magnitude * magnitude;
        return GaussianBlur(saliency, blurSigma).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// Separable Gaussian blur of [B, H, W] maps with standard deviation <paramref name="sigma"/> pixels (radius ⌈3σ⌉,
    /// edges replicated). σ = 0 returns a copy.
    /// </summary>
    public static Tensor GaussianBlur(Tensor maps, double sigma)
    {
        if (!(sigma >= 0) || double.IsInfinity(sigma))
            throw new ArgumentOutOfRangeException(nameof(sigma), sigma, "sigma must be a finite number ≥ 0.");
        if (sigma == 0) return maps.clone();
        using var scope = torch.NewDisposeScope();
        int radius = (int)Math.Ceiling(3 * sigma);
        var weights = new double[2 * radius + 1];
        for (int t = -radius; t <= radius; t++) weights[t + radius] = Math.Exp(-(double)t * t / (2 * sigma * sigma));
        double total = weights.Sum();
        for (int t = 0; t < weights.Length; t++) weights[t] /= total;
        var kernel = torch.tensor(weights, maps.dtype, maps.device);
        var x = maps.unsqueeze(1);
        x = torch.nn.functional.pad(x, new long[] { radius, radius, 0, 0 }, PaddingModes.Replicate);
        x = torch.nn.functional.conv2d(x, kernel.reshape(1, 1, 1, -1));
        x = torch.nn.functional.pad(x, new long[] { 0, 0, radius, radius }, PaddingModes.Replicate);
        x = torch.nn.functional.conv2d(x, kernel.reshape(1, 1, -1, 1));
        return x.squeeze(1).MoveToOuterDisposeScope();
    }

    /// <summary>(row, column) of each map's maximum; the first in row-major order when several pixels tie.</summary>
    public static (int Y, int X)[] Peaks(Tensor maps)
    {
        using var scope = torch.NewDisposeScope();
        int width = (int)maps.shape[2];
        long[] flat = maps.flatten(1).argmax(1).cpu().data<long>().ToArray();
        return flat.Select(i => ((int)(i / width), (int)(i % width))).ToArray();
    }
}
