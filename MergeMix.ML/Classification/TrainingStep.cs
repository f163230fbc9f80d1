using System.Diagnostics;
using MergeMix.ML.Mixing;
using MergeMix.ML.Runtime;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace MergeMix.ML.Classification;

/// <summary>
/// One optimisation step of <see cref="ClassifierTraining"/>: the forward passes the options ask for (plain, online
/// mixing, MergeMix with its base loss and attention), the loss, backward, gradient clipping and AdamW. The trainer
/// and <see cref="TrainingStepBenchmark"/> run the same code, so the measured step cost is the trainer's.
/// </summary>
internal sealed class TrainingStep
{
    private readonly ImageClassifierModel model;
    private readonly KeptAliveAdamW optimizer;
    private readonly IReadOnlyList<Parameter> trainable;
    private readonly VisionTransformerTrainerOptions options;
    private readonly int classes;
    private readonly IMixPolicy? policy;
    private readonly IAttentionSource? separateAttention;
    private readonly bool mergeMix;
    private readonly bool attentionFromCleanPass;
    private readonly MixupPolicy baseMixup = new() { Alpha = 0.8 };

    /// <param name="model">The model, in training mode.</param>
    /// <param name="optimizer">AdamW over <paramref name="trainable"/>.</param>
    /// <param name="trainable">The parameters that learn (frozen ones excluded); their gradient norm is clipped.</param>
    /// <param name="options">Trainer options.</param>
    /// <param name="classes">Class count.</param>
    public TrainingStep(ImageClassifierModel model, KeptAliveAdamW optimizer, IReadOnlyList<Parameter> trainable, VisionTransformerTrainerOptions options, int classes)
    {
        this.model = model;
        this.optimizer = optimizer;
        this.trainable = trainable;
        this.options = options;
        this.classes = classes;
        policy = options.OnlineMixing is { Name: not "none" } p ? p : null;
        mergeMix = policy is not null && policy.Name.StartsWith("mergemix", StringComparison.Ordinal);
        attentionFromCleanPass = policy is MergeMixPolicy
            && options.MergeMixBaseLoss == MergeMixBaseLoss.Clean
            && options.MergeMixAttentionPass == MergeMixAttentionPass.CleanPass;
        separateAttention = policy is { NeedsAttention: true } && !attentionFromCleanPass ? model.AttentionSource() : null;
    }

    /// <summary>
    /// Backbone forward + backward passes of one step (a separate attention pass, which stops at the attention
    /// layer and needs no backward, is not counted).
    /// </summary>
    public int Passes => policy is null ? 1 : mergeMix && options.MergeMixBaseLoss != MergeMixBaseLoss.None ? 2 : 1;

    /// <summary>
    /// Runs one step on raw <paramref name="images"/> with <paramref name="targets"/> (one-hot or soft, [B, K]) and
    /// returns the loss. Call inside a dispose scope, in training mode. <paramref name="profile"/>, when given,
    /// accumulates the wall time of each phase.
    /// </summary>
    public float Run(Tensor images, Tensor labels, Tensor targets, Generator generator, StepProfile? profile = null)
    {
        model.Backbone.BFloat16Linear = options.BFloat16Linear;
        try { return RunPasses(images, labels, targets, generator, profile); }
        finally { model.Backbone.BFloat16Linear = false; }
    }

    private float RunPasses(Tensor images, Tensor labels, Tensor targets, Generator generator, StepProfile? profile)
    {
        profile?.Start();
        optimizer.zero_grad();
        model.Backbone.MergeEnabled = options.MergeDuringTraining;
        Tensor loss;
        if (policy is null)
        {
            loss = SoftCrossEntropy(model.call(images), targets);
            profile?.Lap(StepPhase.Forward);
        }
        else if (attentionFromCleanPass)
        {
            // The paper's loss needs the clean forward anyway; its attention (detached) ranks the patches, so the
            // step runs two backbone passes instead of three.
            var clean = model.ForwardWithAttention(images, options.MergeDuringTraining);
            var cleanLoss = SoftCrossEntropy(clean.Logits, targets);
            var attention = new FixedAttention(model.Backbone.PatchSize, clean.PatchAttention!.detach());
            profile?.Lap(StepPhase.Forward);
            var mix = Mix(images, labels, generator, attention);
            profile?.Lap(StepPhase.Mix);
            loss = SoftCrossEntropy(model.call(mix.Mixed), mix.SoftLabels).add(cleanLoss, Scalars.One);
            profile?.Lap(StepPhase.Forward);
        }
        else
        {
            MixResult mix;
            if (separateAttention is not null)
            {
                model.Backbone.MergeEnabled = model.Options.EffectiveMergeCount > 0 || options.MergeDuringTraining;
                var recorder = new RecordingAttention(separateAttention);
                try { mix = Mix(images, labels, generator, recorder); }
                finally { model.Backbone.MergeEnabled = options.MergeDuringTraining; }
                profile?.Lap(StepPhase.Mix);
                profile?.Move(StepPhase.Mix, StepPhase.AttentionPass, recorder.Seconds, recorder.CpuSeconds);
            }
            else
            {
                mix = Mix(images, labels, generator, null);
                profile?.Lap(StepPhase.Mix);
            }
            loss = SoftCrossEntropy(model.call(mix.Mixed), mix.SoftLabels);
            if (mergeMix)
                loss = options.MergeMixBaseLoss switch
                {
                    MergeMixBaseLoss.Clean => loss.add(SoftCrossEntropy(model.call(images), targets), Scalars.One),
                    MergeMixBaseLoss.Mixup => loss.add(MixupLoss(images, labels, generator), Scalars.One),
                    _ => loss,
                };
            profile?.Lap(StepPhase.Forward);
        }
        loss.backward();
        profile?.Lap(StepPhase.Backward);
        if (options.GradientClipNorm > 0) nn.utils.clip_grad_norm_(trainable, options.GradientClipNorm);
        optimizer.step();
        float value = loss.item<float>();
        profile?.Lap(StepPhase.Optimizer);
        return value;
    }

    private MixResult Mix(Tensor images, Tensor labels, Generator generator, IAttentionSource? attention)
    {
        var mix = policy!.Mix(images, labels, classes, generator, attention);
        if (!(mergeMix && options.MergeMixLambdaScale)) return mix;
        // openmixup's lam_scale: N(MergeCount/L, λ_i) noise, min-max normalised over the batch (τ = 1e-5).
        var o = model.Options;
        var noise = randn(new long[] { images.shape[0] }, ScalarType.Float64, generator.device, generator: generator).to(images.device);
        var lambda = MixMath.RescaledLambda(noise, (double)o.EffectiveMergeCount / o.PatchCount, mix.Lambda);
        var labelsOfRows = mix.Labels ?? labels;
        var soft = MixMath.SoftLabels(labelsOfRows, mix.Partner, lambda, classes);
        return mix with { Lambda = lambda, SoftLabels = soft };
    }

    private Tensor MixupLoss(Tensor images, Tensor labels, Generator generator)
    {
        var mix = baseMixup.Mix(images, labels, classes, generator);
        return SoftCrossEntropy(model.call(mix.Mixed), mix.SoftLabels);
    }

    private Tensor SoftCrossEntropy(Tensor logits, Tensor targets) => ClassifierTraining.SoftCrossEntropy(logits, targets, options.LabelSmoothing);

    /// <summary>Scores already computed (detached) for exactly this batch, e.g. by the clean pass of the base loss.</summary>
    private sealed class FixedAttention(int patchSize, Tensor scores) : IAttentionSource
    {
        public int PatchSize => patchSize;

        public Tensor PatchAttention(Tensor images)
        {
            if (images.shape[0] != scores.shape[0])
                throw new InvalidOperationException($"The precomputed attention holds {scores.shape[0]} rows, the batch {images.shape[0]}.");
            return scores.alias();
        }
    }

    /// <summary>Times the calls of an attention source, so a step profile can tell the attention pass from the mask and mix.</summary>
    private sealed class RecordingAttention(IAttentionSource inner) : IAttentionSource
    {
        public double Seconds { get; private set; }

        public double CpuSeconds { get; private set; }

        public int PatchSize => inner.PatchSize;

        public Tensor PatchAttention(Tensor images)
        {
            long start = Stopwatch.GetTimestamp();
            var cpuStart = Environment.CpuUsage.TotalTime;
            var scores = inner.PatchAttention(images);
            Seconds += Stopwatch.GetElapsedTime(start).TotalSeconds;
            CpuSeconds += (Environment.CpuUsage.TotalTime - cpuStart).TotalSeconds;
            return scores;
        }
    }
}

/// <summary>The phases of a training step that <see cref="StepProfile"/> times.</summary>
public enum StepPhase
{
    /// <summary>MergeMix's separate no-gradient attention pass (eval mode, up to the attention layer).</summary>
    AttentionPass,
    /// <summary>Mixing: λ and partner draws, mask from the attention, pixel mix, soft labels.</summary>
    Mix,
    /// <summary>Every forward pass with gradient, including the losses (and the attention captured in a clean pass).</summary>
    Forward,
    /// <summary>loss.backward().</summary>
    Backward,
    /// <summary>Gradient clipping, the AdamW update and reading the loss.</summary>
    Optimizer,
}

/// <summary>
/// Wall time and process CPU time per <see cref="StepPhase"/>, summed over the steps it has seen. With one torch
/// thread the CPU time is the step's own work, whatever else the machine runs; the wall time adds the waits for a core.
/// </summary>
public sealed class StepProfile
{
    private readonly double[] seconds = new double[Enum.GetValues<StepPhase>().Length];
    private readonly double[] cpuSeconds = new double[Enum.GetValues<StepPhase>().Length];
    private long mark;
    private TimeSpan cpuMark;

    /// <summary>Steps recorded.</summary>
    public int Steps { get; private set; }

    /// <summary>Wall seconds spent in <paramref name="phase"/> over all recorded steps.</summary>
    public double this[StepPhase phase] => seconds[(int)phase];

    /// <summary>Process CPU seconds (every thread) spent in <paramref name="phase"/> over all recorded steps.</summary>
    public double Cpu(StepPhase phase) => cpuSeconds[(int)phase];

    /// <summary>Wall seconds of all phases over all recorded steps.</summary>
    public double Total => seconds.Sum();

    /// <summary>Forgets every recorded step.</summary>
    public void Clear()
    {
        Array.Clear(seconds);
        Array.Clear(cpuSeconds);
        Steps = 0;
    }

    internal void Start()
    {
        Steps++;
        mark = Stopwatch.GetTimestamp();
        cpuMark = Environment.CpuUsage.TotalTime;
    }

    internal void Lap(StepPhase phase)
    {
        long now = Stopwatch.GetTimestamp();
        var cpuNow = Environment.CpuUsage.TotalTime;
        seconds[(int)phase] += Stopwatch.GetElapsedTime(mark, now).TotalSeconds;
        cpuSeconds[(int)phase] += (cpuNow - cpuMark).TotalSeconds;
        mark = now;
        cpuMark = cpuNow;
    }

    internal void Move(StepPhase from, StepPhase to, double wall, double cpu)
    {
        seconds[(int)from] -= wall;
        seconds[(int)to] += wall;
        cpuSeconds[(int)from] -= cpu;
        cpuSeconds[(int)to] += cpu;
    }
}
