using MergeMix.ML.TokenMerging;
using MergeMix.ML.Vision;

namespace MergeMix.ML.Alignment;

/// <summary>
/// Configuration of a <see cref="VisionTransformerEncoder"/>: the ToMe ViT, which block's tokens feed the language
/// model, whether tokens are merged, and the pixel normalisation. Serialisable (public fields), so a saved model can
/// rebuild its encoder.
/// </summary>
public sealed class VisionTransformerEncoderOptions
{
    /// <summary>
    /// The ViT. Defaults: 32×32 images, 8-pixel patches (16 tokens), width 64, 4 blocks, 2 heads, no stochastic depth
    /// (preference tuning wants deterministic forward passes). The classification head is unused (ClassCount 1).
    /// When <see cref="VisionTransformerOptions.AttentionLayer"/> is null, the encoder uses
    /// min(2·Depth/3, feature layer) so MergeMix's attention comes from a block that is trained.
    /// </summary>
    public VisionTransformerOptions Vision = new()
    {
        ImageSize = 32, PatchSize = 8, Width = 64, Depth = 4, Heads = 2, MlpRatio = 4.0, ClassCount = 1, DropPathRate = 0.0,
    };

    /// <summary>
    /// Block whose output tokens (CLS dropped) are the image features. Negative values count from the end, as LLaVA's
    /// <c>vision_feature_layer</c>: −1 is the last block, −2 (the default, LLaVA-1.5's choice) the penultimate one.
    /// Blocks after it are never run.
    /// </summary>
    public int FeatureLayer = -2;

    /// <summary>
    /// Merge tokens (ToMe) in the blocks up to <see cref="FeatureLayer"/>, following
    /// <see cref="VisionTransformerOptions.MergeCount"/>'s schedule: fewer image tokens for the language model, as in
    /// MergeMix's ToMe-LLaVA. The token count is fixed by the schedule, so it holds for training and inference alike.
    /// </summary>
    public bool MergeTokens = false;

    /// <summary>Per-channel mean subtracted from raw pixels (one value, or one per channel). Default 127.5 for 0..255 pixels.</summary>
    public float[] ChannelMean = { 127.5f, 127.5f, 127.5f };

    /// <summary>Per-channel standard deviation raw pixels are divided by (one value, or one per channel; &gt; 0). Default 64.</summary>
    public float[] ChannelStd = { 64f, 64f, 64f };

    /// <summary>Seed of the ViT's weight initialisation.</summary>
    public long InitSeed = 0;

    /// <summary>
    /// A pretrained timm or Hugging Face ViT/DeiT checkpoint for the tower, as LLaVA starts from a pretrained vision
    /// encoder (see <see cref="PretrainedWeights"/>; give its Heads). When set, the checkpoint's architecture (width,
    /// depth, heads, patch size, MLP ratio, LayerNorm ε) replaces <see cref="Vision"/>'s, whose training-time settings
    /// (merging, drop path, dropout, attention layer) still apply; the position embedding is resampled to the image
    /// size and the classification head is not loaded (the encoder never runs it). Set <see cref="ChannelMean"/> and
    /// <see cref="ChannelStd"/> to the checkpoint's normalisation (e.g. <see cref="PretrainedWeights.ImageNetMean"/>).
    /// The encoder's <see cref="VisionTransformerEncoder.Options"/> hold the resolved architecture with this field
    /// cleared, so a saved model rebuilds its tower without the file.
    /// </summary>
    public PretrainedWeights? InitialWeights;

    /// <summary>
    /// The patch embedding, CLS token, position embedding and the first this-many blocks get requires_grad = false, so
    /// SFT and preference tuning leave them as they are (the usual partial freeze of a pretrained tower); 0 trains
    /// everything. To freeze the whole tower use <c>PreferenceTrainerOptions.TrainVisionEncoder = false</c>.
    /// </summary>
    public int FrozenBlocks = 0;

    /// <summary>A deep copy.</summary>
    public VisionTransformerEncoderOptions Clone() => new()
    {
        Vision = Vision.Clone(),
        FeatureLayer = FeatureLayer,
        MergeTokens = MergeTokens,
        ChannelMean = (float[])ChannelMean.Clone(),
        ChannelStd = (float[])ChannelStd.Clone(),
        InitSeed = InitSeed,
        InitialWeights = InitialWeights?.Clone(),
        FrozenBlocks = FrozenBlocks,
    };

    /// <summary><see cref="FeatureLayer"/> as a 0-based block index.</summary>
    public int ResolvedFeatureLayer => FeatureLayer < 0 ? Vision.Depth + FeatureLayer : FeatureLayer;

    /// <summary>Attention block used for MergeMix masks (see <see cref="Vision"/>).</summary>
    public int ResolvedAttentionLayer => Vision.AttentionLayer ?? Math.Min(2 * Vision.Depth / 3, ResolvedFeatureLayer);

    /// <summary>Image tokens the encoder outputs: the patch count, less the tokens merged up to the feature layer.</summary>
    public int TokenCount
    {
        get
        {
            if (!MergeTokens) return Vision.PatchCount;
            var schedule = MergeSchedule.ForModel(Vision.Depth, Vision.EffectiveMergeCount, Vision.PatchCount, Vision.MergeInflection);
            return Vision.PatchCount - schedule.Take(ResolvedFeatureLayer + 1).Sum();
        }
    }

    /// <summary>Throws an <see cref="ArgumentException"/> naming the first invalid field.</summary>
    public void Validate()
    {
        if (Vision is null) throw new ArgumentNullException(nameof(Vision), "Vision (the ViT options) must be set.");
        Vision.Validate();
        int layer = ResolvedFeatureLayer;
        if (layer < 0 || layer >= Vision.Depth)
            throw new ArgumentOutOfRangeException(nameof(FeatureLayer), FeatureLayer,
                $"FeatureLayer must name one of the {Vision.Depth} blocks: 0..{Vision.Depth - 1}, or −{Vision.Depth}..−1 counted from the end.");
        if (Vision.AttentionLayer is int attention && attention > layer)
            throw new ArgumentOutOfRangeException(nameof(Vision.AttentionLayer), attention,
                $"Vision.AttentionLayer ({attention}) comes after the feature layer ({layer}); blocks after it are never trained, " +
                "so their attention would not reflect the model. Use a block ≤ the feature layer, or null.");
        if (FrozenBlocks < 0 || FrozenBlocks > Vision.Depth)
            throw new ArgumentOutOfRangeException(nameof(FrozenBlocks), FrozenBlocks, $"FrozenBlocks must be in [0, {Vision.Depth}] (Vision.Depth).");
        InitialWeights?.Validate(nameof(InitialWeights));
        CheckChannels(ChannelMean, nameof(ChannelMean), mustBePositive: false);
        CheckChannels(ChannelStd, nameof(ChannelStd), mustBePositive: true);
    }

    /// <summary>Per-channel values with a single value broadcast to every channel.</summary>
    internal float[] PerChannel(float[] values) => values.Length == 1 ? Enumerable.Repeat(values[0], Vision.Channels).ToArray() : values;

    private void CheckChannels(float[] values, string name, bool mustBePositive)
    {
        int channels = Vision.Channels;
        if (values is null || (values.Length != 1 && values.Length != channels))
            throw new ArgumentException(channels == 1
                ? $"{name} holds {values?.Length.ToString() ?? "no"} values, but the images have 1 channel (Vision.Channels = 1, as the image column gives it): give 1 value."
                : $"{name} must hold 1 value (used for every channel) or {channels} (one per channel, Vision.Channels = {channels}), got {values?.Length.ToString() ?? "null"}.",
                name);
        foreach (float v in values)
            if (!float.IsFinite(v) || (mustBePositive && !(v > 0)))
                throw new ArgumentOutOfRangeException(name, v, mustBePositive ? $"every {name} value must be finite and > 0." : $"every {name} value must be finite.");
    }
}
