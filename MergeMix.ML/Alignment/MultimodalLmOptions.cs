namespace MergeMix.ML.Alignment;

/// <summary>
/// Architecture of a <see cref="MultimodalLm"/>. Defaults are sized for CPU training of toy tasks.
/// </summary>
/// <remarks>
/// Positions are learned absolute embeddings over the image tokens followed by <see cref="MaxTextLength"/> text
/// positions (simple, and at most a few dozen positions here, so RoPE would buy nothing).
/// </remarks>
public sealed class MultimodalLmOptions
{
    /// <summary>Width d of the decoder (and of the projector's output).</summary>
    public int ModelDim = 128;

    /// <summary>Number of decoder blocks.</summary>
    public int Layers = 2;

    /// <summary>Attention heads; must divide <see cref="ModelDim"/>.</summary>
    public int Heads = 4;

    /// <summary>Hidden width of each block's MLP, as a multiple of <see cref="ModelDim"/>.</summary>
    public int MlpRatio = 4;

    /// <summary>Longest text (image marker + prompt + answer + eos) the model accepts, in tokens.</summary>
    public int MaxTextLength = 48;

    /// <summary>Dropout on embeddings, attention weights and residual branches during training (0 = none, as preference tuning wants).</summary>
    public double Dropout = 0.0;

    /// <summary>Seed of the weight initialisation (decoder and projector; the vision encoder initialises itself).</summary>
    public long InitSeed = 0;

    /// <summary>Returns a copy.</summary>
    public MultimodalLmOptions Clone() => (MultimodalLmOptions)MemberwiseClone();

    /// <summary>Throws <see cref="ArgumentOutOfRangeException"/> naming the first invalid field.</summary>
    public void Validate()
    {
        if (ModelDim < 1) throw new ArgumentOutOfRangeException(nameof(ModelDim), ModelDim, "ModelDim must be ≥ 1.");
        if (Layers < 1) throw new ArgumentOutOfRangeException(nameof(Layers), Layers, "Layers must be ≥ 1.");
        if (Heads < 1 || ModelDim % Heads != 0)
            throw new ArgumentOutOfRangeException(nameof(Heads), Heads, $"Heads must be ≥ 1 and divide ModelDim ({ModelDim}).");
        if (MlpRatio < 1) throw new ArgumentOutOfRangeException(nameof(MlpRatio), MlpRatio, "MlpRatio must be ≥ 1.");
        if (MaxTextLength < 2)
            throw new ArgumentOutOfRangeException(nameof(MaxTextLength), MaxTextLength, "MaxTextLength must be ≥ 2 (image marker + one token).");
        if (!(Dropout >= 0 && Dropout < 1)) throw new ArgumentOutOfRangeException(nameof(Dropout), Dropout, "Dropout must lie in [0, 1).");
    }
}
