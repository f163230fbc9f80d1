using TorchSharp;
using static TorchSharp.torch;

namespace MergeMix.ML.Mixing;

/// <summary>
/// The MergeMix ablation without attention: each image keeps ⌊λ·L⌋ patches chosen uniformly at random (one ranking
/// per row from the generator) and takes the rest from its partner; λ ~ Beta(α, α) once per batch.
/// </summary>
public sealed class MergeMixRandomPolicy : IMixPolicy
{
    private double _alpha = 1.0;
    private int _patchSize = 4;

    /// <summary>Beta(α, α) parameter (default 1.0, as MergeMix). Must be &gt; 0.</summary>
    public double Alpha { get => _alpha; set => _alpha = MixValidation.Positive(value, nameof(Alpha)); }

    /// <summary>Side of a square patch in pixels (default 4); image sides must be multiples of it.</summary>
    public int PatchSize
    {
        get => _patchSize;
        set => _patchSize = value >= 1 ? value : throw new ArgumentOutOfRangeException(nameof(PatchSize), value, "PatchSize must be at least 1.");
    }

    /// <inheritdoc/>
    public string Name => "mergemix-random";

    /// <inheritdoc/>
    public bool NeedsAttention => false;

    /// <inheritdoc/>
    public MixResult Mix(Tensor images, Tensor labels, int classCount, Generator generator, IAttentionSource? attention = null)
    {
        MixValidation.CheckBatch(images, labels, classCount, generator);
        var (rows, columns) = MixValidation.PatchGrid(images, PatchSize, nameof(PatchSize));
        using var scope = torch.NewDisposeScope();
        using var noGrad = torch.no_grad();
        double lambda = MixRandom.Beta(Alpha, generator);
        var partner = MixOutputs.DrawPartner(images, generator);
        var scores = torch.rand(new long[] { images.shape[0], rows * columns }, ScalarType.Float32, generator.device, generator: generator)
            .to(images.device);
        return MixOutputs.Finish(
            MergeMixPolicy.KeepTopPatches(images, partner, scores, lambda, rows, columns, PatchSize), labels, classCount);
    }
}
