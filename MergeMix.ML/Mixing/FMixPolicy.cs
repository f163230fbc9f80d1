using MergeMix.ML.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace MergeMix.ML.Mixing;

/// <summary>
/// FMix: one low-frequency Fourier noise image per batch (amplitude ∝ 1/f^<see cref="DecayPower"/>), binarised so that
/// its ⌊λ·H·W⌋ highest pixels (λ ~ Beta(α, α)) keep the original and the rest come from the partner; λ is then the
/// mask mean.
/// </summary>
public sealed class FMixPolicy : IMixPolicy
{
    private double _alpha = 1.0, _decayPower = 3.0;

    /// <summary>Beta(α, α) parameter (default 1.0, the OpenMixup baseline). Must be &gt; 0.</summary>
    public double Alpha { get => _alpha; set => _alpha = MixValidation.Positive(value, nameof(Alpha)); }

    /// <summary>Spectral decay power δ (default 3): larger values give smoother, blobbier masks. Must be &gt; 0.</summary>
    public double DecayPower { get => _decayPower; set => _decayPower = MixValidation.Positive(value, nameof(DecayPower)); }

    /// <inheritdoc/>
    public string Name => "fmix";

    /// <inheritdoc/>
    public bool NeedsAttention => false;

    /// <inheritdoc/>
    public MixResult Mix(Tensor images, Tensor labels, int classCount, Generator generator, IAttentionSource? attention = null)
    {
        MixValidation.CheckBatch(images, labels, classCount, generator);
        using var scope = torch.NewDisposeScope();
        using var noGrad = torch.no_grad();
        int height = (int)images.shape[2], width = (int)images.shape[3];
        double lambda = MixRandom.Beta(Alpha, generator);
        var partner = MixOutputs.DrawPartner(images, generator);
        var noise = LowFrequencyNoise(height, width, DecayPower, generator);
        int keep = MixMath.KeepCount(lambda, height * width);
        var pixelMask = MixMath.TopScoreMask(noise.reshape(1, height * width), keep)
            .reshape(1, 1, height, width).to(images.device).expand(images.shape[0], 1, height, width).contiguous();
        var x = images.detach();
        var mixed = MixMath.MixByMask(x, x.index_select(0, partner), pixelMask);
        var rowLambda = MixOutputs.ConstantLambda(images, (double)keep / (height * width));
        return MixOutputs.Finish(new MixCore(mixed, partner, rowLambda, pixelMask), labels, classCount);
    }

    /// <summary>
    /// Float64 [H, W] real noise whose spectrum has Gaussian real and imaginary parts scaled by 1/max(f, 1/max(H, W))^δ,
    /// f the radial frequency (cycles per pixel); drawn on the generator's device.
    /// </summary>
    public static Tensor LowFrequencyNoise(int height, int width, double decayPower, Generator generator)
    {
        using var scope = torch.NewDisposeScope();
        var device = generator.device;
        var fy = torch.fft.fftfreq(height, dtype: ScalarType.Float64, device: device).unsqueeze(1);
        var fx = torch.fft.rfftfreq(width, dtype: ScalarType.Float64, device: device).unsqueeze(0);
        var frequency = (fy * fy).add(fx * fx, Scalars.One).sqrt();
        using var lowest = (1.0 / Math.Max(height, width)).ToScalar();
        using var exponent = (-decayPower).ToScalar();
        var scale = frequency.clamp_min(lowest).pow(exponent);
        long[] spectrumShape = { height, width / 2 + 1 };
        var real = torch.randn(spectrumShape, ScalarType.Float64, device, generator: generator) * scale;
        var imaginary = torch.randn(spectrumShape, ScalarType.Float64, device, generator: generator) * scale;
        var noise = torch.fft.irfft2(torch.complex(real, imaginary), s: new long[] { height, width });
        return noise.MoveToOuterDisposeScope();
    }
}
