using MergeMix.ML.Augmentation;
using MergeMix.ML.Mixing;
using MergeMix.ML.Runtime;
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

/// <summary>Where online MergeMix takes the attention that ranks the patches of a batch.</summary>
public enum MergeMixAttentionPass
{
    /// <summary>
    /// From the clean forward pass of the <see cref="MergeMixBaseLoss.Clean"/> base loss (detached, training mode,
    /// merging as <see cref="VisionTransformerTrainerOptions.MergeDuringTraining"/>): two backbone passes per step.
    /// With another base loss there is no clean pass, and a separate pass is run.
    /// </summary>
    CleanPass,
    /// <summary>
    /// From a separate no-gradient pass in eval mode up to the attention layer, merging when the model's MergeCount
    /// is above 0 (three backbone passes per step with the clean base loss).
    /// </summary>
    Separate,
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

    /// <summary>
    /// The architecture; ImageSize, Channels and ClassCount are taken from the data. With <see cref="InitialWeights"/>,
    /// only its training-time settings count (DropPathRate, DropoutRate, MergeCount, MergeInflection,
    /// ProportionalAttention, AttentionLayer): width, depth, heads, patch size, MLP ratio and LayerNorm ε are the checkpoint's.
    /// </summary>
    public VisionTransformerOptions Model = new();

    /// <summary>
    /// A pretrained timm or Hugging Face ViT/DeiT checkpoint to start from (see <see cref="PretrainedWeights"/>; give its
    /// Heads). Its architecture replaces <see cref="Model"/>'s; the position embedding is resampled to the data's image
    /// size (which must be a multiple of the checkpoint's patch size) and the head starts fresh unless the class count
    /// matches. Fine-tuning wants a learning rate well below the from-scratch default: set <see cref="LearningRate"/>
    /// to about 1e-5..1e-4 with a short warm-up, and consider <see cref="HeadLearningRateMultiplier"/> for a fresh head
    /// and <see cref="FrozenBlocks"/> for very small datasets. Set <see cref="ChannelMean"/>/<see cref="ChannelStd"/> to
    /// the checkpoint's normalisation (<see cref="PretrainedWeights.ImageNetMean"/>/<see cref="PretrainedWeights.ImageNetStd"/>
    /// for DeiT and most timm ViTs, <see cref="PretrainedWeights.HalfMean"/>/<see cref="PretrainedWeights.HalfStd"/> for
    /// Google's augreg ViTs and Hugging Face <c>google/vit-*</c>); left null they are computed from the training images,
    /// which is not what the pretrained model saw. A run resumed from <see cref="CheckpointFolder"/> takes its weights
    /// from the folder instead.
    /// </summary>
    public PretrainedWeights? InitialWeights;

    /// <summary>
    /// The first this-many blocks are not trained, nor then is the embedding (patch embedding, CLS token, position
    /// embedding) before them; 0 trains everything. At most the depth.
    /// </summary>
    public int FrozenBlocks;

    /// <summary>Keeps the patch embedding, CLS token and position embedding fixed (implied by <see cref="FrozenBlocks"/> &gt; 0).</summary>
    public bool FreezePatchEmbedding;

    /// <summary>
    /// The classification head's learning rate is <see cref="LearningRate"/> times this (schedule included): a fresh head on
    /// a pretrained body often wants 10×. 1 trains every parameter at the same rate.
    /// </summary>
    public double HeadLearningRateMultiplier = 1.0;

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

    /// <summary>
    /// RandAugment on each training image after crop and flip (TorchVision's operations, drawn from a generator seeded
    /// by <see cref="Seed"/> and the epoch); null (the default) turns it off. Needs pixel values 0..255.
    /// <c>new RandAugmentOptions()</c> is the MergeMix paper's recipe (2 operations, magnitude 7 of 10).
    /// </summary>
    public RandAugmentOptions? RandAugment;

    /// <summary>Per-channel mean in raw pixel units; null computes it from the training images.</summary>
    public float[]? ChannelMean;

    /// <summary>Per-channel standard deviation in raw pixel units; null computes it from the training images.</summary>
    public float[]? ChannelStd;

    /// <summary>Online mixing applied to each training batch (fresh every step); null or "none" trains without mixing.</summary>
    public IMixPolicy? OnlineMixing;

    /// <summary>Base term added to the mixed loss when <see cref="OnlineMixing"/> is MergeMix (paper: clean CE).</summary>
    /// <remarks>
    /// <see cref="MergeMixBaseLoss.None"/> halves the step (one backbone pass instead of two). On the README's
    /// cifar10-2k-long benchmark (three seeds, <c>benchmarks/cifar10-2k-long-base-loss-bf16/</c>) it cost no measured
    /// accuracy against the default (validation −0.5, test +0.9 points on the mean), and neither it nor
    /// <see cref="MergeMixBaseLoss.Mixup"/> beat the default on validation on every seed, so the default stays the paper's.
    /// </remarks>
    public MergeMixBaseLoss MergeMixBaseLoss = MergeMixBaseLoss.Clean;

    /// <summary>
    /// Source of MergeMix's attention: the clean pass of the base loss (default; two backbone passes per step) or a
    /// separate eval-mode pass (three).
    /// </summary>
    public MergeMixAttentionPass MergeMixAttentionPass = MergeMixAttentionPass.CleanPass;

    /// <summary>
    /// MergeMix's λ̂ re-scaling (openmixup <c>lam_scale</c>): the label share of every row becomes
    /// min-max-normalised Gaussian noise over the batch (<see cref="MixMath.RescaledLambda"/>) instead of its
    /// share of kept patches.
    /// </summary>
    public bool MergeMixLambdaScale;

    /// <summary>
    /// Token merging in the training forward passes (the paper's CIFAR setting, openmixup <c>tome_in_mix=False</c>).
    /// A separate MergeMix attention pass always merges when Model.MergeCount &gt; 0.
    /// </summary>
    public bool MergeDuringTraining;

    /// <summary>Token merging at inference (faster; the paper's "MergeMix^tome").</summary>
    public bool MergeAtInference;

    /// <summary>
    /// Mixed precision in the training steps: the blocks' Linear layers multiply in bf16 (input, weight and bias cast
    /// to bf16, the product back to fp32), everything else stays fp32, and so do the parameters, gradients and AdamW
    /// (<see cref="Vision.VisionTransformer.BFloat16Linear"/>). Off by default because it changes the numerics (bf16
    /// keeps 8 significant bits); validation, evaluation and prediction always run in fp32. On CPUs with AVX512-BF16 the
    /// products are several times faster; the samples' <c>stepcost</c> measures the step either way (README, "Step cost").
    /// </summary>
    public bool BFloat16Linear;

    /// <summary>Seed of initialisation, data order, augmentation and mixing.</summary>
    public int Seed;

    /// <summary>Optional validation data (same columns); metrics are computed after every epoch.</summary>
    public IDataView? ValidationSet;

    /// <summary>Torch device: "cpu", "cuda" or "cuda:N".</summary>
    public string Device = "cpu";

    /// <summary>Intra-op threads for torch while training (the previous setting is restored afterwards); 0 keeps the current setting.</summary>
    public int Threads;

    /// <summary>
    /// On the CPU under Linux (glibc), keep the native memory a training step frees for the next step instead of
    /// returning it to the OS after every step (malloc's trim and mmap thresholds, set once, process-wide, not undone):
    /// the process then holds its peak step memory, and steps stop paying for faulting and zeroing it again. Changes
    /// no result; the samples' <c>stepcost --allocator default</c> measures the step without it (README, "Step cost").
    /// Because the effect outlives the training, the trainer says so on the ML.NET channel the first time it applies it;
    /// an application that decides process settings itself calls <see cref="Runtime.NativeAllocator.KeepFreedMemory"/> at
    /// start-up and sets this to false.
    /// </summary>
    public bool KeepNativeMemory = true;

    /// <summary>
    /// Folder for a checkpoint written after every epoch (and every <see cref="CheckpointEverySteps"/> steps); training
    /// resumes from it when it exists, exactly where it stopped. The checkpoint records a fingerprint of what decides
    /// the result (the training data's content and every option but column names, <see cref="ValidationSet"/>,
    /// <see cref="Device"/>, <see cref="Threads"/>, <see cref="KeepNativeMemory"/>, <see cref="Progress"/>, <see cref="CancellationToken"/> and these
    /// checkpoint settings); a checkpoint made with anything else is refused, naming what differs, unless
    /// <see cref="OnCheckpointMismatch"/> says to resume anyway.
    /// </summary>
    public string? CheckpointFolder;

    /// <summary>
    /// Also checkpoint within an epoch, every this many optimisation steps (0 = at the end of each epoch only), so that
    /// an interrupted long epoch resumes from its last such step instead of its start. On the CPU the resumed run is
    /// bit for bit the uninterrupted one (the random streams' states are saved with the weights).
    /// </summary>
    public int CheckpointEverySteps;

    /// <summary>What to do when <see cref="CheckpointFolder"/> holds a checkpoint made with other data or options.</summary>
    public CheckpointMismatch OnCheckpointMismatch = CheckpointMismatch.Fail;

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
        RandAugment?.Validate(nameof(RandAugment));
        if (!Enum.IsDefined(MergeMixBaseLoss)) throw new ArgumentOutOfRangeException(nameof(MergeMixBaseLoss), $"MergeMixBaseLoss must be None, Clean or Mixup, got {(int)MergeMixBaseLoss}.");
        if (!Enum.IsDefined(MergeMixAttentionPass)) throw new ArgumentOutOfRangeException(nameof(MergeMixAttentionPass), $"MergeMixAttentionPass must be CleanPass or Separate, got {(int)MergeMixAttentionPass}.");
        if (Threads < 0) throw new ArgumentOutOfRangeException(nameof(Threads), $"Threads must be ≥ 0, got {Threads}.");
        if (CheckpointEverySteps < 0)
            throw new ArgumentOutOfRangeException(nameof(CheckpointEverySteps), $"CheckpointEverySteps must be ≥ 0 (0 = at epoch ends only), got {CheckpointEverySteps}.");
        if (!Enum.IsDefined(OnCheckpointMismatch))
            throw new ArgumentOutOfRangeException(nameof(OnCheckpointMismatch), $"Unknown OnCheckpointMismatch value {OnCheckpointMismatch}.");
        ArgumentNullException.ThrowIfNull(Model, nameof(Model));
        if (SoftLabelColumnName is not null && OnlineMixing is not null)
            throw new ArgumentException(SoftLabelsWithOnlineMixing, nameof(OnlineMixing));
        if (FrozenBlocks < 0) throw new ArgumentOutOfRangeException(nameof(FrozenBlocks), $"FrozenBlocks must be ≥ 0, got {FrozenBlocks}.");
        if (InitialWeights is null && FrozenBlocks > Model.Depth)
            throw new ArgumentOutOfRangeException(nameof(FrozenBlocks), $"FrozenBlocks ({FrozenBlocks}) must be at most Model.Depth ({Model.Depth}).");
        Positive(HeadLearningRateMultiplier, nameof(HeadLearningRateMultiplier));
        InitialWeights?.Validate(nameof(InitialWeights));
    }

    /// <summary>
    /// Options left out of the checkpoint fingerprint: they say where data is read from or results go, where and how
    /// fast training runs, or how it is observed, never what it computes (the data's own content is fingerprinted).
    /// </summary>
    internal static readonly string[] NotInFingerprint =
    {
        nameof(LabelColumnName), nameof(SoftLabelColumnName), nameof(FeatureColumnName), nameof(ScoreColumnName), nameof(PredictedLabelColumnName),
        nameof(ValidationSet), nameof(Device), nameof(Threads), nameof(KeepNativeMemory), nameof(CheckpointFolder), nameof(CheckpointEverySteps), nameof(OnCheckpointMismatch),
        nameof(Progress), nameof(CancellationToken),
    };

    internal const string SoftLabelsWithOnlineMixing =
        "SoftLabelColumnName (labels of an offline mixer) and OnlineMixing cannot be combined: mix either in the pipeline or in the trainer.";
}
