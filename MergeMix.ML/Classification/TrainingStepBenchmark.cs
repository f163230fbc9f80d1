using System.Diagnostics;
using MergeMix.ML.Vision;
using TorchSharp;
using static TorchSharp.torch;

namespace MergeMix.ML.Classification;

/// <summary>One configuration of the training step to time.</summary>
/// <param name="Name">Label in the results.</param>
/// <param name="Options">
/// Trainer options (model, online mixing, base loss, merging, precision); epochs and callbacks are ignored, and
/// <see cref="VisionTransformerTrainerOptions.Threads"/> &gt; 0 sets the torch threads during this variant's steps only.
/// </param>
public sealed record TrainingStepVariant(string Name, VisionTransformerTrainerOptions Options);

/// <summary>Measured cost of one <see cref="TrainingStepVariant"/>: medians over the interleaved rounds.</summary>
/// <param name="Name">The variant's name.</param>
/// <param name="Passes">Backbone forward + backward passes per step (a separate no-gradient attention pass not counted).</param>
/// <param name="SecondsPerStep">Median over rounds of the mean step time of a round.</param>
/// <param name="ImagesPerSecond">Training images per second, batch / <paramref name="SecondsPerStep"/>.</param>
/// <param name="PhaseSecondsPerStep">Median over rounds of each phase's mean time per step.</param>
/// <param name="CpuSecondsPerStep">
/// Median over rounds of the mean process CPU time of a step (every thread). With one torch thread this is the
/// step's own work, so on a shared machine it moves far less than the wall time.
/// </param>
/// <param name="CpuPhaseSecondsPerStep">Median over rounds of each phase's mean CPU time per step.</param>
public sealed record TrainingStepCost(string Name, int Passes, double SecondsPerStep, double ImagesPerSecond, IReadOnlyDictionary<StepPhase, double> PhaseSecondsPerStep,
    double CpuSecondsPerStep, IReadOnlyDictionary<StepPhase, double> CpuPhaseSecondsPerStep);

/// <summary>
/// Side-by-side cost of training steps in one process: every variant gets its own model and optimizer, then the
/// variants take turns (round r runs each of them for a few steps) so that load changes on a shared machine hit
/// them alike, and each variant's cost is the median over rounds. The steps are the trainer's own
/// (<see cref="ClassifierTraining"/>), on random images.
/// </summary>
public static class TrainingStepBenchmark
{
    /// <summary>
    /// Times every variant. <paramref name="imageSize"/>: side of the random square RGB images;
    /// <paramref name="classes"/>: label count; <paramref name="batch"/>: images per step; <paramref name="rounds"/>
    /// interleaved rounds of <paramref name="steps"/> steps each, after two untimed warm-up steps per variant.
    /// <paramref name="afterRound"/>, when given, runs after each round with its index, so a reference (e.g.
    /// <see cref="MatmulGflops"/>) can be timed under the same load as the steps.
    /// </summary>
    public static IReadOnlyList<TrainingStepCost> Measure(IReadOnlyList<TrainingStepVariant> variants, int imageSize, int classes,
        int batch, int rounds, int steps, int seed = 0, Action<int>? afterRound = null)
    {
        ArgumentNullException.ThrowIfNull(variants);
        if (variants.Count == 0) throw new ArgumentException("Give at least one variant.", nameof(variants));
        if (batch < 2) throw new ArgumentOutOfRangeException(nameof(batch), batch, "batch must be ≥ 2 (mixing needs pairs).");
        if (rounds < 1) throw new ArgumentOutOfRangeException(nameof(rounds), rounds, "rounds must be ≥ 1.");
        if (steps < 1) throw new ArgumentOutOfRangeException(nameof(steps), steps, "steps must be ≥ 1.");
        if (classes < 2) throw new ArgumentOutOfRangeException(nameof(classes), classes, "classes must be ≥ 2.");

        var runs = new List<Run>();
        try
        {
            foreach (var variant in variants) runs.Add(new Run(variant, imageSize, classes, batch, seed));
            foreach (var run in runs)
            {
                using var threads = Runtime.TorchThreads.Use(run.Variant.Options.Threads);
                for (int i = 0; i < 2; i++) run.Step(null);
            }
            for (int round = 0; round < rounds; round++)
            {
                foreach (var run in runs)
                {
                    using var threads = Runtime.TorchThreads.Use(run.Variant.Options.Threads);
                    var profile = new StepProfile();
                    long start = Stopwatch.GetTimestamp();
                    var cpuStart = Environment.CpuUsage.TotalTime;
                    for (int i = 0; i < steps; i++) run.Step(profile);
                    run.StepSeconds.Add(Stopwatch.GetElapsedTime(start).TotalSeconds / steps);
                    run.CpuStepSeconds.Add((Environment.CpuUsage.TotalTime - cpuStart).TotalSeconds / steps);
                    foreach (var phase in Enum.GetValues<StepPhase>())
                    {
                        run.PhaseSeconds[phase].Add(profile[phase] / steps);
                        run.CpuPhaseSeconds[phase].Add(profile.Cpu(phase) / steps);
                    }
                }
                afterRound?.Invoke(round);
            }
            return runs.Select(r =>
            {
                double seconds = Median(r.StepSeconds);
                return new TrainingStepCost(r.Variant.Name, r.Passes, seconds, batch / seconds,
                    r.PhaseSeconds.ToDictionary(p => p.Key, p => Median(p.Value)),
                    Median(r.CpuStepSeconds), r.CpuPhaseSeconds.ToDictionary(p => p.Key, p => Median(p.Value)));
            }).ToList();
        }
        finally
        {
            foreach (var run in runs) run.Dispose();
        }
    }

    /// <summary>
    /// GFLOP/s of an fp32 <paramref name="size"/>² matmul on the CPU at the current thread count, the median of
    /// <paramref name="iterations"/> timed products after one warm-up: the practical compute ceiling of this machine.
    /// With <paramref name="cpuTime"/> the products are timed in process CPU seconds instead of wall seconds (the
    /// clock to compare with <see cref="TrainingStepCost.CpuSecondsPerStep"/>).
    /// </summary>
    public static double MatmulGflops(int size = 2048, int iterations = 3, bool cpuTime = false)
    {
        if (size < 1) throw new ArgumentOutOfRangeException(nameof(size), size, "size must be ≥ 1.");
        if (iterations < 1) throw new ArgumentOutOfRangeException(nameof(iterations), iterations, "iterations must be ≥ 1.");
        using var scope = NewDisposeScope();
        using var generator = new Generator(0);
        var a = randn(new long[] { size, size }, generator: generator);
        var b = randn(new long[] { size, size }, generator: generator);
        torch.mm(a, b).Dispose();
        var seconds = new List<double>();
        for (int i = 0; i < iterations; i++)
        {
            long start = Stopwatch.GetTimestamp();
            var cpuStart = Environment.CpuUsage.TotalTime;
            torch.mm(a, b).Dispose();
            seconds.Add(cpuTime ? (Environment.CpuUsage.TotalTime - cpuStart).TotalSeconds : Stopwatch.GetElapsedTime(start).TotalSeconds);
        }
        return 2.0 * size * size * size / Median(seconds) / 1e9;
    }

    /// <summary>
    /// Multiply-add FLOPs (2 per multiply-add) of the matrix products of one forward pass of one image through
    /// <paramref name="model"/>: patch embedding, per block qkv, QKᵀ, attention × V, projection and the two MLP
    /// layers, and the head. With <paramref name="merge"/> every block's attention runs on the tokens entering it and
    /// its MLP on those left after its ToMe merge (<see cref="VisionTransformer.Schedule"/>); the matching itself is
    /// left out like the element-wise work (norms, softmax, GELU). A training step (forward + backward) is counted
    /// as 3× this.
    /// </summary>
    public static double ForwardFlops(VisionTransformerOptions model, bool merge = false)
    {
        ArgumentNullException.ThrowIfNull(model);
        model.Validate();
        double w = model.Width, m = model.MlpHidden;
        int[] schedule = merge && model.EffectiveMergeCount > 0
            ? TokenMerging.MergeSchedule.ForModel(model.Depth, model.EffectiveMergeCount, model.PatchCount, model.MergeInflection)
            : new int[model.Depth];
        double total = 2.0 * model.PatchCount * model.Channels * model.PatchSize * model.PatchSize * w + 2 * w * model.ClassCount;
        double n = model.PatchCount + 1;
        foreach (int r in schedule)
        {
            double after = n - r;
            total += 2 * n * w * 3 * w + 2 * n * n * w + 2 * n * n * w + 2 * n * w * w + 2 * after * w * m + 2 * after * m * w;
            n = after;
        }
        return total;
    }

    private static double Median(List<double> values)
    {
        var sorted = values.OrderBy(v => v).ToArray();
        int mid = sorted.Length / 2;
        return sorted.Length % 2 == 1 ? sorted[mid] : 0.5 * (sorted[mid - 1] + sorted[mid]);
    }

    private sealed class Run : IDisposable
    {
        private readonly ImageClassifierModel model;
        private readonly Runtime.KeptAliveAdamW optimizer;
        private readonly TrainingStep step;
        private readonly Generator generator;
        private readonly Tensor images;
        private readonly Tensor labels;
        private readonly Tensor targets;

        public Run(TrainingStepVariant variant, int imageSize, int classes, int batch, int seed)
        {
            Variant = variant;
            var options = variant.Options;
            options.Validate();
            var modelOptions = options.Model.Clone();
            modelOptions.ImageSize = imageSize;
            modelOptions.Channels = 3;
            modelOptions.ClassCount = classes;
            var device = Runtime.TorchDevice.Resolve(options.Device, nameof(options.Device));
            // As the trainer does, so the measured step is the trainer's.
            if (options.KeepNativeMemory && device.type == DeviceType.CPU) Runtime.NativeAllocator.KeepFreedMemory();
            using var init = new Generator((ulong)seed);
            model = new ImageClassifierModel(modelOptions, new[] { 127.5f, 127.5f, 127.5f }, new[] { 64f, 64f, 64f }, init);
            model.to(device);
            model.train();
            List<TorchSharp.Modules.Parameter> trainable;
            (optimizer, _, trainable) = ClassifierTraining.CreateOptimizer(model, options);
            step = new TrainingStep(model, optimizer, trainable, options, classes);
            Passes = step.Passes;
            generator = new Generator((ulong)seed + 1, device);
            using var pixelRange = 255.0.ToScalar();
            using (var unit = rand(new long[] { batch, 3, imageSize, imageSize }, generator: init)) images = unit.mul(pixelRange).to(device);
            labels = randint(0, classes, new long[] { batch }, generator: init).to(device);
            targets = nn.functional.one_hot(labels, classes).to(ScalarType.Float32);
        }

        public TrainingStepVariant Variant { get; }

        public int Passes { get; }

        public List<double> StepSeconds { get; } = new();

        public List<double> CpuStepSeconds { get; } = new();

        public Dictionary<StepPhase, List<double>> PhaseSeconds { get; } = Enum.GetValues<StepPhase>().ToDictionary(p => p, _ => new List<double>());

        public Dictionary<StepPhase, List<double>> CpuPhaseSeconds { get; } = Enum.GetValues<StepPhase>().ToDictionary(p => p, _ => new List<double>());

        public void Step(StepProfile? profile)
        {
            using var scope = NewDisposeScope();
            step.Run(images, labels, targets, generator, profile);
        }

        public void Dispose()
        {
            images.Dispose(); labels.Dispose(); targets.Dispose(); generator.Dispose(); optimizer.Dispose(); model.Dispose();
        }
    }
}
