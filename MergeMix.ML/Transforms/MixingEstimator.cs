using MergeMix.ML.Classification;
using MergeMix.ML.Data;
using MergeMix.ML.Mixing;
using MergeMix.ML.Runtime;
using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.Runtime;

namespace MergeMix.ML.Transforms;

/// <summary>The mixing policies available as ML.NET transforms.</summary>
public enum MixingPolicy
{
    /// <summary>MergeMix: keep the most-attended patches (ToMe attention recovery), fill the rest from a partner.</summary>
    MergeMix,
    /// <summary>MergeMix with random patches instead of attention (the paper's ablation).</summary>
    MergeMixRandom,
    /// <summary>Mixup: pixel-wise blend.</summary>
    Mixup,
    /// <summary>CutMix: paste a box of the partner.</summary>
    CutMix,
    /// <summary>ResizeMix: paste the whole partner shrunk into a box.</summary>
    ResizeMix,
    /// <summary>FMix: thresholded low-frequency Fourier-noise mask.</summary>
    FMix,
    /// <summary>SaliencyMix: CutMix box centred on the partner's spectral-residual saliency peak.</summary>
    SaliencyMix,
    /// <summary>TransMix: CutMix with labels re-weighted by ViT attention.</summary>
    TransMix,
    /// <summary>DeiT recipe: random switch between Mixup(0.8) and CutMix(1.0).</summary>
    Deit,
    /// <summary>No mixing (one-hot soft labels); useful as a baseline in the same pipeline.</summary>
    None,
}

/// <summary>
/// Mixes training images in an ML.NET pipeline and writes soft labels. Append it with
/// <c>TransformerScope.Training</c> so that <c>Fit</c> feeds mixed rows to the trainer while
/// <c>model.Transform(test)</c>, <c>Evaluate</c> and prediction engines see the images untouched.
/// </summary>
/// <example>
/// <code>
/// var pipeline = mlContext.Transforms.Conversion.MapValueToKey("Label")
///     .Append(mlContext.Transforms.Mix(new MixingEstimator.Options { Policy = MixingPolicy.MergeMix }), TransformerScope.Training)
///     .Append(mlContext.MulticlassClassification.Trainers.VisionTransformer(softLabelColumnName: "SoftLabel"));
/// var model = pipeline.Fit(train);   // the trainer sees mixed images and soft labels; model.Transform(test) does not mix
/// </code>
/// </example>
public sealed class MixingEstimator : IEstimator<MixingTransformer>
{
    /// <summary>Options of <see cref="MixingEstimator"/>.</summary>
    public sealed class Options
    {
        /// <summary>Image column: a known-size <c>Vector&lt;Single&gt;</c> in planar CHW layout, as <c>ExtractPixels</c> writes it.</summary>
        public string InputColumnName = "Features";

        /// <summary>Column for the mixed image; null or equal to <see cref="InputColumnName"/> replaces the images.</summary>
        public string? OutputColumnName;

        /// <summary>Key-typed label column.</summary>
        public string LabelColumnName = "Label";

        /// <summary>Output: soft-label vector (K slots, sums to 1). Trainers that accept soft labels read it.</summary>
        public string SoftLabelColumnName = "SoftLabel";

        /// <summary>Output: λ, the share of the row's own label (for mask mixers, of its own pixels).</summary>
        public string MixRatioColumnName = "MixRatio";

        /// <summary>Which mixer to apply. Ignored when <see cref="CustomPolicy"/> is set.</summary>
        public MixingPolicy Policy = MixingPolicy.MergeMix;

        /// <summary>Beta(α, α) parameter; null keeps the policy's paper default (MergeMix 1, Mixup 0.8, CutMix 2, ...).</summary>
        public double? Alpha;

        /// <summary>A policy object of your own; overrides <see cref="Policy"/> and <see cref="Alpha"/>.</summary>
        public IMixPolicy? CustomPolicy;

        /// <summary>
        /// Where attention comes from for MergeMix and TransMix: e.g. a <c>VisionTransformerAttentionSource</c> over a ViT
        /// you trained. When null, <c>Fit</c> trains a small ToMe ViT on the training data (see <see cref="AttentionTraining"/>).
        /// </summary>
        public IAttentionSource? AttentionSource;

        /// <summary>How <c>Fit</c> trains the attention ViT when <see cref="AttentionSource"/> is null.</summary>
        public AttentionModelOptions AttentionTraining = new();

        /// <summary>Rows are shuffled (by <see cref="Seed"/>) and mixed in groups of this many; partners come from the same group.</summary>
        public int BatchSize = 128;

        /// <summary>Seed of the row shuffle and of every random draw of the mixer: same seed, same output.</summary>
        public int Seed;

        /// <summary>Torch device for mixing and attention: "cpu", "cuda" or "cuda:N".</summary>
        public string Device = "cpu";

        /// <summary>
        /// Also overwrite <see cref="LabelColumnName"/> with each mixed row's majority class (the largest soft label: the
        /// partner's class when λ &lt; 0.5), for trainers that read only a key label (SDCA, L-BFGS, ...). Without it such
        /// a trainer learns every mixed image with the row's own label, even when most of the image is the partner.
        /// Trainers that read <see cref="SoftLabelColumnName"/> do not need it.
        /// </summary>
        public bool WriteMajorityLabel;

        /// <summary>
        /// Checked when <c>Fit</c> starts and between the steps of the attention model's training; cancelling makes
        /// <c>Fit</c> throw <see cref="OperationCanceledException"/>.
        /// </summary>
        public CancellationToken CancellationToken;
    }

    private readonly Options _options;
    private readonly IHostEnvironment? _environment;

    /// <summary>Creates the estimator. Prefer the catalog methods (<c>mlContext.Transforms.MergeMix(...)</c>).</summary>
    public MixingEstimator(Options options, IHostEnvironment? environment = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        Validate(options);
        _options = options;
        _environment = environment;
    }

    /// <inheritdoc />
    public MixingTransformer Fit(IDataView input)
    {
        ArgumentNullException.ThrowIfNull(input);
        var o = _options;
        o.CancellationToken.ThrowIfCancellationRequested();
        // Everything that needs no data is checked before the first row is read (and before any training).
        Validate(o);
        TorchDevice.Resolve(o.Device, nameof(Options.Device));
        var (channels, height, width) = ImageColumns.ValidateImageColumn(input.Schema, o.InputColumnName);
        var classNames = ImageColumns.ValidateKeyLabel(input.Schema, o.LabelColumnName);
        var policy = MixingPolicies.Create(o);
        var attention = o.AttentionSource;
        if (policy.NeedsAttention && attention is null)
        {
            if (height != width)
                throw new ArgumentOutOfRangeException(nameof(Options.InputColumnName),
                    $"Image column '{o.InputColumnName}' holds {channels}×{height}×{width} images, but the attention model trained for '{policy.Name}' " +
                    "needs square images; resize them first (mlContext.Transforms.ResizeImages) or give an AttentionSource.");
            ClassifierTraining.ModelOptionsFor(o.AttentionTraining.Model, channels, height, classNames.Count, $"Image column '{o.InputColumnName}'",
                nameof(Options.InputColumnName), $"{nameof(Options.AttentionTraining)}.{nameof(AttentionModelOptions.Model)}");
            var data = LabeledImageSet.FromDataView(input, o.InputColumnName, o.LabelColumnName);
            attention = AttentionModelTrainer.Train(data, o.AttentionTraining, o.Device, o.Seed, _environment, o.CancellationToken);
        }
        return new MixingTransformer(o, policy, attention, classNames, _environment);
    }

    /// <inheritdoc />
    public SchemaShape GetOutputSchema(SchemaShape inputSchema)
    {
        ImageColumns.ValidateImageColumn(inputSchema, _options.InputColumnName);
        ImageColumns.ValidateKeyLabel(inputSchema, _options.LabelColumnName);
        return SchemaShapeColumns.With(inputSchema,
            SchemaShapeColumns.Make(_options.OutputColumnName ?? _options.InputColumnName, SchemaShape.Column.VectorKind.Vector, NumberDataViewType.Single),
            SchemaShapeColumns.Make(_options.SoftLabelColumnName, SchemaShape.Column.VectorKind.Vector, NumberDataViewType.Single),
            SchemaShapeColumns.Make(_options.MixRatioColumnName, SchemaShape.Column.VectorKind.Scalar, NumberDataViewType.Single));
    }

    internal static void Validate(Options o)
    {
        if (string.IsNullOrWhiteSpace(o.InputColumnName)) throw new ArgumentException("InputColumnName must name the image column.", nameof(Options.InputColumnName));
        if (string.IsNullOrWhiteSpace(o.LabelColumnName)) throw new ArgumentException("LabelColumnName must name the key label column.", nameof(Options.LabelColumnName));
        if (o.BatchSize < 2) throw new ArgumentOutOfRangeException(nameof(Options.BatchSize), $"BatchSize must be at least 2 (mixing pairs rows), got {o.BatchSize}.");
        if (o.Alpha is { } a && (!(a > 0) || double.IsInfinity(a)))
            throw new ArgumentOutOfRangeException(nameof(Options.Alpha), $"Alpha must be a finite number > 0, got {a}.");
        var outputs = new[] { o.OutputColumnName ?? o.InputColumnName, o.SoftLabelColumnName, o.MixRatioColumnName };
        if (outputs.Distinct().Count() != outputs.Length || outputs.Contains(o.LabelColumnName))
            throw new ArgumentException($"Output columns must be distinct from each other and from the label column: {string.Join(", ", outputs)}.", nameof(Options.SoftLabelColumnName));
        if (o.AttentionTraining is null) throw new ArgumentNullException(nameof(Options.AttentionTraining), "AttentionTraining must be set.");
        o.AttentionTraining.Validate();
        // Creating the policy checks Alpha against it (finite, > 0, and only for policies that take one).
        MixingPolicies.Create(o);
    }
}
