using System.Globalization;
using System.Text;
using MergeMix.ML.Samples.Imaging;

namespace MergeMix.ML.Samples.Bench;

/// <summary>Mean and sample standard deviation (n − 1) of a metric over seeds; the deviation is NaN for one value.</summary>
/// <param name="Mean">Mean.</param>
/// <param name="Std">Sample standard deviation, NaN when <paramref name="Count"/> is 1.</param>
/// <param name="Count">Number of values.</param>
public readonly record struct MeanStd(double Mean, double Std, int Count)
{
    /// <summary>Mean and sample standard deviation of <paramref name="values"/> (at least one).</summary>
    public static MeanStd Of(IEnumerable<double> values)
    {
        var v = values.ToArray();
        if (v.Length == 0) throw new ArgumentException("Need at least one value.", nameof(values));
        double mean = v.Average();
        double std = v.Length == 1 ? double.NaN : Math.Sqrt(v.Sum(x => (x - mean) * (x - mean)) / (v.Length - 1));
        return new MeanStd(mean, std, v.Length);
    }

    /// <summary>"mean ± std" with the value scaled by <paramref name="scale"/>; only the mean for a single value.</summary>
    public string Format(string format, double scale = 1) =>
        double.IsNaN(Std)
            ? (Mean * scale).ToString(format, CultureInfo.InvariantCulture)
            : $"{(Mean * scale).ToString(format, CultureInfo.InvariantCulture)} ± {(Std * scale).ToString(format, CultureInfo.InvariantCulture)}";
}

/// <summary>What the report says about a benchmark besides its rows.</summary>
/// <param name="Preset">The preset.</param>
/// <param name="Epochs">Epochs actually trained (the preset's unless overridden).</param>
/// <param name="CommandLine">The exact command that produced the results.</param>
/// <param name="Data">The data, for its source and split sizes.</param>
/// <param name="MergeMix">Settings of the MergeMix runs, in words.</param>
/// <param name="Threads">Torch intra-op threads (0: torch's default).</param>
public sealed record BenchDescription(BenchPreset Preset, int Epochs, string CommandLine, BenchData Data, string MergeMix, int Threads);

/// <summary>The Markdown table and the PNG charts of a benchmark, always rebuilt from the CSV rows.</summary>
public static class BenchReport
{
    /// <summary>Methods in the order given, then any other method found in the results.</summary>
    public static IReadOnlyList<string> MethodOrder(IReadOnlyList<string> requested, IReadOnlyList<string> found) =>
        requested.Where(found.Contains).Concat(found.Where(m => !requested.Contains(m))).Distinct().ToList();

    /// <summary>The Markdown report: settings, mean ± std per method, occlusion table, and the issue's targets.</summary>
    public static string Markdown(BenchDescription d, IReadOnlyList<string> methods, IReadOnlyList<BenchRow> rows)
    {
        var p = d.Preset;
        var s = new StringBuilder();
        s.AppendLine($"# MergeMix.ML benchmark: preset `{p.Name}`");
        s.AppendLine();
        s.AppendLine($"Command: `{d.CommandLine}`");
        s.AppendLine();
        s.AppendLine($"- Data: {d.Data.Source}; {d.Data.Train.Count} train / {d.Data.Validation.Count} validation (carved from train, class-stratified) / {d.Data.Test.Count} test images.");
        s.AppendLine($"- Model: ViT width {p.Width}, depth {p.Depth}, {p.Heads} heads, {p.PatchSize}×{p.PatchSize} patches, drop-path {p.DropPathRate.ToString(CultureInfo.InvariantCulture)}; "
            + $"only the MergeMix runs may merge tokens in training (see below); the ToMe columns merge {p.MergeCount} tokens at inference.");
        s.AppendLine($"- Training: {d.Epochs} epochs, batch {p.BatchSize}, AdamW lr {Num(p.LearningRate)} → {Num(p.MinLearningRate)} (cosine, {Num(p.WarmupEpochs)} warm-up epochs), weight decay {Num(p.WeightDecay)}, label smoothing {Num(p.LabelSmoothing)}, random crop padding {p.RandomCropPadding}, horizontal flip{(p.RandAugment ? ", RandAugment (2 operations, magnitude 7)" : "")}{(p.BFloat16Linear ? "; mixed precision: the blocks' Linear layers in bf16 while training (BFloat16Linear), evaluation in fp32" : "")}; mixing online with each policy's default α.");
        s.AppendLine($"- MergeMix: {d.MergeMix}; with the clean base loss a step runs two backbone forward/backward passes (one for none), so `{BenchRunner.NoneTwiceTheEpochs}` (none for {2 * d.Epochs} epochs) is the equal-compute control.");
        s.AppendLine("- Selection: the weights of the epoch with the best validation top-1; the test split is used for nothing but the numbers below.");
        s.AppendLine($"- Occlusion: ⌊f·L⌋ random patches per image set to the channel mean (seed {BenchPreset.OcclusionSeed}, the same masks for every run), ToMe off.");
        s.AppendLine($"- Torch threads: {(d.Threads > 0 ? d.Threads.ToString(CultureInfo.InvariantCulture) : "torch default")}. Cost of the preset: {p.Cost}.");
        s.AppendLine();
        s.AppendLine("| Method | Runs | Top-1 % | Log-loss | ECE % | Top-1 ToMe % | ECE ToMe % | Train s/epoch | Train images/s | Train min in all | Images/s | Images/s ToMe | Best epoch | Top-1 last epoch % |");
        s.AppendLine("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
        foreach (var m in methods)
        {
            var r = rows.Where(x => x.Method == m).ToList();
            if (r.Count == 0) continue;
            MeanStd Stat(Func<BenchRow, double> f) => MeanStd.Of(r.Select(f));
            s.AppendLine($"| {m} | {r.Count} | {Stat(x => x.Top1).Format("F2", 100)} | {Stat(x => x.LogLoss).Format("F3")} | {Stat(x => x.Ece).Format("F2", 100)} | "
                + $"{Stat(x => x.Top1Tome).Format("F2", 100)} | {Stat(x => x.EceTome).Format("F2", 100)} | {Stat(x => x.TrainSecondsPerEpoch).Format("F1")} | "
                + $"{Stat(x => d.Data.Train.Count / x.TrainSecondsPerEpoch).Format("F0")} | {Stat(x => x.TrainSecondsPerEpoch * x.Epochs / 60).Format("F1")} | "
                + $"{Stat(x => x.ImagesPerSecond).Format("F0")} | {Stat(x => x.ImagesPerSecondTome).Format("F0")} | {Stat(x => x.BestEpoch).Format("F1")} | {Stat(x => x.Top1Final).Format("F2", 100)} |");
        }
        s.AppendLine();
        s.AppendLine("## Per seed (seed 0 / 1 / …)");
        s.AppendLine();
        s.AppendLine("| Method | Seeds | Top-1 % | ECE % | Log-loss | Top-1 ToMe % |");
        s.AppendLine("|---|---|---|---|---|---|");
        foreach (var m in methods)
        {
            var r = rows.Where(x => x.Method == m).OrderBy(x => x.Seed).ToList();
            if (r.Count == 0) continue;
            string Seeds(Func<BenchRow, double> f, string format, double scale) => string.Join(" / ", r.Select(x => (scale * f(x)).ToString(format, CultureInfo.InvariantCulture)));
            s.AppendLine($"| {m} | {string.Join(", ", r.Select(x => x.Seed))} | {Seeds(x => x.Top1, "F2", 100)} | {Seeds(x => x.Ece, "F2", 100)} | {Seeds(x => x.LogLoss, "F3", 1)} | {Seeds(x => x.Top1Tome, "F2", 100)} |");
        }
        var paired = PairedDifferences(methods, rows);
        if (paired.Count > 0)
        {
            s.AppendLine();
            s.AppendLine("## Paired differences (same seed; mean ± std over the seeds both methods have, per-seed values in brackets)");
            s.AppendLine();
            s.AppendLine($"| Method | Δ top-1 vs none (points) | Δ ECE vs none (points) | Δ top-1 vs {BenchRunner.NoneTwiceTheEpochs} (equal compute) | Best other method | Δ top-1 vs best other |");
            s.AppendLine("|---|---|---|---|---|---|");
            foreach (var line in paired) s.AppendLine(line);
        }
        s.AppendLine();
        s.AppendLine("## Occlusion: test top-1 % (mean over seeds) by share of patches masked");
        s.AppendLine();
        s.AppendLine("| Method | " + string.Join(" | ", BenchResults.OcclusionFractions.Select(f => $"{Math.Round(f * 100)} %")) + " |");
        s.AppendLine("|---|" + string.Concat(BenchResults.OcclusionFractions.Select(_ => "---|")));
        foreach (var m in methods)
        {
            var r = rows.Where(x => x.Method == m).ToList();
            if (r.Count == 0) continue;
            s.AppendLine($"| {m} | " + string.Join(" | ", BenchResults.OcclusionFractions.Select((_, i) => (100 * r.Average(x => x.Occlusion[i])).ToString("F2", CultureInfo.InvariantCulture))) + " |");
        }
        var targets = Targets(rows);
        if (targets.Count > 0)
        {
            s.AppendLine();
            s.AppendLine("## Targets (means over seeds)");
            s.AppendLine();
            foreach (var t in targets) s.AppendLine($"- {t}");
            s.AppendLine();
            s.AppendLine("Second reading, the top-1 of the last epoch (`Top-1 last epoch %`; no selection on a noisy validation plateau; ECE is recorded at the selected epoch only):");
            s.AppendLine();
            foreach (var t in Targets(rows, lastEpoch: true)) s.AppendLine($"- {t}");
        }
        return s.ToString();
    }

    /// <summary>
    /// One table line per method: paired (same-seed) top-1 and ECE differences against none, top-1 against the
    /// equal-compute control and against the best other method (highest mean top-1 of the rest), in points.
    /// </summary>
    public static IReadOnlyList<string> PairedDifferences(IReadOnlyList<string> methods, IReadOnlyList<BenchRow> rows)
    {
        var present = methods.Where(m => rows.Any(r => r.Method == m)).ToList();
        double MeanTop1(string m) => rows.Where(r => r.Method == m).Average(r => r.Top1);
        string Diff(string m, string other, Func<BenchRow, double> f)
        {
            var pairs = rows.Where(r => r.Method == m).OrderBy(r => r.Seed)
                .Select(r => (r, o: rows.FirstOrDefault(x => x.Method == other && x.Seed == r.Seed))).Where(p => p.o is not null)
                .Select(p => 100 * (f(p.r) - f(p.o!))).ToList();
            if (pairs.Count == 0) return "–";
            var stat = MeanStd.Of(pairs);
            string mean = double.IsNaN(stat.Std) ? stat.Mean.ToString("+0.00;-0.00", CultureInfo.InvariantCulture)
                : $"{stat.Mean.ToString("+0.00;-0.00", CultureInfo.InvariantCulture)} ± {stat.Std.ToString("F2", CultureInfo.InvariantCulture)}";
            return $"{mean} ({string.Join(", ", pairs.Select(d => d.ToString("+0.00;-0.00", CultureInfo.InvariantCulture)))})";
        }
        var lines = new List<string>();
        if (present.Count < 2) return lines;
        foreach (var m in present)
        {
            var best = present.Where(o => o != m).MaxBy(MeanTop1)!;
            lines.Add($"| {m} | {(m == "none" ? "–" : Diff(m, "none", r => r.Top1))} | {(m == "none" ? "–" : Diff(m, "none", r => r.Ece))} | "
                + $"{(m == BenchRunner.NoneTwiceTheEpochs ? "–" : Diff(m, BenchRunner.NoneTwiceTheEpochs, r => r.Top1))} | {best} | {Diff(m, best, r => r.Top1)} |");
        }
        return lines;
    }

    /// <summary>
    /// The issue's targets, each as one line with its verdict, for those whose methods are in the rows: every mixer
    /// ≥ none; MergeMix top-1 ≥ every other method (the equal-compute control included); MergeMix the lowest ECE of
    /// the mixers. Means over seeds; the mixers are every method but none and the equal-compute control.
    /// </summary>
    public static IReadOnlyList<string> Targets(IReadOnlyList<BenchRow> rows) => Targets(rows, lastEpoch: false);

    /// <summary>
    /// The targets with the top-1 of <paramref name="lastEpoch"/> ? the last epoch : the best-validation epoch. The last
    /// epoch's reading has no ECE target: calibration is recorded at the selected epoch only.
    /// </summary>
    public static IReadOnlyList<string> Targets(IReadOnlyList<BenchRow> rows, bool lastEpoch)
    {
        double? Mean(string method, Func<BenchRow, double> f) => rows.Any(r => r.Method == method) ? rows.Where(r => r.Method == method).Average(f) : null;
        Func<BenchRow, double> top1 = lastEpoch ? r => r.Top1Final : r => r.Top1;
        static string Verdict(bool ok) => ok ? "**met**" : "**not met**";
        static string Pct(double v) => (100 * v).ToString("F2", CultureInfo.InvariantCulture);
        static string Points(double v) => (100 * v).ToString("+0.00;-0.00", CultureInfo.InvariantCulture);
        var lines = new List<string>();
        var methods = rows.Select(r => r.Method).Distinct().ToList();
        var mixers = methods.Where(m => m != "none" && m != BenchRunner.NoneTwiceTheEpochs).ToList();
        if (Mean("none", top1) is { } none && mixers.Count > 0)
        {
            var losers = mixers.Select(m => (Method: m, Gap: Mean(m, top1)!.Value - none))
                .Where(l => l.Gap < 0).OrderByDescending(l => l.Gap).ToList();
            lines.Add($"Every mixer ≥ none ({Pct(none)} %): {Verdict(losers.Count == 0)}"
                + (losers.Count > 0 ? $" (below none, top-1 points against it: {string.Join(", ", losers.Select(l => $"{l.Method} {Points(l.Gap)}"))})" : ""));
        }
        if (Mean("mergemix", top1) is { } mergeMix && methods.Count > 1)
        {
            var better = methods.Where(m => m != "mergemix" && Mean(m, top1) > mergeMix).ToList();
            var best = methods.Where(m => m != "mergemix").MaxBy(m => Mean(m, top1)!.Value)!;
            lines.Add($"MergeMix top-1 {Pct(mergeMix)} % ≥ every other method (best other: {best} {Pct(Mean(best, top1)!.Value)} %): {Verdict(better.Count == 0)}"
                + (better.Count > 0 ? $" (above MergeMix: {string.Join(", ", better.Select(m => $"{m} {Points(Mean(m, top1)!.Value - mergeMix)}"))})" : ""));
        }
        if (!lastEpoch && Mean("mergemix", r => r.Ece) is { } mergeEce && mixers.Count > 1)
        {
            var lowest = mixers.MinBy(m => Mean(m, r => r.Ece)!.Value)!;
            var rivals = mixers.Where(m => m != "mergemix").ToList();
            var bestRival = rivals.MinBy(m => Mean(m, r => r.Ece)!.Value)!;
            lines.Add($"MergeMix ECE {Pct(mergeEce)} % the lowest of the mixers (lowest other: {bestRival} {Pct(Mean(bestRival, r => r.Ece)!.Value)} %): {Verdict(lowest == "mergemix" || mergeEce <= Mean(bestRival, r => r.Ece))}");
        }
        return lines;
    }

    /// <summary>
    /// Writes the three charts next to each other and returns their paths: validation top-1 per epoch (mean over seeds),
    /// test ECE per method (mean ± std), and the occlusion curves.
    /// </summary>
    public static IReadOnlyList<string> Plots(string folder, string preset, IReadOnlyList<string> methods, IReadOnlyList<BenchRow> rows, IReadOnlyList<BenchEpochRow> epochs)
    {
        var present = methods.Where(m => rows.Any(r => r.Method == m)).ToList();
        if (present.Count == 0) return Array.Empty<string>();
        bool oneSeed = rows.Select(r => r.Seed).Distinct().Count() == 1;
        string mean = oneSeed ? "one seed" : "mean over seeds";
        var accuracyPath = Path.Combine(folder, $"bench-{preset}-accuracy.png");
        var curves = present.Select(m =>
        {
            var byEpoch = epochs.Where(e => e.Method == m && rows.Any(r => r.Method == m && r.Seed == e.Seed))
                .GroupBy(e => e.Epoch).OrderBy(g => g.Key).ToList();
            return new PlotSeries(m, byEpoch.Select(g => (double)g.Key).ToList(), byEpoch.Select(g => 100 * g.Average(e => e.ValidationTop1)).ToList());
        }).ToList();
        LinePlot.Save(accuracyPath, $"{preset}: validation top-1 per epoch ({mean})", "epoch", "top-1 %", curves);

        var ecePath = Path.Combine(folder, $"bench-{preset}-ece.png");
        BarChart.Save(ecePath, $"{preset}: test ECE, 15 bins ({(oneSeed ? "one seed" : "mean ± std over seeds")})", "ECE %", present.Select(m =>
        {
            var stat = MeanStd.Of(rows.Where(r => r.Method == m).Select(r => r.Ece));
            return (m, 100 * stat.Mean, double.IsNaN(stat.Std) ? 0 : 100 * stat.Std);
        }).ToList());

        var occlusionPath = Path.Combine(folder, $"bench-{preset}-occlusion.png");
        var x = BenchResults.OcclusionFractions.Select(f => 100 * f).ToList();
        LinePlot.Save(occlusionPath, $"{preset}: test top-1 under occlusion ({mean})", "patches masked %", "top-1 %",
            present.Select(m => new PlotSeries(m, x,
                BenchResults.OcclusionFractions.Select((_, i) => 100 * rows.Where(r => r.Method == m).Average(r => r.Occlusion[i])).ToList())).ToList());
        return new[] { accuracyPath, ecePath, occlusionPath };
    }

    /// <summary>
    /// The pilot table of a validation-only benchmark: per run, the best validation top-1 and its epoch, the lowest
    /// validation log-loss and its epoch, and the last epoch's training loss and validation numbers.
    /// </summary>
    public static string ValidationMarkdown(BenchDescription d, IReadOnlyList<string> methods, IReadOnlyList<BenchEpochRow> epochs)
    {
        var p = d.Preset;
        var s = new StringBuilder();
        s.AppendLine($"# MergeMix.ML benchmark: preset `{p.Name}`, validation only");
        s.AppendLine();
        s.AppendLine($"Command: `{d.CommandLine}`");
        s.AppendLine();
        s.AppendLine($"- Data: {d.Data.Source}; {d.Data.Train.Count} train / {d.Data.Validation.Count} validation images; the test split was not evaluated.");
        s.AppendLine($"- {d.Epochs} epochs (the preset's: {p.Epochs}), RandAugment {(p.RandAugment ? "on" : "off")}, bf16 Linear layers in training {(p.BFloat16Linear ? "on" : "off")}; MergeMix: {d.MergeMix}.");
        s.AppendLine("- The training loss is that of the augmented (and mixed) batches with label smoothing; for MergeMix with a base loss it is the sum of two cross-entropies.");
        s.AppendLine();
        s.AppendLine("| Method | Seed | Epochs | Best val top-1 % (epoch) | Lowest val log-loss (epoch) | Last val top-1 % | Last val log-loss | Last val ECE % | Last train loss | Train s/epoch |");
        s.AppendLine("|---|---|---|---|---|---|---|---|---|---|");
        foreach (var m in methods)
            foreach (var run in epochs.Where(e => e.Method == m).GroupBy(e => e.Seed).OrderBy(g => g.Key))
            {
                var r = run.OrderBy(e => e.Epoch).ToList();
                var bestTop1 = r.MaxBy(e => e.ValidationTop1)!;
                var bestLoss = r.MinBy(e => e.ValidationLogLoss)!;
                var last = r[^1];
                s.AppendLine(string.Create(CultureInfo.InvariantCulture,
                    $"| {m} | {run.Key} | {r.Count} | {100 * bestTop1.ValidationTop1:F2} ({bestTop1.Epoch}) | {bestLoss.ValidationLogLoss:F3} ({bestLoss.Epoch}) | {100 * last.ValidationTop1:F2} | {last.ValidationLogLoss:F3} | {100 * last.ValidationEce:F2} | {last.TrainLoss:F3} | {r.Average(e => e.Seconds):F1} |"));
            }
        return s.ToString();
    }

    /// <summary>Validation top-1 and validation log-loss per epoch (mean over seeds) of a validation-only benchmark.</summary>
    public static IReadOnlyList<string> ValidationPlots(string folder, string preset, IReadOnlyList<string> methods, IReadOnlyList<BenchEpochRow> epochs)
    {
        var present = methods.Where(m => epochs.Any(e => e.Method == m)).ToList();
        if (present.Count == 0) return Array.Empty<string>();
        PlotSeries Curve(string m, Func<BenchEpochRow, double> f)
        {
            var byEpoch = epochs.Where(e => e.Method == m).GroupBy(e => e.Epoch).OrderBy(g => g.Key).ToList();
            return new PlotSeries(m, byEpoch.Select(g => (double)g.Key).ToList(), byEpoch.Select(g => g.Average(f)).ToList());
        }
        var top1 = Path.Combine(folder, $"bench-{preset}-validation-top1.png");
        LinePlot.Save(top1, $"{preset}: validation top-1 per epoch", "epoch", "top-1 %", present.Select(m => Curve(m, e => 100 * e.ValidationTop1)).ToList());
        var loss = Path.Combine(folder, $"bench-{preset}-validation-loss.png");
        LinePlot.Save(loss, $"{preset}: validation log-loss per epoch", "epoch", "log-loss", present.Select(m => Curve(m, e => e.ValidationLogLoss)).ToList());
        return new[] { top1, loss };
    }

    private static string Num(double v) => v.ToString(CultureInfo.InvariantCulture);
}
