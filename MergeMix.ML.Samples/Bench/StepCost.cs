using System.Globalization;
using System.Text;
using MergeMix.ML.Classification;
using MergeMix.ML.Mixing;
using TorchSharp;

namespace MergeMix.ML.Samples.Bench;

/// <summary>What the <c>stepcost</c> command measures and where it writes.</summary>
public sealed class StepCostSettings
{
    /// <summary>Torch intra-op threads during the measurement.</summary>
    public int Threads = 1;

    /// <summary>Images per training step (the cifar10-small preset trains with 128).</summary>
    public int Batch = 128;

    /// <summary>Interleaved rounds; every variant's cost is the median over them.</summary>
    public int Rounds = 5;

    /// <summary>Steps of each variant per round.</summary>
    public int Steps = 3;

    /// <summary>
    /// The trainer's <see cref="VisionTransformerTrainerOptions.KeepNativeMemory"/> for every variant; false measures
    /// glibc's default allocator behaviour (memory returned to the OS between steps).
    /// </summary>
    public bool KeepNativeMemory = true;

    /// <summary>Variant names (<see cref="StepCost.VariantNames"/>), in table order.</summary>
    public IReadOnlyList<string> Variants = StepCost.DefaultVariants;

    /// <summary>
    /// A second thread count: every variant also runs with it, in the same interleaved rounds, and a table compares
    /// the two on wall time (thread counts only pay on wall time; CPU time adds the threads up). Null: not compared.
    /// </summary>
    public int? CompareThreads;

    /// <summary>Folder of the CSV and Markdown files (created when missing).</summary>
    public string OutputFolder = Path.Combine("out", "step-cost");

    /// <summary>The command line written into the report.</summary>
    public string CommandLine = "";

    /// <summary>Throws an <see cref="ArgumentException"/> naming the first invalid option.</summary>
    public void Validate()
    {
        if (Threads < 1) throw new ArgumentException($"--threads must be ≥ 1, got {Threads}.");
        if (Batch < 2) throw new ArgumentException($"--batch must be ≥ 2 (mixing needs pairs), got {Batch}.");
        if (Rounds < 1) throw new ArgumentException($"--rounds must be ≥ 1, got {Rounds}.");
        if (Steps < 1) throw new ArgumentException($"--steps must be ≥ 1, got {Steps}.");
        if (Variants.Count == 0) throw new ArgumentException("--variants must name at least one variant.");
        foreach (var name in Variants)
            if (!StepCost.VariantNames.Contains(name))
                throw new ArgumentException($"--variants: unknown variant '{name}'; valid: {string.Join(", ", StepCost.VariantNames)}.");
        if (Variants.Distinct().Count() != Variants.Count) throw new ArgumentException("--variants names a variant twice.");
        if (CompareThreads is int t && (t < 1 || t == Threads))
            throw new ArgumentException($"--compare-threads must be ≥ 1 and differ from --threads ({Threads}), got {t}.");
    }
}

/// <summary>One line of the step-cost table: a measured variant with its derived numbers.</summary>
/// <param name="Cost">The measured medians.</param>
/// <param name="Description">What the variant trains with.</param>
/// <param name="FlopsPerStep">Matrix-product FLOPs of its backbone passes with gradient (3× the forward FLOPs each).</param>
/// <param name="RatioToMixup">CPU time of a step over the Mixup step's, or null when Mixup was not measured.</param>
/// <param name="WallRatioToMixup">The same on wall time.</param>
/// <param name="Gflops">FlopsPerStep / CPU seconds of a step / 1e9.</param>
/// <param name="CeilingShare">Gflops over the fp32 matmul ceiling (CPU time) measured in the same run.</param>
public sealed record StepCostRow(TrainingStepCost Cost, string Description, double FlopsPerStep, double? RatioToMixup, double? WallRatioToMixup,
    double Gflops, double CeilingShare);

/// <summary>One Linear layer shape timed in fp32 and in bf16 (inputs, weight and bias cast to bf16, the output back to fp32).</summary>
/// <param name="Layer">Which layer of the model (or the 2048² reference).</param>
/// <param name="Rows">Rows of the input (batch × tokens).</param>
/// <param name="In">Input features.</param>
/// <param name="Out">Output features.</param>
/// <param name="Fp32Gflops">fp32 GFLOP/s on CPU time.</param>
/// <param name="Bf16Gflops">bf16 GFLOP/s on CPU time, the casts included.</param>
public sealed record LinearPrecision(string Layer, long Rows, long In, long Out, double Fp32Gflops, double Bf16Gflops);

/// <summary>A target of issue #8 §1 checked against the measured rows.</summary>
/// <param name="Text">The target as the issue states it.</param>
/// <param name="Measured">The measured value (a ratio to Mixup, or a share of the ceiling), or null when a needed variant was not run.</param>
/// <param name="Met">Whether the measured value meets the bound.</param>
/// <param name="Before">The value the issue measured before this work.</param>
public sealed record StepCostTarget(string Text, double? Measured, bool Met, string Before);

/// <summary>
/// The <c>stepcost</c> benchmark: the trainer's own training step (<see cref="TrainingStepBenchmark"/>) for the
/// cifar10-small ViT in several configurations, interleaved in one process, with the fp32 matmul ceiling timed after
/// every round under the same load; ratios to the Mixup step, images/s, GFLOP/s and the issue's targets.
/// </summary>
public static class StepCost
{
    private const int ImageSize = 32, Classes = 10, CeilingSize = 2048, CeilingIterations = 3;

    /// <summary>The variants, in the order of the table.</summary>
    public static IReadOnlyList<string> VariantNames { get; } = new[]
    {
        "plain", "mixup", "mergemix", "mergemix-separate", "mergemix-tome", "mergemix-nobase-tome", "mixup-tome",
        "mixup-tome-noprop", "plain-bf16", "mixup-bf16", "mergemix-bf16", "mergemix-tome-bf16",
    };

    private sealed record Modifier(string Suffix, string Description, Action<VisionTransformerTrainerOptions> Apply);

    /// <summary>
    /// Modifiers a variant name may end with, each a change to the base variant's options, so that a modifier is
    /// described and applied in one place whatever base it is put on. Outermost first: a name stacking both ends
    /// in "-noprop-bf16".
    /// </summary>
    private static readonly Modifier[] Modifiers =
    {
        new("-bf16", "the blocks' Linear layers in bf16 (BFloat16Linear)", o => o.BFloat16Linear = true),
        new("-noprop", "proportional attention off (what the log-size key bias costs)", o => o.Model.ProportionalAttention = false),
    };

    /// <summary>The variants measured when --variants is not given (all but the Mixup-with-ToMe reference).</summary>
    public static IReadOnlyList<string> DefaultVariants { get; } = VariantNames.Take(6).ToArray();

    /// <summary>Description of a variant for the table.</summary>
    public static string Describe(string name)
    {
        var (baseName, modifiers) = Split(name);
        string description = baseName switch
        {
            "plain" => "no mixing, one pass",
            "mixup" => "Mixup (α 0.8), one pass",
            "mergemix" => "MergeMix, clean base loss, attention from the clean pass, no merging in training (2 passes)",
            "mergemix-separate" => "MergeMix, clean base loss, separate ToMe attention pass (the old 3-pass step), no merging in training",
            "mergemix-tome" => "MergeMix, clean base loss, attention from the clean pass, ToMe merging in both training passes",
            "mergemix-nobase-tome" => "MergeMix, no base loss, ToMe in its one training pass (+ separate no-gradient attention pass)",
            "mixup-tome" => "Mixup with ToMe merging in its training pass",
            _ => throw new InvalidOperationException($"variant '{name}' has no description."),
        };
        return string.Join("; ", modifiers.Select(m => m.Description).Prepend(description));
    }

    /// <summary>Trainer options of a variant: the cifar10-small preset with the variant's mixing, base loss and merging.</summary>
    public static VisionTransformerTrainerOptions Options(string name)
    {
        var (baseName, modifiers) = Split(name);
        var options = BenchPreset.Cifar10Small.TrainerOptions(1);
        options.OnlineMixing = baseName switch
        {
            "plain" => null,
            "mixup" or "mixup-tome" => new MixupPolicy(),
            _ => new MergeMixPolicy(),
        };
        options.MergeMixBaseLoss = baseName == "mergemix-nobase-tome" ? MergeMixBaseLoss.None : MergeMixBaseLoss.Clean;
        options.MergeMixAttentionPass = baseName == "mergemix-separate" ? MergeMixAttentionPass.Separate : MergeMixAttentionPass.CleanPass;
        options.MergeDuringTraining = baseName.EndsWith("-tome", StringComparison.Ordinal);
        foreach (var modifier in modifiers) modifier.Apply(options);
        return options;
    }

    /// <summary>A listed variant's base name and the modifiers its name ends with, innermost first.</summary>
    private static (string BaseName, List<Modifier> Modifiers) Split(string name)
    {
        if (!VariantNames.Contains(name)) throw new ArgumentException($"unknown variant '{name}'; valid: {string.Join(", ", VariantNames)}.", nameof(name));
        var modifiers = new List<Modifier>();
        foreach (var modifier in Modifiers)
        {
            if (!name.EndsWith(modifier.Suffix, StringComparison.Ordinal)) continue;
            name = name[..^modifier.Suffix.Length];
            modifiers.Insert(0, modifier);
        }
        return (name, modifiers);
    }

    /// <summary>FLOPs of one step of a variant: batch × passes × 3 × forward FLOPs (merged where it merges).</summary>
    public static double FlopsPerStep(string name, int passes, int batch)
    {
        var options = Options(name);
        var model = options.Model.Clone();
        model.ImageSize = ImageSize;
        model.ClassCount = Classes;
        return (double)batch * passes * 3 * TrainingStepBenchmark.ForwardFlops(model, options.MergeDuringTraining);
    }

    /// <summary>
    /// Derived numbers of every measured variant; ratios are to the variant called "mixup", GFLOP/s and the ceiling
    /// share on CPU time against <paramref name="ceilingGflops"/> (also CPU time).
    /// </summary>
    public static IReadOnlyList<StepCostRow> Rows(IReadOnlyList<TrainingStepCost> costs, int batch, double ceilingGflops)
    {
        if (!(ceilingGflops > 0)) throw new ArgumentOutOfRangeException(nameof(ceilingGflops), ceilingGflops, "the ceiling must be > 0 GFLOP/s.");
        var mixup = costs.FirstOrDefault(c => c.Name == "mixup");
        return costs.Select(c =>
        {
            double flops = FlopsPerStep(c.Name, c.Passes, batch);
            double gflops = flops / c.CpuSecondsPerStep / 1e9;
            return new StepCostRow(c, Describe(c.Name), flops,
                mixup is null ? null : c.CpuSecondsPerStep / mixup.CpuSecondsPerStep,
                mixup is null ? null : c.SecondsPerStep / mixup.SecondsPerStep,
                gflops, gflops / ceilingGflops);
        }).ToList();
    }

    /// <summary>Name of a variant run at a thread count other than the main one.</summary>
    public static string ThreadsName(string variant, int threads) => $"{variant}@{threads}t";

    /// <summary>
    /// One variant at both thread counts: wall and CPU ms per step, and the wall-time speed-up of the compared count.
    /// </summary>
    public sealed record ThreadRow(string Variant, double WallMs, double CpuMs, double ComparedWallMs, double ComparedCpuMs)
    {
        /// <summary>Wall time at the main thread count over wall time at the compared one.</summary>
        public double SpeedUp => WallMs / ComparedWallMs;
    }

    /// <summary>Pairs every variant's cost at <paramref name="threads"/> with its cost at <paramref name="compared"/>.</summary>
    public static IReadOnlyList<ThreadRow> ThreadRows(IReadOnlyList<TrainingStepCost> costs, IReadOnlyList<string> variants, int threads, int compared)
    {
        TrainingStepCost Find(string name) => costs.FirstOrDefault(c => c.Name == name)
            ?? throw new ArgumentException($"no measured cost for '{name}'", nameof(costs));
        return variants.Select(v =>
        {
            var main = Find(v);
            var other = Find(ThreadsName(v, compared));
            return new ThreadRow(v, main.SecondsPerStep * 1e3, main.CpuSecondsPerStep * 1e3, other.SecondsPerStep * 1e3, other.CpuSecondsPerStep * 1e3);
        }).ToList();
    }

    /// <summary>The thread-count table.</summary>
    public static string ThreadsMarkdown(IReadOnlyList<ThreadRow> rows, int threads, int compared)
    {
        var md = new StringBuilder("\nThread counts, side by side in the same rounds (wall time decides; CPU time adds up the threads):\n\n");
        md.Append($"| variant | wall ms, {threads} thread(s) | wall ms, {compared} threads | speed-up | CPU ms, {threads} | CPU ms, {compared} |\n|---|---|---|---|---|---|\n");
        foreach (var r in rows)
            md.Append($"| `{r.Variant}` | {R(r.WallMs, 0)} | {R(r.ComparedWallMs, 0)} | {R(r.SpeedUp, 2)}× | {R(r.CpuMs, 0)} | {R(r.ComparedCpuMs, 0)} |\n");
        return md.ToString();
    }

    /// <summary>The thread-count table as CSV.</summary>
    public static string ThreadsCsv(IReadOnlyList<ThreadRow> rows, int threads, int compared)
    {
        var text = new StringBuilder("variant,threads,compared_threads,wall_ms,compared_wall_ms,speed_up,cpu_ms,compared_cpu_ms\n");
        foreach (var r in rows)
            text.AppendJoin(",", new[] { r.Variant, I(threads), I(compared), F(r.WallMs), F(r.ComparedWallMs), F(r.SpeedUp), F(r.CpuMs), F(r.ComparedCpuMs) }).Append('\n');
        return text.ToString();
    }

    /// <summary>The issue's four targets, checked on <paramref name="rows"/>.</summary>
    public static IReadOnlyList<StepCostTarget> Targets(IReadOnlyList<StepCostRow> rows)
    {
        StepCostTarget Ratio(string text, string variant, double bound, string before)
        {
            double? value = rows.FirstOrDefault(r => r.Cost.Name == variant)?.RatioToMixup;
            return new StepCostTarget(text, value, value <= bound, before);
        }
        double? share = rows.FirstOrDefault(r => r.Cost.Name == "plain")?.CeilingShare;
        return new[]
        {
            Ratio("MergeMix step (clean base loss, no merging in training) ≤ 2.1× a Mixup step", "mergemix", 2.1, "3.20×"),
            Ratio("the same with ToMe merging in MergeMix's training passes ≤ 1.4× a plain Mixup step", "mergemix-tome", 1.4, "1.53×"),
            Ratio("MergeMix with no base loss and ToMe in its one pass ≤ 0.7× a plain Mixup step", "mergemix-nobase-tome", 0.7, "0.80×"),
            new StepCostTarget("plain ViT step ≥ 60 % of the fp32 matmul ceiling", share, share >= 0.6, "–"),
        };
    }

    /// <summary>Median of a non-empty list.</summary>
    public static double Median(IReadOnlyList<double> values)
    {
        if (values.Count == 0) throw new ArgumentException("median of nothing", nameof(values));
        var sorted = values.OrderBy(v => v).ToArray();
        int mid = sorted.Length / 2;
        return sorted.Length % 2 == 1 ? sorted[mid] : 0.5 * (sorted[mid - 1] + sorted[mid]);
    }

    /// <summary>CSV header.</summary>
    public static IReadOnlyList<string> CsvColumns { get; } = new[]
    {
        "variant", "passes", "threads", "batch", "cpu_ms_per_step", "wall_ms_per_step", "ratio_to_mixup", "wall_ratio_to_mixup",
        "images_per_s", "gflop_per_step", "gflop_per_s", "ceiling_gflop_per_s", "ceiling_share",
        "cpu_ms_attention_pass", "cpu_ms_mix", "cpu_ms_forward", "cpu_ms_backward", "cpu_ms_optimizer",
    };

    /// <summary>The CSV text of <paramref name="rows"/>.</summary>
    public static string Csv(IReadOnlyList<StepCostRow> rows, int threads, int batch, double ceilingGflops)
    {
        var text = new StringBuilder(string.Join(",", CsvColumns)).Append('\n');
        foreach (var r in rows)
        {
            var p = r.Cost.CpuPhaseSecondsPerStep;
            text.AppendJoin(",", new[]
            {
                r.Cost.Name, I(r.Cost.Passes), I(threads), I(batch), F(r.Cost.CpuSecondsPerStep * 1e3), F(r.Cost.SecondsPerStep * 1e3),
                r.RatioToMixup is double q ? F(q) : "", r.WallRatioToMixup is double w ? F(w) : "",
                F(r.Cost.ImagesPerSecond), F(r.FlopsPerStep / 1e9), F(r.Gflops), F(ceilingGflops), F(r.CeilingShare),
                F(p[StepPhase.AttentionPass] * 1e3), F(p[StepPhase.Mix] * 1e3), F(p[StepPhase.Forward] * 1e3),
                F(p[StepPhase.Backward] * 1e3), F(p[StepPhase.Optimizer] * 1e3),
            }).Append('\n');
        }
        return text.ToString();
    }

    /// <summary>
    /// The Markdown report: settings, the cost table, the phase table and the targets. <paramref name="ceilings"/>:
    /// the ceiling of every round on CPU time, <paramref name="wallCeilings"/> the same on wall time.
    /// </summary>
    public static string Markdown(IReadOnlyList<StepCostRow> rows, StepCostSettings settings, IReadOnlyList<double> ceilings, IReadOnlyList<double> wallCeilings)
    {
        double ceiling = Median(ceilings);
        var md = new StringBuilder();
        md.Append("# Training step cost, cifar10-small ViT (96 wide, 4 blocks, 4 heads, patch 4, 32×32, MergeCount 32)\n\n");
        md.Append($"Command: `{settings.CommandLine}`\n\n");
        md.Append($"{settings.Threads} torch thread(s), batch {settings.Batch}, {settings.Rounds} interleaved rounds × {settings.Steps} steps per variant ");
        md.Append("(medians over rounds, after 2 warm-up steps), random images; the trainer's own step (forward, loss, backward, clipping, AdamW). ");
        md.Append("Costs are process CPU time (with one torch thread: the step's own work, little moved by other processes on a shared machine); ");
        md.Append("wall time is shown next to it. ");
        md.Append(settings.KeepNativeMemory
            ? "Native memory kept between steps (the trainer's default `KeepNativeMemory`). "
            : "glibc's default allocator behaviour (`KeepNativeMemory = false`: freed memory goes back to the OS between steps). ");
        md.Append($"fp32 matmul ceiling ({CeilingSize}², timed after every round): median {R(ceiling, 1)} GFLOP/s on CPU time ");
        md.Append($"(rounds: {string.Join(", ", ceilings.Select(c => R(c, 1)))}), {R(Median(wallCeilings), 1)} GFLOP/s on wall time.\n\n");
        md.Append("| variant | passes | CPU ms / step | × Mixup | wall ms / step | × Mixup (wall) | images/s (wall) | GFLOP / step | GFLOP/s (CPU) | % of ceiling |\n");
        md.Append("|---|---|---|---|---|---|---|---|---|---|\n");
        foreach (var r in rows)
            md.Append($"| `{r.Cost.Name}`: {r.Description} | {r.Cost.Passes} | {R(r.Cost.CpuSecondsPerStep * 1e3, 0)} | {Ratio(r.RatioToMixup)} | ")
              .Append($"{R(r.Cost.SecondsPerStep * 1e3, 0)} | {Ratio(r.WallRatioToMixup)} | {R(r.Cost.ImagesPerSecond, 0)} | ")
              .Append($"{R(r.FlopsPerStep / 1e9, 1)} | {R(r.Gflops, 1)} | {R(100 * r.CeilingShare, 0)} |\n");
        md.Append("\nGFLOP counts the matrix products of the passes with gradient (3× forward each, merged tokens where the variant merges); ");
        md.Append("a separate no-gradient attention pass and element-wise work are not counted.\n\n");
        md.Append("Where the time goes (CPU ms per step, medians):\n\n| variant | attention pass | mix | forward | backward | optimizer |\n|---|---|---|---|---|---|\n");
        foreach (var r in rows)
        {
            var p = r.Cost.CpuPhaseSecondsPerStep;
            md.Append($"| `{r.Cost.Name}` | {R(p[StepPhase.AttentionPass] * 1e3, 1)} | {R(p[StepPhase.Mix] * 1e3, 1)} | {R(p[StepPhase.Forward] * 1e3, 1)} | ")
              .Append($"{R(p[StepPhase.Backward] * 1e3, 1)} | {R(p[StepPhase.Optimizer] * 1e3, 1)} |\n");
        }
        md.Append("\nTargets (issue #8 §1, on CPU time):\n\n| target | before | measured | |\n|---|---|---|---|\n");
        foreach (var t in Targets(rows))
        {
            string value = t.Measured is not double v ? "not run" : t.Text.Contains("ceiling", StringComparison.Ordinal) ? R(100 * v, 0) + " %" : R(v, 2) + "×";
            md.Append($"| {t.Text} | {t.Before} | {value} | {(t.Measured is null ? "–" : t.Met ? "met" : "missed")} |\n");
        }
        return md.ToString();
    }

    /// <summary>
    /// fp32 vs bf16 GFLOP/s of the model's Linear layers at <paramref name="batch"/> images (CPU time, median of
    /// <paramref name="iterations"/> after one warm-up), with the casts a bf16 Linear inside an fp32 model pays, and
    /// the 2048² reference.
    /// </summary>
    public static IReadOnlyList<LinearPrecision> LinearPrecisions(int batch, int iterations = 5)
    {
        var model = Options("plain").Model.Clone();
        model.ImageSize = ImageSize;
        long rows = (long)batch * (model.PatchCount + 1), w = model.Width, m = model.MlpHidden;
        var shapes = new (string, long, long, long)[]
        {
            ("qkv", rows, w, 3 * w), ("attention projection", rows, w, w), ("MLP fc1", rows, w, m), ("MLP fc2", rows, m, w),
            ("reference 2048²", CeilingSize, CeilingSize, CeilingSize),
        };
        using var generator = new torch.Generator(0);
        var result = new List<LinearPrecision>();
        foreach (var (layer, r, k, n) in shapes)
        {
            using var scope = torch.NewDisposeScope();
            var x = torch.randn(new[] { r, k }, generator: generator);
            var weight = torch.randn(new[] { n, k }, generator: generator);
            var bias = torch.randn(new[] { n }, generator: generator);
            double Time(Func<torch.Tensor> f)
            {
                f().Dispose();
                var seconds = new List<double>();
                for (int i = 0; i < iterations; i++)
                {
                    var start = Environment.CpuUsage.TotalTime;
                    f().Dispose();
                    seconds.Add((Environment.CpuUsage.TotalTime - start).TotalSeconds);
                }
                return 2.0 * r * k * n / Median(seconds) / 1e9;
            }
            double fp32 = Time(() => torch.nn.functional.linear(x, weight, bias));
            double bf16 = Time(() =>
            {
                using var inner = torch.NewDisposeScope();
                return torch.nn.functional.linear(x.to(torch.ScalarType.BFloat16), weight.to(torch.ScalarType.BFloat16), bias.to(torch.ScalarType.BFloat16))
                    .to(torch.ScalarType.Float32).MoveToOuterDisposeScope();
            });
            result.Add(new LinearPrecision(layer, r, k, n, fp32, bf16));
        }
        return result;
    }

    /// <summary>The Markdown table of <see cref="LinearPrecisions"/>.</summary>
    public static string LinearPrecisionMarkdown(IReadOnlyList<LinearPrecision> rows)
    {
        var md = new StringBuilder("\nMixed precision, where bf16 pays: the model's Linear layers alone, forward, CPU time ");
        md.Append("(bf16 includes casting input, weight and bias to bf16 and the output back to fp32, as a bf16 Linear inside an fp32 model must):\n\n");
        md.Append("| layer | shape | fp32 GFLOP/s | bf16 GFLOP/s | bf16 / fp32 |\n|---|---|---|---|---|\n");
        foreach (var r in rows)
            md.Append($"| {r.Layer} | [{r.Rows}×{r.In}]·[{r.In}×{r.Out}] | {R(r.Fp32Gflops, 1)} | {R(r.Bf16Gflops, 1)} | {R(r.Bf16Gflops / r.Fp32Gflops, 2)}× |\n");
        return md.ToString();
    }

    /// <summary>Measures, writes step-cost.csv and step-cost.md into the output folder, and returns the Markdown.</summary>
    public static string Run(StepCostSettings settings, TextWriter log)
    {
        settings.Validate();
        var folder = Path.GetFullPath(settings.OutputFolder);
        Directory.CreateDirectory(folder);
        using (Runtime.TorchThreads.Use(settings.Threads))
        {
            TrainingStepVariant Variant(string name, int threads)
            {
                var options = Options(name);
                options.KeepNativeMemory = settings.KeepNativeMemory;
                options.Threads = threads;
                return new TrainingStepVariant(threads == settings.Threads ? name : ThreadsName(name, threads), options);
            }
            var variants = settings.Variants.Select(n => Variant(n, settings.Threads)).ToList();
            if (settings.CompareThreads is int other) variants.AddRange(settings.Variants.Select(n => Variant(n, other)));
            var ceilings = new List<double>();
            var wallCeilings = new List<double>();
            var costs = TrainingStepBenchmark.Measure(variants, ImageSize, Classes, settings.Batch, settings.Rounds, settings.Steps, seed: 0, afterRound: round =>
            {
                ceilings.Add(TrainingStepBenchmark.MatmulGflops(CeilingSize, CeilingIterations, cpuTime: true));
                wallCeilings.Add(TrainingStepBenchmark.MatmulGflops(CeilingSize, CeilingIterations));
                log.WriteLine($"round {round + 1}/{settings.Rounds} done, matmul ceiling {R(ceilings[^1], 1)} GFLOP/s (CPU time), {R(wallCeilings[^1], 1)} (wall)");
            });
            double ceiling = Median(ceilings);
            var rows = Rows(costs.Take(settings.Variants.Count).ToList(), settings.Batch, ceiling);
            log.WriteLine("timing the Linear layers in fp32 and bf16");
            var markdown = Markdown(rows, settings, ceilings, wallCeilings);
            if (settings.CompareThreads is int compared)
            {
                var threadRows = ThreadRows(costs, settings.Variants, settings.Threads, compared);
                markdown += ThreadsMarkdown(threadRows, settings.Threads, compared);
                File.WriteAllText(Path.Combine(folder, "step-cost-threads.csv"), ThreadsCsv(threadRows, settings.Threads, compared));
            }
            markdown += LinearPrecisionMarkdown(LinearPrecisions(settings.Batch));
            File.WriteAllText(Path.Combine(folder, "step-cost.csv"), Csv(rows, settings.Threads, settings.Batch, ceiling));
            File.WriteAllText(Path.Combine(folder, "step-cost.md"), markdown);
            return markdown;
        }
    }

    private static string Ratio(double? v) => v is double q ? R(q, 2) : "–";

    private static string I(int v) => v.ToString(CultureInfo.InvariantCulture);

    private static string F(double v) => v.ToString("G6", CultureInfo.InvariantCulture);

    private static string R(double v, int digits) => v.ToString("F" + digits, CultureInfo.InvariantCulture);
}
