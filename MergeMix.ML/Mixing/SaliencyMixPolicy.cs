using TorchSharp;
using static TorchSharp.torch;

namespace MergeMix.ML.Mixing;

/// <summary>
/// SaliencyMix: a CutMix-sized box (side ratio √(1−λ), λ ~ Beta(α, α) once per batch) centred on the spectral-residual
/// saliency peak of each row's partner image is pasted from that partner at the same place, clipped to the image;
/// each row's λ is the share of its image left outside its clipped box.
/// </summary>
/// <remarks>The original pastes one box, located on one source image, into the whole batch; here every row uses its own partner's peak.</remarks>
public sealed class SaliencyMixPolicy : IMixPolicy
{
    private double _alpha = 0.2, _blurSigma = 2.0;

    /// <summary>Beta(α, α) parameter (default 0.2, the OpenMixup baseline). Must be &gt; 0.</summary>
    public double Alpha { get => _alpha; set => _alpha = MixValidation.Positive(value, nameof(Alpha)); }

    /// <summary>Standard deviation, in pixels, of the Gaussian that smooths the saliency map (default 2; 0 = none).</summary>
    public double BlurSigma
    {
        get => _blurSigma;
        set => _blurSigma = value >= 0 && !double.IsInfinity(value)
            ? value
            : throw new ArgumentOutOfRangeException(nameof(BlurSigma), value, "BlurSigma must be a finite number ≥ 0.");
    }

    /// <inheritdoc/>
    public string Name => "saliencymix";

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
        var (boxHeight, boxWidth) = MixMath.CutSize(height, width, lambda);

        var x = images.detach();
        var peaks = SpectralResidual.Peaks(SpectralResidual.Saliency(SpectralResidual.Greyscale(x), BlurSigma));
        long[] partnerRows = partner.cpu().data<long>().ToArray();
        var boxes = partnerRows
            .Select(j => MixMath.CenteredBox(height, width, peaks[j].Y, peaks[j].X, boxHeight, boxWidth))
            .ToArray();
        var mask = MixMath.BoxMasks(boxes, height, width, images.device);
        var mixed = MixMath.MixByMask(x, x.index_select(0, partner), mask);
        var rowLambda = torch.tensor(boxes.Select(b => (float)MixMath.BoxLambda(b, height, width)).ToArray(),
            ScalarType.Float32, images.device);
        return MixOutputs.Finish(new MixCore(mixed, partner, rowLambda, mask), labels, classCount);
    }
}
