namespace MergeMix.ML.Vision;

/// <summary>
/// A pretrained ViT/DeiT checkpoint file to start from, and what its weights cannot tell: the number of attention
/// heads and, optionally, the LayerNorm epsilon. Read by <see cref="VisionTransformerCheckpoint.Read(PretrainedWeights)"/>;
/// used by <c>VisionTransformerTrainerOptions.InitialWeights</c> and
/// <c>VisionTransformerEncoderOptions.InitialWeights</c>. Public fields, so the options that hold it stay serialisable.
/// </summary>
/// <example>
/// <code>
/// var deitSmall = new PretrainedWeights { Path = "deit_small_patch16_224.safetensors", Heads = 6 };
/// </code>
/// </example>
public sealed class PretrainedWeights
{
    /// <summary>
    /// The checkpoint: a <c>.safetensors</c> file, a PyTorch <c>state_dict</c> file (<c>.bin</c>, <c>.pth</c>, <c>.pt</c>;
    /// the zip format of <c>torch.save</c> since PyTorch 1.6), or a folder holding <c>model.safetensors</c> or
    /// <c>pytorch_model.bin</c> (as Hugging Face's <c>save_pretrained</c> writes it). Layout (timm or Hugging Face) is
    /// detected from the names.
    /// </summary>
    public string Path = "";

    /// <summary>
    /// Attention heads. Weights do not record it (the qkv projection has the same shape for any head count), so it must
    /// be given, unless the checkpoint's folder has a Hugging Face <c>config.json</c> with <c>num_attention_heads</c>.
    /// timm/DeiT Tiny, Small, Base, Large use 3, 6, 12, 16 (64-wide heads).
    /// </summary>
    public int? Heads;

    /// <summary>
    /// LayerNorm epsilon the checkpoint was trained with; null uses the layout's value: 1e-6 for timm, the
    /// <c>config.json</c>'s <c>layer_norm_eps</c> or else 1e-12 for Hugging Face.
    /// </summary>
    public double? LayerNormEpsilon;

    /// <summary>
    /// What to do with a distilled DeiT's distillation token (<c>dist_token</c>, <c>head_dist</c>): false (the default)
    /// rejects the checkpoint with an error; true drops the token, its position embedding and its head and keeps the
    /// rest. The model then no longer computes what the distilled DeiT computes (every block attended to that token),
    /// which fine-tuning repairs; a loaded model's outputs are not the checkpoint's.
    /// </summary>
    public bool DropDistillationToken;

    /// <summary>
    /// Load the classification head when its shape fits the target model (same class count). false always starts a
    /// fresh head, e.g. for a different set of classes that happens to have the same count.
    /// </summary>
    public bool LoadHead = true;

    /// <summary>ImageNet's per-channel mean (0.485, 0.456, 0.406) in 0..255 pixel units, which DeiT and most timm ViTs expect.</summary>
    public static float[] ImageNetMean => new[] { 123.675f, 116.28f, 103.53f };

    /// <summary>ImageNet's per-channel standard deviation (0.229, 0.224, 0.225) in 0..255 pixel units.</summary>
    public static float[] ImageNetStd => new[] { 58.395f, 57.12f, 57.375f };

    /// <summary>Mean 0.5 per channel in 0..255 units (127.5), which Google's augreg ViTs and <c>google/vit-*</c> expect.</summary>
    public static float[] HalfMean => new[] { 127.5f, 127.5f, 127.5f };

    /// <summary>Standard deviation 0.5 per channel in 0..255 units (127.5).</summary>
    public static float[] HalfStd => new[] { 127.5f, 127.5f, 127.5f };

    /// <summary>A copy.</summary>
    public PretrainedWeights Clone() => (PretrainedWeights)MemberwiseClone();

    /// <summary>Throws an <see cref="ArgumentException"/> naming the first invalid field.</summary>
    internal void Validate(string owner)
    {
        if (string.IsNullOrWhiteSpace(Path))
            throw new ArgumentException($"{owner}.Path must name a checkpoint file or folder.", nameof(Path));
        if (Heads is int heads && heads <= 0)
            throw new ArgumentException($"{owner}.Heads must be > 0; got {heads}.", nameof(Heads));
        if (LayerNormEpsilon is double eps && !(eps > 0 && double.IsFinite(eps)))
            throw new ArgumentException($"{owner}.LayerNormEpsilon must be finite and > 0; got {eps}.", nameof(LayerNormEpsilon));
    }
}
