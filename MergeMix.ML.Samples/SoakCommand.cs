using System.Diagnostics;
using System.Globalization;
using MergeMix.ML.Classification;
using MergeMix.ML.Data;
using MergeMix.ML.Samples.Imaging;
using MergeMix.ML.Mixing;
using MergeMix.ML.Samples.Bench;
using Microsoft.ML;

namespace MergeMix.ML.Samples;

/// <summary>
/// Long-run memory check: trains the cifar10-small bench model (online mixing, synthetic 32×32 scenes) for
/// --steps optimizer steps (batch --batch, the preset's 128 by default) and records managed and native memory every
/// --every steps (one epoch holds exactly that many steps). Writes soak.csv and soak.png and prints the drift after
/// warm-up. --resume continues from the last epoch checkpoint in a new process (its rows get the next segment number;
/// memory restarts there). --report only redraws soak.png and the drift from the soak.csv in --out (give the run's
/// options so the title says what ran), e.g. while a run is still going.
/// </summary>
internal static class SoakCommand
{
    public static void Run(Options options)
    {
        int steps = options.GetInt("steps", 5000);
        int every = options.GetInt("every", 50);
        int threads = options.GetInt("threads", 1);
        string method = options.Get("mixer", "mergemix");
        bool resume = options.Get("resume") is not null;
        var preset = BenchPreset.Cifar10Small;
        int batch = options.GetInt("batch", preset.BatchSize);
        if (steps <= 0 || every <= 0 || steps % every != 0)
            throw new ArgumentException($"--steps ({steps}) must be a positive multiple of --every ({every}).");
        var output = options.OutputFolder();
        var csv = Path.Combine(output, "soak.csv");
        string setup = $"{preset.Name}, batch {batch}, {method}, {threads} thread{(threads == 1 ? "" : "s")}";
        if (options.Get("report") is not null)
        {
            if (!File.Exists(csv)) throw new ArgumentException($"--report redraws an existing soak.csv; there is none in {output}.");
            Report(csv, Path.Combine(output, "soak.png"), steps, setup);
            return;
        }
        var checkpoint = Path.Combine(output, "soak-checkpoint");
        if (!resume)
        {
            if (File.Exists(csv)) File.Delete(csv);
            if (Directory.Exists(checkpoint)) Directory.Delete(checkpoint, recursive: true);
        }
        int segment = File.Exists(csv) ? File.ReadLines(csv).Skip(1).Select(l => int.Parse(l.Split(',')[0], CultureInfo.InvariantCulture)).DefaultIfEmpty(0).Max() + 1 : 1;
        if (!File.Exists(csv))
            File.WriteAllText(csv, "segment,step,epoch_seconds,managed_mib,rss_mib,rss_peak_mib,gen0,gen2\n");

        Runtime.TorchNativeLoader.EnsureLoaded();
        TorchSharp.torch.set_num_threads(threads);
        int epochs = steps / every;
        var ml = new MLContext(0);
        // Exactly `every` full batches per epoch, so each epoch report is one sample `every` steps apart.
        var train = SyntheticShapes.Generate(every * batch, seed: 1, new SyntheticShapesOptions { Width = 32, Height = 32 }).Images.ToDataView(ml);
        var trainer = preset.TrainerOptions(epochs);
        trainer.BatchSize = batch;
        trainer.OnlineMixing = MixPolicies.Create(method);
        trainer.Seed = 0;
        trainer.Threads = threads;
        trainer.CheckpointFolder = checkpoint;
        var watch = Stopwatch.StartNew();
        Console.WriteLine($"Soak: {steps} steps ({epochs} epochs × {every}) of the {preset.Name} model, batch {batch}, online {method}, {threads} thread(s); segment {segment}.");
        Record(csv, segment, 0, 0);
        trainer.Progress = new SyncProgress<EpochReport>(report =>
        {
            var (managed, rss) = Record(csv, segment, report.Epoch * every, report.Seconds);
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"  step {report.Epoch * every}: managed {managed:F1} MiB, RSS {rss:F1} MiB, {report.Seconds:F1} s/epoch, loss {report.TrainLoss:F3} [{watch.Elapsed:hh\\:mm\\:ss}]"));
        });
        using (ml.MulticlassClassification.Trainers.VisionTransformer(trainer).Fit(train)) { }
        Report(csv, Path.Combine(output, "soak.png"), steps, setup);
    }

    // Live managed bytes after a full collection, and the process's resident set as the kernel counts it.
    private static (double Managed, double Rss) Record(string csv, int segment, int step, double seconds)
    {
        double managed = GC.GetTotalMemory(forceFullCollection: true) / 1048576.0;
        var (rss, peak) = ResidentMemory();
        File.AppendAllText(csv, string.Create(CultureInfo.InvariantCulture,
            $"{segment},{step},{seconds:F2},{managed:F2},{rss:F2},{peak:F2},{GC.CollectionCount(0)},{GC.CollectionCount(2)}\n"));
        return (managed, rss);
    }

    private static (double Rss, double Peak) ResidentMemory()
    {
        double Field(string name) => File.ReadLines("/proc/self/status").Where(l => l.StartsWith(name + ":", StringComparison.Ordinal))
            .Select(l => double.Parse(l.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], CultureInfo.InvariantCulture) / 1024).FirstOrDefault(double.NaN);
        return (Field("VmRSS"), Field("VmHWM"));
    }

    /// <summary>Plots every segment and prints the drift of the last one after its first fifth (warm-up).</summary>
    internal static void Report(string csv, string png, int plannedSteps, string setup)
    {
        var rows = File.ReadLines(csv).Skip(1).Select(l => l.Split(','))
            .Select(p => (Segment: int.Parse(p[0], CultureInfo.InvariantCulture), Step: double.Parse(p[1], CultureInfo.InvariantCulture),
                Managed: double.Parse(p[3], CultureInfo.InvariantCulture), Rss: double.Parse(p[4], CultureInfo.InvariantCulture))).ToList();
        var series = new List<PlotSeries>();
        foreach (var group in rows.GroupBy(r => r.Segment))
        {
            string suffix = rows.Select(r => r.Segment).Distinct().Count() > 1 ? $" (process {group.Key})" : "";
            series.Add(new PlotSeries("RSS (managed + native)" + suffix, group.Select(r => r.Step).ToList(), group.Select(r => r.Rss).ToList()));
            series.Add(new PlotSeries("managed (GC.GetTotalMemory)" + suffix, group.Select(r => r.Step).ToList(), group.Select(r => r.Managed).ToList()));
        }
        LinePlot.Save(png, $"Soak: {setup} ({rows.Max(r => r.Step):F0}/{plannedSteps} steps)", "optimizer step", "MiB", series);

        var last = rows.Where(r => r.Segment == rows.Max(x => x.Segment)).ToList();
        double start = last.First().Step + (last.Last().Step - last.First().Step) / 5;
        var settled = last.Where(r => r.Step >= start).ToList();
        if (settled.Count < 3) { Console.WriteLine($"Too few samples after warm-up for a drift ({settled.Count}). Plot: {png}"); return; }
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"After warm-up (steps {settled.First().Step:F0}–{settled.Last().Step:F0}): RSS {settled.Min(r => r.Rss):F1}–{settled.Max(r => r.Rss):F1} MiB, " +
            $"slope {1000 * Slope(settled.Select(r => (r.Step, r.Rss))):F2} MiB per 1000 steps; managed {settled.Min(r => r.Managed):F1}–{settled.Max(r => r.Managed):F1} MiB, " +
            $"slope {1000 * Slope(settled.Select(r => (r.Step, r.Managed))):F3} MiB per 1000 steps. CSV: {csv}, plot: {png}"));
    }

    private static double Slope(IEnumerable<(double X, double Y)> points)
    {
        var p = points.ToList();
        double mx = p.Average(q => q.X), my = p.Average(q => q.Y);
        return p.Sum(q => (q.X - mx) * (q.Y - my)) / p.Sum(q => (q.X - mx) * (q.X - mx));
    }
}
