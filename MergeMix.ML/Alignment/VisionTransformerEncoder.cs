using MergeMix.ML.Mixing;
using MergeMix.ML.Vision;
using TorchSharp;
using static TorchSharp.torch;

namespace MergeMix.ML.Alignment;

/// <summary>
/// The ToMe <see cref="VisionTransformer"/> as a <see cref="MultimodalLm"/> image tower: raw pixels (0..255, as
/// ML.NET's <c>ExtractPixels</c> writes them) are normalised per channel, run up to the feature block
/// (<see cref="VisionTransformerEncoderOptions.FeatureLayer"/>, LLaVA's −2 by default) and returned without the CLS
/// token, optionally with tokens merged on the way.
/// </summary>
/// <remarks>
/// The normalisation statistics are buffers of the module, so they are saved with the weights and move with it to the
/// device. The blocks after the feature layer and the classification head are never run; they stay in the module so
/// that a pretrained ViT's weights load unchanged.
/// </remarks>
public sealed class VisionTransformerEncoder : VisionEncoder
{
    private readonly VisionTransformer vit;
    private readonly Tensor mean;
    private readonly Tensor std;
    private readonly VisionTransformerEncoderOptions options;
    private readonly int featureLayer;
    private readonly int tokenCount;

    /// <summary>
    /// Builds the encoder on the CPU: ViT weights from <see cref="VisionTransformerEncoderOptions.InitialWeights"/> when
    /// set (read here), otherwise seeded by <see cref="VisionTransformerEncoderOptions.InitSeed"/>.
    /// </summary>
    /// <param name="options">Configuration (validated and copied); null = defaults.</param>
    public VisionTransformerEncoder(VisionTransformerEncoderOptions? options = null) : this(options, null)
    {
    }

    /// <summary>The encoder with <paramref name="pretrained"/> (already read by the caller, who keeps it) instead of reading InitialWeights.</summary>
    internal VisionTransformerEncoder(VisionTransformerEncoderOptions? options, VisionTransformerCheckpoint? pretrained) : base(nameof(VisionTransformerEncoder))
    {
        this.options = (options ?? new VisionTransformerEncoderOptions()).Clone();
        using var own = pretrained is null && this.options.InitialWeights is { } weights ? VisionTransformerCheckpoint.Read(weights) : null;
        var checkpoint = pretrained ?? own;
        if (checkpoint is not null) this.options = WithArchitectureOf(this.options, checkpoint);
        this.options.Validate();
        featureLayer = this.options.ResolvedFeatureLayer;
        tokenCount = this.options.TokenCount;
        var vision = this.options.Vision.Clone();
        vision.AttentionLayer = this.options.ResolvedAttentionLayer;
        using (var generator = new Generator((ulong)this.options.InitSeed))
            vit = new VisionTransformer(vision, generator);
        checkpoint?.LoadInto(vit, loadHead: false); // the encoder never runs the head
        vit.MergeEnabled = this.options.MergeTokens;
        if (this.options.FrozenBlocks > 0) Freeze(vit, this.options.FrozenBlocks);
        int channels = vision.Channels;
        mean = tensor(this.options.PerChannel(this.options.ChannelMean)).reshape(1, channels, 1, 1);
        std = tensor(this.options.PerChannel(this.options.ChannelStd)).reshape(1, channels, 1, 1);
        RegisterComponents();
    }

    /// <summary>The configuration (a copy), with a checkpoint's architecture resolved and InitialWeights cleared.</summary>
    public VisionTransformerEncoderOptions Options => options.Clone();

    /// <summary>
    /// <paramref name="options"/> with <paramref name="checkpoint"/>'s architecture at <c>Vision.ImageSize</c> (training-time
    /// settings and the unused one-class head kept) and <see cref="VisionTransformerEncoderOptions.InitialWeights"/> cleared.
    /// </summary>
    internal static VisionTransformerEncoderOptions WithArchitectureOf(VisionTransformerEncoderOptions options, VisionTransformerCheckpoint checkpoint)
    {
        var resolved = options.Clone();
        string path = options.InitialWeights?.Path ?? "the checkpoint";
        if (checkpoint.Options.Channels != options.Vision.Channels)
            throw new ArgumentException($"InitialWeights {path} takes {checkpoint.Options.Channels}-channel images, but Vision.Channels is {options.Vision.Channels}.",
                nameof(VisionTransformerEncoderOptions.InitialWeights));
        resolved.Vision = checkpoint.ModelOptions(options.Vision.ImageSize, options.Vision.ClassCount, options.Vision);
        resolved.InitialWeights = null;
        return resolved;
    }

    private static void Freeze(VisionTransformer vit, int blocks)
    {
        foreach (var (name, parameter) in vit.named_parameters())
            if (name is "clsToken" or "posEmbed" || name.StartsWith("patchEmbed.", StringComparison.Ordinal) ||
                Enumerable.Range(0, blocks).Any(i => name.StartsWith($"blocks.{i}.", StringComparison.Ordinal)))
                parameter.requires_grad = false;
    }

    /// <summary>The underlying ToMe ViT.</summary>
    public VisionTransformer Backbone => vit;

    /// <summary>The 0-based block whose tokens are returned.</summary>
    public int FeatureLayer => featureLayer;

    /// <inheritdoc />
    public override int FeatureDim => options.Vision.Width;

    /// <inheritdoc />
    public override int TokenCount => tokenCount;

    /// <summary>(raw − mean) / std, per channel.</summary>
    public Tensor Normalize(Tensor raw) => (raw - mean) / std;

    /// <summary>Patch features float [B, <see cref="TokenCount"/>, Width] of raw images float [B, C, H, W].</summary>
    public override Tensor forward(Tensor images)
    {
        using var scope = NewDisposeScope();
        return vit.Encode(Normalize(images), featureLayer, options.MergeTokens).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// The encoder's own ViT attention over raw images (normalised here), for MergeMix masks: recovered CLS attention of
    /// <see cref="VisionTransformerEncoderOptions.ResolvedAttentionLayer"/>, eval mode, no gradient, merging as the
    /// encoder does. Images may live on another device than the encoder; scores come back on the images' device.
    /// </summary>
    public IAttentionSource AttentionSource() => new NormalizingAttentionSource(this);

    private sealed class NormalizingAttentionSource : IAttentionSource
    {
        private readonly VisionTransformerEncoder encoder;
        private readonly VisionTransformerAttentionSource inner;

        public NormalizingAttentionSource(VisionTransformerEncoder encoder)
        {
            this.encoder = encoder;
            inner = new VisionTransformerAttentionSource(encoder.vit);
        }

        public int PatchSize => inner.PatchSize;

        public Tensor PatchAttention(Tensor images)
        {
            using var scope = NewDisposeScope();
            var onModel = images.to(encoder.mean.device);
            return inner.PatchAttention(encoder.Normalize(onModel)).to(images.device).MoveToOuterDisposeScope();
        }
    }
}
