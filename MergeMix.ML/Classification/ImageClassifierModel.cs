using MergeMix.ML.Mixing;
using MergeMix.ML.Vision;
using TorchSharp;
using static TorchSharp.torch;

namespace MergeMix.ML.Classification;

/// <summary>
/// A ToMe Vision Transformer with its input normalisation built in: it takes raw pixels (as <c>ExtractPixels</c> writes
/// them, e.g. 0..255) and normalises them per channel with the statistics of its training data.
/// </summary>
/// <remarks>
/// Keeping the normalisation inside the module means mixers, attention sources and saved models all work on the same
/// raw pixels the ML.NET columns hold, with no separate preprocessing state to carry around.
/// </remarks>
public sealed class ImageClassifierModel : nn.Module<Tensor, Tensor>
{
    private readonly VisionTransformer backbone;
    private readonly Tensor mean;
    private readonly Tensor std;

    /// <summary>
    /// Creates the model. <paramref name="channelMean"/>/<paramref name="channelStd"/> are per channel, in raw pixel units;
    /// <paramref name="generator"/> seeds the weight initialisation.
    /// </summary>
    public ImageClassifierModel(VisionTransformerOptions options, float[] channelMean, float[] channelStd, Generator? generator = null) : base("image_classifier")
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        if (channelMean.Length != options.Channels || channelStd.Length != options.Channels)
            throw new ArgumentException($"Need {options.Channels} channel means and standard deviations, got {channelMean.Length} and {channelStd.Length}.", nameof(channelMean));
        if (channelStd.Any(s => !(s > 0)))
            throw new ArgumentOutOfRangeException(nameof(channelStd), "Every channel standard deviation must be > 0.");
        Options = options;
        ChannelMean = channelMean.ToArray();
        ChannelStd = channelStd.ToArray();
        backbone = new VisionTransformer(options, generator);
        mean = tensor(channelMean).reshape(1, options.Channels, 1, 1);
        std = tensor(channelStd).reshape(1, options.Channels, 1, 1);
        RegisterComponents();
    }

    /// <summary>The architecture.</summary>
    public VisionTransformerOptions Options { get; }

    /// <summary>Per-channel mean used for normalisation (raw pixel units).</summary>
    public IReadOnlyList<float> ChannelMean { get; }

    /// <summary>Per-channel standard deviation used for normalisation (raw pixel units).</summary>
    public IReadOnlyList<float> ChannelStd { get; }

    /// <summary>The ToMe Vision Transformer.</summary>
    public VisionTransformer Backbone => backbone;

    /// <summary>(raw − mean) / std.</summary>
    public Tensor Normalize(Tensor raw) => (raw - mean) / std;

    /// <summary>Class logits [B, K] of raw images [B, C, H, W]; merging follows <see cref="VisionTransformer.MergeEnabled"/>.</summary>
    public override Tensor forward(Tensor raw) => backbone.call(Normalize(raw));

    /// <summary>
    /// One pass over raw images that returns the logits and the recovered attention of the backbone's attention layer
    /// (<see cref="VisionTransformer.Forward"/>), in the current mode and grad state.
    /// </summary>
    internal VisionForward ForwardWithAttention(Tensor raw, bool merge) => backbone.Forward(Normalize(raw), merge, captureAttention: true);

    /// <summary>Attention of this model over raw images, for MergeMix and TransMix.</summary>
    public IAttentionSource AttentionSource() => new NormalizingAttentionSource(this);

    private sealed class NormalizingAttentionSource : IAttentionSource
    {
        private readonly ImageClassifierModel _model;
        private readonly VisionTransformerAttentionSource _inner;

        public NormalizingAttentionSource(ImageClassifierModel model)
        {
            _model = model;
            _inner = new VisionTransformerAttentionSource(model.backbone);
        }

        public int PatchSize => _inner.PatchSize;

        public Tensor PatchAttention(Tensor images)
        {
            using var scope = NewDisposeScope();
            return _inner.PatchAttention(_model.Normalize(images)).MoveToOuterDisposeScope();
        }
    }
}
