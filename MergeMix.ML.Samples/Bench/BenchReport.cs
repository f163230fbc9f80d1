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
/// <param name="MergeMixBaseLoss">Base loss of the MergeMix runs.</param>
/// <param name="Threads">Torch intra-op threads (0: torch's default).</param>
public sealed record BenchDescription(BenchPreset Preset, int Epochs, string CommandLine, BenchData Data, string MergeMixBaseLoss, int Threads);

/// <summary>The Markdown table and the PNG charts of a benchmark, always rebuilt from the CSV rows.</summary>
public static class BenchReport
{
    /// <summary>Methods in the order given, then any other method found in the rows.</summary>
    public static IReadOnlyList<string> MethodOrder(IReadOnlyList<string> requested, IReadOnlyList<BenchRow> rows) =>
        requested.Where(m => rows.Any(r => r.Method == m)).Concat(rows.Select(r => r.Method).Where(m => !requested.Contains(m))).Distinct().ToList();

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
        s.AppendLine($"- Model: ViT width {p.Width}, depth {p.Depth}, {p.Heads} heads, {p.PatchSize}×{p.PatchSize} patches, drop-path {p.DropPathRate.ToString(CultureInfo.InvariantCulture)}; trained without token merging; the ToMe columns merge {p.MergeCount} tokens at inference.");
        s.AppendLine($"- Training: {d.Epochs} epochs, batch {p.BatchSize}, AdamW lr {Num(p.LearningRate)} → {Num(p.MinLearningRate)} (cosine, {Num(p.WarmupEpochs)} warm-up epochs), weight decay {Num(p.WeightDecay)}, label smoothing {Num(p.LabelSmoothing)}, random crop padding {p.RandomCropPadding}, horizontal flip; mixing online with each policy's default α; MergeMix base loss: {d.MergeMixBaseLoss}.");
        s.AppendLine("- Selection: the weights of the epoch with the best validation top-1; the test split is used for nothing but the numbers below.");
        s.AppendLine($"- Occlusion: ⌊f·L⌋ random patches per image set to the channel mean (seed {BenchPreset.OcclusionSeed}, the same masks for every run), ToMe off.");
        s.AppendLine($"- Torch threads: {(d.Threads > 0 ? d.Threads.ToString(CultureInfo.InvariantCulture) : "torch default")}. Cost of the preset: {p.Cost}.");
        s.AppendLine();
        s.AppendLine("| Method | Runs | Top-1 % | Log-loss | ECE % | Top-1 ToMe % | ECE ToMe % | Train s/epoch | Images/s | Images/s ToMe | Best epoch | Top-1 last epoch % |");
        s.AppendLine("|---|---|---|---|---|---|---|---|---|---|---|---|");
        foreach (var m in methods)
        {
            var r = rows.Where(x => x.Method == m).ToList();
            if (r.Count == 0) continue;
            MeanStd Stat(Func<BenchRow, double> f) => MeanStd.Of(r.Select(f));
            s.AppendLine($"| {m} | {r.Count} | {Stat(x => x.Top1).Format("F2", 100)} | {Stat(x => x.LogLoss).Format("F3")} | {Stat(x => x.Ece).Format("F2", 100)} | "
                + $"{Stat(x => x.Top1Tome).Format("F2", 100)} | {Stat(x => x.EceTome).Format("F2", 100)} | {Stat(x => x.TrainSecondsPerEpoch).Format("F1")} | "
                + $"{Stat(x => x.ImagesPerSecond).Format("F0")} | {Stat(x => x.ImagesPerSecondTome).Format("F0")} | {Stat(x => x.BestEpoch).Format("F1")} | {Stat(x => x.Top1Final).Format("F2", 100)} |");
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
        }
        return s.ToString();
    }

    /// <summary>
    /// The issue's targets, each as one line with its verdict, for those whose methods are in the rows: every mixer
    /// beats none; MergeMix top-1 ≥ the best of Mixup, CutMix and TransMix; MergeMix ECE ≤ Mixup's.
    /// </summary>
    public static IReadOnlyList<string> Targets(IReadOnlyList<BenchRow> rows)
    {
        double? Mean(string method, Func<BenchRow, double> f) => rows.Any(r => r.Method == method) ? rows.Where(r => r.Method == method).Average(f) : null;
        static string Verdict(bool ok) => ok ? "**met**" : "**not met**";
        static string Pct(double v) => (100 * v).ToString("F2", CultureInfo.InvariantCulture);
        var lines = new List<string>();
        var mixers = rows.Select(r => r.Method).Distinct().Where(m => m != "none").ToList();
        if (Mean("none", r => r.Top1) is { } none && mixers.Count > 0)
        {
            var losers = mixers.Select(m => (Method: m, Gap: Mean(m, r => r.Top1)!.Value - none))
                .Where(l => l.Gap <= 0).OrderByDescending(l => l.Gap).ToList();
            lines.Add($"Every mixer beats none ({Pct(none)} %): {Verdict(losers.Count == 0)}"
                + (losers.Count > 0 ? $" (not above none, top-1 points against it: {string.Join(", ", losers.Select(l => $"{l.Method} {(100 * l.Gap).ToString("+0.00;-0.00", CultureInfo.InvariantCulture)}"))})" : ""));
        }
        if (Mean("mergemix", r => r.Top1) is { } mergeMix)
        {
            var rivals = new[] { "mixup", "cutmix", "transmix" }.Where(m => Mean(m, r => r.Top1) is not null).ToList();
            if (rivals.Count > 0)
            {
                var best = rivals.MaxBy(m => Mean(m, r => r.Top1)!.Value)!;
                double bestTop1 = Mean(best, r => r.Top1)!.Value;
                lines.Add($"MergeMix top-1 {Pct(mergeMix)} % ≥ best of {string.Join("/", rivals)} ({best} {Pct(bestTop1)} %): {Verdict(mergeMix >= bestTop1)}");
            }
        }
        if (Mean("mergemix", r => r.Ece) is { } mergeEce && Mean("mixup", r => r.Ece) is { } mixupEce)
            lines.Add($"MergeMix ECE {Pct(mergeEce)} % ≤ Mixup ECE {Pct(mixupEce)} %: {Verdict(mergeEce <= mixupEce)}");
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

    private static string Num(double v) => v.ToString(CultureInfo.InvariantCulture);
}
