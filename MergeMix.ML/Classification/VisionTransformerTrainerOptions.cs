using MergeMix.ML.Mixing;
using MergeMix.ML.Transforms;
using MergeMix.ML.Vision;
using Microsoft.ML;

namespace MergeMix.ML.Classification;

/// <summary>What is added to the mixed-sample loss when MergeMix trains online (mergemix-method.md §1, §7.1).</summary>
public enum MergeMixBaseLoss
{
    /// <summary>Only the mixed cross-entropy.</summary>
    None,
    /// <summary>The paper: + cross-entropy of the clean batch (one extra forward/backward per step).</summary>
    Clean,
    /// <summary>The reference code (openmixup): + cross-entropy of a Mixup(α = 0.8) batch.</summary>
    Mixup,
}

/// <summary>Report of one finished epoch.</summary>
/// <param name="Epoch">1-based epoch number.</param>
/// <param name="Epochs">Total epochs.</param>
/// <param name="TrainLoss">Mean training loss of the epoch.</param>
/// <param name="LearningRate">Learning rate at the end of the epoch.</param>
/// <param name="Seconds">Wall time of the epoch's training steps.</param>
/// <param name="Validation">Metrics on the validation set, when one is given.</param>
public sealed record EpochReport(int Epoch, int Epochs, double TrainLoss, double LearningRate, double Seconds, ClassificationMetrics? Validation);

/// <summary>Options of <see cref="VisionTransformerTrainer"/>. Defaults suit 32×32 images on a CPU.</summary>
public sealed class VisionTransformerTrainerOptions
{
    /// <summary>Key-typed label column.</summary>
    public string LabelColumnName = "Label";

    /// <summary>
    /// Soft-label column written by a mixer (K floats per row). When set, training uses it as the target instead of
    /// the label; the label column still supplies the class names.
    /// </summary>
    public string? SoftLabelColumnName;

    /// <summary>Image column: known-size <c>Vector&lt;Single&gt;</c>, planar CHW, raw pixels (e.g. 0..255).</summary>
    public string FeatureColumnName = "Features";

    /// <summary>Output: class probabilities (softmax), K slots.</summary>
    public string ScoreColumnName = "Score";

    /// <summary>Output: predicted class, a key carrying the label's class names.</summary>
    public string PredictedLabelColumnName = "PredictedLabel";

    /// <summary>The architecture; ImageSize, Channels and ClassCount are taken from the data.</summary>
    public VisionTransformerOptions Model = new();

    /// <summary>Passes over the training data.</summary>
    public int Epochs = 10;

    /// <summary>Images per optimisation step.</summary>
    public int BatchSize = 128;

    /// <summary>Peak learning rate of AdamW (after warm-up).</summary>
    public double LearningRate = 1e-3;

    /// <summary>Learning rate at the end of the cosine decay.</summary>
    public double MinLearningRate = 1e-5;

    /// <summary>Epochs of linear warm-up (fractional values allowed).</summary>
    public double WarmupEpochs = 1;

    /// <summary>AdamW weight decay; not applied to norms, biases, the CLS token and position embeddings.</summary>
    public double WeightDecay = 0.05;

    /// <summary>Label smoothing ε applied to every target (one-hot or soft): (1−ε)·t + ε/K.</summary>
    public double LabelSmoothing = 0.1;

    /// <summary>Clip the global gradient norm to this value; 0 disables clipping.</summary>
    public double GradientClipNorm = 5.0;

    /// <summary>Random-crop padding in pixels (zero padding, as torchvision's RandomCrop); 0 disables cropping.</summary>
    public int RandomCropPadding = 4;

    /// <summary>Flip images horizontally with probability 0.5.</summary>
    public bool HorizontalFlip = true;

    /// <summary>Per-channel mean in raw pixel units; null computes it from the training images.</summary>
    public float[]? ChannelMean;

    /// <summary>Per-channel standard deviation in raw pixel units; null computes it from the training images.</summary>
    public float[]? ChannelStd;

    /// <summary>Online mixing applied to each training batch (fresh every step); null or "none" trains without mixing.</summary>
    public IMixPolicy? OnlineMixing;

    /// <summary>Base term added to the mixed loss when <see cref="OnlineMixing"/> is MergeMix (paper: clean CE).</summary>
    public MergeMixBaseLoss MergeMixBaseLoss = MergeMixBaseLoss.Clean;

    /// <summary>Token merging in the training forward passes (the attention pass of MergeMix always merges when Model.MergeCount &gt; 0).</summary>
    public bool MergeDuringTraining;

    /// <summary>Token merging at inference (faster; the paper's "MergeMix^tome").</summary>
    public bool MergeAtInference;

    /// <summary>Seed of initialisation, data order, augmentation and mixing.</summary>
    public int Seed;

    /// <summary>Optional validation data (same columns); metrics are computed after every epoch.</summary>
    public IDataView? ValidationSet;

    /// <summary>Torch device: "cpu", "cuda" or "cuda:N".</summary>
    public string Device = "cpu";

    /// <summary>Intra-op threads for torch while training (the previous setting is restored afterwards); 0 keeps the current setting.</summary>
    public int Threads;

    /// <summary>Folder for a checkpoint written after every epoch; training resumes from it when it exists.</summary>
    public string? CheckpointFolder;

    /// <summary>Called after every epoch.</summary>
    public IProgress<EpochReport>? Progress;

    /// <summary>Checked between steps; cancelling throws <see cref="OperationCanceledException"/> (the last checkpoint stays).</summary>
    public CancellationToken CancellationToken;

    internal void Validate()
    {
        static void Positive(double value, string name)
        {
            if (!(value > 0)) throw new ArgumentOutOfRangeException(name, $"{name} must be > 0, got {value}.");
        }
        Positive(Epochs, nameof(Epochs));
        Positive(LearningRate, nameof(LearningRate));
        if (BatchSize < 2) throw new ArgumentOutOfRangeException(nameof(BatchSize), $"BatchSize must be at least 2, got {BatchSize}.");
        if (MinLearningRate < 0 || MinLearningRate > LearningRate)
            throw new ArgumentOutOfRangeException(nameof(MinLearningRate), $"MinLearningRate must be in [0, LearningRate], got {MinLearningRate}.");
        if (WarmupEpochs < 0) throw new ArgumentOutOfRangeException(nameof(WarmupEpochs), $"WarmupEpochs must be ≥ 0, got {WarmupEpochs}.");
        if (WeightDecay < 0) throw new ArgumentOutOfRangeException(nameof(WeightDecay), $"WeightDecay must be ≥ 0, got {WeightDecay}.");
        if (LabelSmoothing < 0 || LabelSmoothing >= 1) throw new ArgumentOutOfRangeException(nameof(LabelSmoothing), $"LabelSmoothing must be in [0, 1), got {LabelSmoothing}.");
        if (GradientClipNorm < 0) throw new ArgumentOutOfRangeException(nameof(GradientClipNorm), $"GradientClipNorm must be ≥ 0, got {GradientClipNorm}.");
        if (RandomCropPadding < 0) throw new ArgumentOutOfRangeException(nameof(RandomCropPadding), $"RandomCropPadding must be ≥ 0, got {RandomCropPadding}.");
        if (Threads < 0) throw new ArgumentOutOfRangeException(nameof(Threads), $"Threads must be ≥ 0, got {Threads}.");
        ArgumentNullException.ThrowIfNull(Model, nameof(Model));
        if (SoftLabelColumnName is not null && OnlineMixing is not null)
            throw new ArgumentException(SoftLabelsWithOnlineMixing, nameof(OnlineMixing));
    }

    internal const string SoftLabelsWithOnlineMixing =
        "SoftLabelColumnName (labels of an offline mixer) and OnlineMixing cannot be combined: mix either in the pipeline or in the trainer.";
}
