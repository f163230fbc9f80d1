namespace MergeMix.ML.Vision;

/// <summary>
/// Architecture of a <see cref="VisionTransformer"/> (DeiT-style ViT with Token Merging). The defaults are a
/// CIFAR-sized DeiT-Tiny: 32×32 images, 4-pixel patches (64 patches), width 192, 6 blocks, 3 heads.
/// </summary>
public sealed class VisionTransformerOptions
{
    /// <summary>Side of the (square) input images, in pixels. Must be a multiple of <see cref="PatchSize"/>.</summary>
    public int ImageSize = 32;

    /// <summary>Side of a square patch, in pixels (patch embedding kernel and stride).</summary>
    public int PatchSize = 4;

    /// <summary>Number of image channels.</summary>
    public int Channels = 3;

    /// <summary>Token width (embedding dimension). Must be a multiple of <see cref="Heads"/>.</summary>
    public int Width = 192;

    /// <summary>Number of transformer blocks.</summary>
    public int Depth = 6;

    /// <summary>Number of attention heads.</summary>
    public int Heads = 3;

    /// <summary>Hidden width of the MLP as a multiple of <see cref="Width"/>.</summary>
    public double MlpRatio = 4.0;

    /// <summary>Number of output classes of the linear head.</summary>
    public int ClassCount = 10;

    /// <summary>Stochastic depth rate of the last block; block i uses DropPathRate·i/(Depth − 1). In [0, 1).</summary>
    public double DropPathRate = 0.1;

    /// <summary>Dropout rate after the position embedding, on the attention weights, after projections and in the MLP. In [0, 1).</summary>
    public double DropoutRate = 0.0;

    /// <summary>
    /// Total number of tokens merged over all blocks when merging is on (distributed by
    /// <see cref="TokenMerging.MergeSchedule.ForModel"/>). null means half of the patch count, like the paper's
    /// 98 of 196; 0 disables merging. Must be below <see cref="PatchCount"/>.
    /// </summary>
    public int? MergeCount;

    /// <summary>Trend of the merge schedule in [−1, 1]: −0.5 (the reference) merges more in early blocks.</summary>
    public double MergeInflection = -0.5;

    /// <summary>
    /// Adds log(token size) to the attention logits of every key, so a merged token weighs as much as the tokens it
    /// replaced (ToMe's proportional attention). Has no effect before the first merge (all sizes are 1).
    /// </summary>
    public bool ProportionalAttention = true;

    /// <summary>
    /// Block whose CLS attention is captured for MergeMix masks (0-based). null means 2·Depth/3 rounded down, the
    /// counterpart of openmixup's out_indices 8 for 12 blocks.
    /// </summary>
    public int? AttentionLayer;

    /// <summary>
    /// Epsilon of every LayerNorm (the blocks' two and the final one). 1e-6 is timm's and DeiT's value; Hugging Face
    /// ViT/DeiT checkpoints were trained with 1e-12 (their <c>layer_norm_eps</c>), which
    /// <see cref="VisionTransformerCheckpoint"/> sets when it reads one, so a loaded model computes what its source computes.
    /// </summary>
    public double LayerNormEpsilon = 1e-6;

    /// <summary>
    /// Which attention of <see cref="AttentionLayer"/> scores the tokens for MergeMix masks: the CLS query's row
    /// (default, as the MergeMix LLaVA code) or each token's attention to the CLS key (openmixup's classification path).
    /// </summary>
    public AttentionDirection AttentionDirection = AttentionDirection.ClsQuery;

    /// <summary>Number of patches along one side, ImageSize / PatchSize.</summary>
    public int GridSize => ImageSize / PatchSize;

    /// <summary>Number of patch tokens, GridSize².</summary>
    public int PatchCount => GridSize * GridSize;

    /// <summary><see cref="MergeCount"/> with its default applied.</summary>
    public int EffectiveMergeCount => MergeCount ?? PatchCount / 2;

    /// <summary><see cref="AttentionLayer"/> with its default applied.</summary>
    public int EffectiveAttentionLayer => AttentionLayer ?? 2 * Depth / 3;

    /// <summary>Hidden width of the MLP, (int)(Width·MlpRatio).</summary>
    public int MlpHidden => (int)(Width * MlpRatio);

    /// <summary>A copy of these options.</summary>
    public VisionTransformerOptions Clone() => (VisionTransformerOptions)MemberwiseClone();

    /// <summary>Throws an <see cref="ArgumentException"/> naming the first invalid field.</summary>
    public void Validate()
    {
        Positive(ImageSize, nameof(ImageSize));
        Positive(PatchSize, nameof(PatchSize));
        Positive(Channels, nameof(Channels));
        Positive(Width, nameof(Width));
        Positive(Depth, nameof(Depth));
        Positive(Heads, nameof(Heads));
        Positive(ClassCount, nameof(ClassCount));
        if (ImageSize % PatchSize != 0)
            throw new ArgumentException($"ImageSize ({ImageSize}) must be a multiple of PatchSize ({PatchSize}).", nameof(ImageSize));
        if (Width % Heads != 0)
            throw new ArgumentException($"Width ({Width}) must be a multiple of Heads ({Heads}).", nameof(Width));
        if (!(MlpRatio > 0) || MlpHidden < 1)
            throw new ArgumentException($"MlpRatio ({MlpRatio}) must be > 0 and give at least one hidden unit.", nameof(MlpRatio));
        if (!(LayerNormEpsilon > 0) || !double.IsFinite(LayerNormEpsilon))
            throw new ArgumentException($"LayerNormEpsilon must be finite and > 0; got {LayerNormEpsilon}.", nameof(LayerNormEpsilon));
        Rate(DropPathRate, nameof(DropPathRate));
        Rate(DropoutRate, nameof(DropoutRate));
        if (EffectiveMergeCount < 0 || EffectiveMergeCount >= PatchCount)
            throw new ArgumentException($"MergeCount ({EffectiveMergeCount}) must be in [0, {PatchCount - 1}]: fewer than the {PatchCount} patches.", nameof(MergeCount));
        if (!(MergeInflection >= -1 && MergeInflection <= 1))
            throw new ArgumentException($"MergeInflection ({MergeInflection}) must be in [-1, 1].", nameof(MergeInflection));
        if (!Enum.IsDefined(AttentionDirection))
            throw new ArgumentException($"AttentionDirection ({(int)AttentionDirection}) must be ClsQuery or ClsKey.", nameof(AttentionDirection));
        if (EffectiveAttentionLayer < 0 || EffectiveAttentionLayer >= Depth)
            throw new ArgumentException($"AttentionLayer ({EffectiveAttentionLayer}) must be in [0, {Depth - 1}] (a block index).", nameof(AttentionLayer));
    }

    private static void Positive(int value, string name)
    {
        if (value <= 0) throw new ArgumentException($"{name} must be > 0; got {value}.", name);
    }

    private static void Rate(double value, string name)
    {
        if (!(value >= 0 && value < 1)) throw new ArgumentException($"{name} must be in [0, 1); got {value}.", name);
    }
}
