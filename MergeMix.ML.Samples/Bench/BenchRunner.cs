using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using MergeMix.ML.Classification;
using MergeMix.ML.Mixing;
using MergeMix.ML.Vision;
using TorchSharp;

namespace MergeMix.ML.Samples.Bench;

/// <summary>What to benchmark and where to write it.</summary>
public sealed class BenchSettings
{
    /// <summary>The preset.</summary>
    public BenchPreset Preset = BenchPreset.Smoke;

    /// <summary>CIFAR-10 binary folder; null uses the embedded synthetic shapes.</summary>
    public string? DataFolder;

    /// <summary>Mixing policy names (<see cref="MixPolicies.Names"/>), run in this order.</summary>
    public IReadOnlyList<string> Methods = MixPolicies.Names;

    /// <summary>Seeds per method: runs use seeds 0 … Seeds − 1.</summary>
    public int Seeds = 1;

    /// <summary>Folder of the CSV, Markdown and PNG files (created when missing).</summary>
    public string OutputFolder = Path.Combine("out", "bench");

    /// <summary>Keep the rows of an earlier (interrupted) benchmark and skip the method × seed runs they hold.</summary>
    public bool Resume;

    /// <summary>
    /// Settings of the MergeMix runs (attention direction and layer, λ̂ re-scaling, base loss, merging in training);
    /// anything but the defaults is appended to the method's name in the results.
    /// </summary>
    public MergeMixVariant MergeMix = new();

    /// <summary>
    /// Run the ablation list of <see cref="MergeMixVariant.Ablations"/> (MergeMix only, one row per variant) instead
    /// of <see cref="Methods"/>.
    /// </summary>
    public bool Ablations;

    /// <summary>RandAugment on or off instead of the preset's; null keeps the preset's.</summary>
    public bool? RandAugment;

    /// <summary>bf16 Linear layers in training on or off instead of the preset's (off); null keeps the preset's.</summary>
    public bool? BFloat16Linear;

    /// <summary>
    /// Train and validate only (for choosing a preset): the per-epoch validation curves go to
    /// <c>bench-&lt;preset&gt;-validation.csv</c> and its summary table; the test split is never evaluated.
    /// </summary>
    public bool ValidationOnly;

    /// <summary>
    /// Only rewrite the Markdown report and the charts from the CSV files already in <see cref="OutputFolder"/> (e.g.
    /// after a newer build changed the report while other processes still train); nothing is trained or claimed.
    /// </summary>
    public bool ReportOnly;

    /// <summary>Epochs instead of the preset's (for cost measurements); null keeps the preset's.</summary>
    public int? Epochs;

    /// <summary>Torch intra-op threads instead of the preset's; null keeps the preset's.</summary>
    public int? Threads;

    /// <summary>The command line written into the report.</summary>
    public string CommandLine = "";
}

/// <summary>Paths of a finished benchmark's files.</summary>
/// <param name="Csv">One row per method × seed.</param>
/// <param name="EpochsCsv">One row per method × seed × epoch.</param>
/// <param name="Markdown">The mean ± std table.</param>
/// <param name="Plots">Accuracy-per-epoch, ECE and occlusion charts.</param>
public sealed record BenchOutputs(string Csv, string EpochsCsv, string Markdown, IReadOnlyList<string> Plots);

/// <summary>
/// Trains every method × seed of a preset with <see cref="ClassifierTraining.Train"/> and evaluates it on the test split.
/// Each finished run is appended to the CSV files and the report and charts are rebuilt at once, so an interrupted
/// benchmark keeps every finished run; a run interrupted mid-training resumes from its per-epoch checkpoint.
/// </summary>
/// <remarks>
/// Several processes may share one output folder when each is started with <c>--resume</c>: the CSV files are only
/// touched under a lock file, and a process claims a run (its checkpoint folder holds the claimant's process id)
/// before training it, so two processes given the same methods split the runs between them; the claim of a process
/// that has died is taken over. Runs go seed by seed, so an unfinished table has every method at its first seeds.
/// </remarks>
public static class BenchRunner
{
    /// <summary>The equal-compute control: <c>none</c> trained for twice the preset's epochs.</summary>
    public const string NoneTwiceTheEpochs = "none-2x";

    /// <summary>Every method <c>--methods all</c> runs: the mixing policies, then <see cref="NoneTwiceTheEpochs"/>.</summary>
    public static IReadOnlyList<string> MethodNames { get; } = Array.AsReadOnly(MixPolicies.Names.Append(NoneTwiceTheEpochs).ToArray());

    /// <summary>One method × settings of a benchmark, run for every seed.</summary>
    /// <param name="Label">Name in the results (method, plus the MergeMix variant when it is not the default).</param>
    /// <param name="Policy">Mixing policy name.</param>
    /// <param name="Epochs">Epochs of this method.</param>
    /// <param name="Variant">MergeMix settings; null for the other methods.</param>
    public sealed record Job(string Label, string Policy, int Epochs, MergeMixVariant? Variant);

    /// <summary>The runs of <paramref name="settings"/> for each seed, in order.</summary>
    public static IReadOnlyList<Job> Jobs(BenchSettings settings)
    {
        ArgumentNullException.ThrowIfNull(settings);
        var preset = settings.Preset;
        int epochs = settings.Epochs ?? preset.Epochs;
        if (settings.Ablations)
            return MergeMixVariant.Ablations(preset).Select(v => new Job(v.Label("mergemix", preset), "mergemix", epochs, v)).ToList();
        return settings.Methods.Select(m =>
        {
            if (m == NoneTwiceTheEpochs) return new Job(m, "none", 2 * epochs, null);
            var variant = m.StartsWith("mergemix", StringComparison.Ordinal) ? settings.MergeMix : null;
            return new Job(variant?.Label(m, preset) ?? m, m, epochs, variant);
        }).ToList();
    }

    /// <summary>Runs the benchmark, logging progress to <paramref name="log"/>, and returns the written files.</summary>
    public static BenchOutputs Run(BenchSettings settings, TextWriter log)
    {
        ArgumentNullException.ThrowIfNull(settings);
        ArgumentNullException.ThrowIfNull(log);
        if (settings.Seeds < 1) throw new ArgumentException($"--seeds must be at least 1, got {settings.Seeds}.");
        if (settings.Epochs is < 1) throw new ArgumentException($"--epochs must be at least 1, got {settings.Epochs}.");
        if (settings.Threads is < 1) throw new ArgumentException($"--threads must be at least 1, got {settings.Threads}.");
        if (settings.Methods.Count == 0) throw new ArgumentException("--methods: give at least one method.");
        foreach (var m in settings.Methods)
            if (m != NoneTwiceTheEpochs) MixPolicies.Create(m);
        settings.MergeMix.Validate(settings.Preset);

        var preset = settings.RandAugment is { } randAugment ? settings.Preset with { RandAugment = randAugment } : settings.Preset;
        if (settings.BFloat16Linear is { } bf16) preset = preset with { BFloat16Linear = bf16 };
        int epochs = settings.Epochs ?? preset.Epochs;
        var jobs = Jobs(settings);
        var folder = Path.GetFullPath(settings.OutputFolder);
        Directory.CreateDirectory(folder);
        var csv = Path.Combine(folder, $"bench-{preset.Name}.csv");
        var epochsCsv = Path.Combine(folder, settings.ValidationOnly ? $"bench-{preset.Name}-validation.csv" : $"bench-{preset.Name}-epochs.csv");
        var markdown = Path.Combine(folder, settings.ValidationOnly ? $"bench-{preset.Name}-validation.md" : $"bench-{preset.Name}.md");

        var data = BenchData.Load(preset, settings.DataFolder);
        log.WriteLine($"bench {preset.Name}: {data.Source}; {data.Train.Count} train / {data.Validation.Count} validation / {data.Test.Count} test; {epochs} epochs"
            + (settings.ValidationOnly ? "; validation only, the test split is not evaluated" : ""));
        int threads = settings.Threads ?? preset.Threads;
        var description = new BenchDescription(preset, epochs, settings.CommandLine, data, settings.MergeMix.Describe(preset), threads);

        using (BenchResults.Lock(folder))
        {
            if (settings.ReportOnly)
            {
                if (!File.Exists(settings.ValidationOnly ? epochsCsv : csv))
                    throw new ArgumentException($"--report: '{(settings.ValidationOnly ? epochsCsv : csv)}' does not exist; run the benchmark into --out first.");
            }
            else if (settings.ValidationOnly)
            {
                if (!settings.Resume || !File.Exists(epochsCsv)) BenchResults.CreateEpochs(epochsCsv);
            }
            else if (settings.Resume)
            {
                var finished = BenchResults.ReadRows(csv);
                var finishedEpochs = BenchResults.ReadEpochs(epochsCsv).Where(e => finished.Any(r => r.Method == e.Method && r.Seed == e.Seed)).ToList();
                foreach (var r in finished)
                    if (jobs.FirstOrDefault(j => j.Label == r.Method) is { } job && job.Epochs != r.Epochs)
                        throw new ArgumentException($"--resume: '{csv}' holds {r.Method} seed {r.Seed} trained for {r.Epochs} epochs, not {job.Epochs}; resume with the same settings or start afresh.");
                BenchResults.Rewrite(csv, epochsCsv, finished, finishedEpochs);
                log.WriteLine($"Resuming: {finished.Count} finished run(s) in {csv}.");
            }
            else
            {
                BenchResults.Create(csv, epochsCsv);
            }
        }

        IReadOnlyList<string> WriteReport()
        {
            if (settings.ValidationOnly)
            {
                var curves = BenchResults.ReadEpochs(epochsCsv);
                var labels = BenchReport.MethodOrder(jobs.Select(j => j.Label).ToList(), curves.Select(e => e.Method).Distinct().ToList());
                File.WriteAllText(markdown, BenchReport.ValidationMarkdown(description, labels, curves));
                return BenchReport.ValidationPlots(folder, preset.Name, labels, curves);
            }
            var rows = BenchResults.ReadRows(csv);
            var epochRows = BenchResults.ReadEpochs(epochsCsv);
            var order = BenchReport.MethodOrder(jobs.Select(j => j.Label).ToList(), rows.Select(r => r.Method).Distinct().ToList());
            File.WriteAllText(markdown, BenchReport.Markdown(description, order, rows));
            return BenchReport.Plots(folder, preset.Name, order, rows, epochRows);
        }

        bool Finished(Job job, int seed) => settings.ValidationOnly
            ? BenchResults.ReadEpochs(epochsCsv).Count(e => e.Method == job.Label && e.Seed == seed) == job.Epochs
            : BenchResults.ReadRows(csv).Any(r => r.Method == job.Label && r.Seed == seed);

        using (Runtime.TorchThreads.Use(threads))
        {
            for (int seed = 0; seed < (settings.ReportOnly ? 0 : settings.Seeds); seed++)
                foreach (var job in jobs)
                {
                    var checkpoint = Path.Combine(folder, "checkpoints", $"{preset.Name}-{job.Label.Replace(':', '_')}-s{seed}{(settings.ValidationOnly ? "-val" : "")}");
                    using (BenchResults.Lock(folder))
                    {
                        if (Finished(job, seed) || !BenchResults.TryClaim(checkpoint)) continue;
                    }
                    var (row, history) = RunWithRetries(() => RunOne(preset, job, seed, data, checkpoint, settings.ValidationOnly, log), log);
                    using (BenchResults.Lock(folder))
                    {
                        if (row is null) BenchResults.AppendEpochs(epochsCsv, history);
                        else BenchResults.Append(csv, epochsCsv, row, history);
                        Directory.Delete(checkpoint, recursive: true);
                        WriteReport();
                    }
                }
        }
        IReadOnlyList<string> plots;
        using (BenchResults.Lock(folder)) plots = WriteReport();
        log.WriteLine($"Wrote {csv}, {epochsCsv}, {markdown} and {plots.Count} charts.");
        return new BenchOutputs(csv, epochsCsv, markdown, plots);
    }

    /// <summary>The options given to <c>--methods</c>: "all" or a comma list of method names (<see cref="MethodNames"/>).</summary>
    public static IReadOnlyList<string> ParseMethods(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        if (string.Equals(text.Trim(), "all", StringComparison.OrdinalIgnoreCase)) return MethodNames;
        var names = text.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Select(n => n.ToLowerInvariant()).Distinct().ToList();
        if (names.Count == 0) throw new ArgumentException("--methods: give 'all' or a comma-separated list of methods.");
        foreach (var n in names)
            if (!MethodNames.Contains(n))
                throw new ArgumentException($"--methods: unknown method '{n}'; valid: all, {string.Join(", ", MethodNames)}.");
        return names;
    }

    /// <summary>Attempts of one run before its error is passed on.</summary>
    private const int Attempts = 3;

    /// <summary>
    /// Runs <paramref name="run"/>, retrying after a native torch error. TorchSharp 0.107 can free the Scalar it
    /// creates implicitly for an operator (e.g. the α of <c>a + b</c>) on the finalizer thread while the native call
    /// still reads it; libtorch then rejects the garbage Scalar ("Exception raised from toFloat"). The retry resumes
    /// from the run's last epoch checkpoint, so such a crash costs at most one epoch.
    /// </summary>
    private static T RunWithRetries<T>(Func<T> run, TextWriter log)
    {
        for (int attempt = 1; ; attempt++)
        {
            try
            {
                return run();
            }
            catch (System.Runtime.InteropServices.ExternalException e) when (attempt < Attempts)
            {
                log.WriteLine($"  native torch error (attempt {attempt} of {Attempts}), resuming from the last checkpoint: {e.Message.Split('\n')[0]}");
            }
        }
    }

    private sealed record BestEpoch(int Epoch, double Accuracy);

    private static (BenchRow? Row, IReadOnlyList<BenchEpochRow> Epochs) RunOne(BenchPreset preset, Job job, int seed, BenchData data,
        string checkpoint, bool validationOnly, TextWriter log)
    {
        var policy = MixPolicies.Create(job.Policy);
        if (policy is MergeMixRandomPolicy random) random.PatchSize = preset.PatchSize;
        var bestModel = Path.Combine(checkpoint, "best-model.bin");
        var bestState = Path.Combine(checkpoint, "best.json");
        // A resumed run continues from its checkpoint; its best epoch so far comes back with it.
        var best = File.Exists(bestState) ? JsonSerializer.Deserialize<BestEpoch>(File.ReadAllText(bestState)) : null;

        var options = preset.TrainerOptions(job.Epochs);
        options.OnlineMixing = policy;
        job.Variant?.Apply(options, preset);
        options.Seed = seed;
        options.CheckpointFolder = checkpoint;
        options.Progress = new SyncProgress<EpochReport>(report =>
        {
            var v = report.Validation!;
            log.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"  {job.Label} seed {seed} epoch {report.Epoch}/{report.Epochs}: loss {report.TrainLoss:F4}, {report.Seconds:F1} s, validation top-1 {100 * v.Accuracy:F2} %, log-loss {v.LogLoss:F3}, ECE {100 * v.ExpectedCalibrationError:F2} %"));
            if (!validationOnly && (best is null || v.Accuracy > best.Accuracy))
            {
                // Train has just written this epoch's checkpoint: keep its weights as the best so far.
                File.Copy(Path.Combine(checkpoint, ClassifierTraining.CheckpointWeightsFile), bestModel, overwrite: true);
                best = new BestEpoch(report.Epoch, v.Accuracy);
                File.WriteAllText(bestState, JsonSerializer.Serialize(best));
            }
        });

        var watch = Stopwatch.StartNew();
        var (model, history) = ClassifierTraining.Train(data.Train, null, data.Validation, options);
        using var _ = model;
        var epochRows = history.Select(h => new BenchEpochRow(job.Label, seed, h.Epoch, h.TrainLoss, h.Seconds,
            h.Validation!.Accuracy, h.Validation.LogLoss, h.Validation.ExpectedCalibrationError)).ToList();
        if (validationOnly) return (null, epochRows);

        double finalTop1 = ClassifierTraining.Evaluate(model, data.Test).Accuracy;
        model.load(bestModel);
        model.eval();

        model.Backbone.MergeEnabled = false;
        var plain = ClassifierTraining.Evaluate(model, data.Test);
        var occlusion = Occlusion.Curve(model, data.Test, BenchResults.OcclusionFractions, BenchPreset.OcclusionSeed);
        double speed = VisionTransformerBenchmark.ForwardImagesPerSecond(model.Backbone, preset.ThroughputBatch, merge: false, preset.ThroughputIterations);
        model.Backbone.MergeEnabled = true;
        var merged = ClassifierTraining.Evaluate(model, data.Test);
        double speedMerged = VisionTransformerBenchmark.ForwardImagesPerSecond(model.Backbone, preset.ThroughputBatch, merge: true, preset.ThroughputIterations);
        model.Backbone.MergeEnabled = false;

        var row = new BenchRow(job.Label, seed, job.Epochs, best!.Epoch, best.Accuracy, plain.Accuracy, finalTop1, plain.LogLoss, plain.ExpectedCalibrationError,
            merged.Accuracy, merged.ExpectedCalibrationError, speed, speedMerged, history.Average(h => h.Seconds), occlusion);
        log.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"{job.Label} seed {seed}: test top-1 {100 * row.Top1:F2} % (epoch {row.BestEpoch}; last epoch {100 * finalTop1:F2} %), ECE {100 * row.Ece:F2} %, ToMe top-1 {100 * row.Top1Tome:F2} %, "
            + $"{row.TrainSecondsPerEpoch:F1} s/epoch, {speed:F0} → {speedMerged:F0} img/s, {watch.Elapsed.TotalSeconds:F0} s in all"));
        return (row, epochRows);
    }
}
