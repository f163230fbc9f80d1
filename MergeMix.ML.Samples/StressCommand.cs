using System.Diagnostics;
using System.Globalization;
using System.Text;
using MergeMix.ML.Alignment;
using MergeMix.ML.Classification;
using MergeMix.ML.Data;
using MergeMix.ML.Mixing;
using MergeMix.ML.Transforms;
using MergeMix.ML.Vision;
using Microsoft.ML;
using Microsoft.ML.Data;

namespace MergeMix.ML.Samples;

/// <summary>
/// Provokes TorchSharp 0.107's Scalar finalizer race (README, Known issues): fits the trainer, the mixer and the
/// preference estimator while a background thread runs <c>GC.Collect(); GC.WaitForPendingFinalizers();</c> without
/// pause, so any Scalar the code does not keep alive is freed within microseconds. A crash can be a native abort, so
/// every fit runs in a child process; the parent counts fits, optimizer/mixing steps and crashes.
/// </summary>
internal static class StressCommand
{
    private static readonly string[] Workloads = { "trainer", "mixer", "preference" };

    public static void Run(Options options)
    {
        if (options.Get("child") is not null) { RunChild(options); return; }
        if (options.Get("overhead") is not null) { MeasureOptimizerOverhead(options.GetInt("reps", 200)); return; }
        var workloads = options.Get("workload", "all") is "all" ? Workloads : options.Get("workload", "all").Split(',');
        foreach (var w in workloads)
            if (!Workloads.Contains(w)) throw new ArgumentException($"--workload expects all or a list of {string.Join(", ", Workloads)}; got '{w}'.");
        int fits = options.GetInt("fits", 20);
        int fitsPerChild = options.GetInt("fits-per-child", 1);
        int minSteps = options.GetInt("min-steps", 0);
        int seed = options.GetInt("seed", 0);
        string threads = options.Get("threads", "1");
        var output = options.OutputFolder();
        var csv = Path.Combine(output, options.Get("csv", "stress.csv"));
        bool fresh = !File.Exists(csv);
        using var log = new StreamWriter(csv, append: true);
        if (fresh) log.WriteLine("time_utc,workload,fit,steps,seconds,outcome,detail");

        var totals = workloads.ToDictionary(w => w, _ => (Fits: 0, Steps: 0L, Crashes: 0));
        var watch = Stopwatch.StartNew();
        // Round-robin over the workloads until each has done --fits fits (and, with --min-steps, that many steps overall).
        int round = 0;
        while (workloads.Any(w => totals[w].Fits < fits) || (minSteps > 0 && totals.Values.Sum(t => t.Steps) < minSteps))
        {
            foreach (var workload in workloads)
            {
                int childSeed = seed + round * fitsPerChild;
                var result = RunChildProcess(workload, fitsPerChild, childSeed, threads);
                var t = totals[workload];
                foreach (var fit in result.Fits)
                {
                    t.Fits++; t.Steps += fit.Steps;
                    log.WriteLine(Row(workload, fit.Seed, fit.Steps, fit.Seconds, "ok", ""));
                }
                if (result.Crash is { } crash)
                {
                    t.Fits++; t.Crashes++;
                    log.WriteLine(Row(workload, childSeed + result.Fits.Count, 0, 0, $"crash (exit {result.ExitCode})", crash));
                    Console.WriteLine($"  {workload} fit {t.Fits}: CRASH (exit {result.ExitCode}): {crash}");
                }
                totals[workload] = t;
                log.Flush();
            }
            round++;
            Console.WriteLine($"[{watch.Elapsed:hh\\:mm\\:ss}] " + string.Join("; ", workloads.Select(w =>
                $"{w}: {totals[w].Crashes} crashes / {totals[w].Fits} fits, {totals[w].Steps} steps")));
        }
        Console.WriteLine($"Total: {totals.Values.Sum(t => t.Crashes)} crashes in {totals.Values.Sum(t => t.Fits)} fits, " +
            $"{totals.Values.Sum(t => t.Steps)} steps, {watch.Elapsed.TotalMinutes:F1} min. Per fit: {csv}");
    }

    // KeptAliveAdamW against TorchSharp's AdamW on the cifar10-small ViT, interleaved in one process, plus the
    // forward + backward of a batch for scale (the rest of the sweep swaps an implicit Scalar for an explicit one).
    private static void MeasureOptimizerOverhead(int reps)
    {
        Runtime.TorchNativeLoader.EnsureLoaded();
        TorchSharp.torch.set_num_threads(1);
        var preset = Bench.BenchPreset.Cifar10Small;
        VisionTransformer Model()
        {
            var o = preset.ModelOptions();
            o.ClassCount = 10;
            using var g = new TorchSharp.torch.Generator(0);
            return new VisionTransformer(o, g);
        }
        using var upstreamModel = Model();
        using var ourModel = Model();
        using var upstream = TorchSharp.torch.optim.AdamW(upstreamModel.parameters(), 1e-3, weight_decay: 0.05);
        using var ours = new Runtime.KeptAliveAdamW(ourModel.parameters(), 1e-3, 0.05);
        using var images = TorchSharp.torch.randn(new long[] { preset.BatchSize, 3, 32, 32 });
        double backward = Time(() =>
        {
            using var scope = TorchSharp.torch.NewDisposeScope();
            upstream.zero_grad();
            upstreamModel.call(images).sum().backward();
        }, 5);
        using (var scope = TorchSharp.torch.NewDisposeScope())
            ourModel.call(images).sum().backward();
        double upstreamMs = 0, ourMs = 0;
        for (int block = 0; block < reps / 10; block++)
        {
            upstreamMs += Time(() => upstream.step(), 10); // ScalarGuard:allow the comparison needs upstream's racy AdamW step
            ourMs += Time(() => ours.step(), 10);
        }
        upstreamMs /= reps / 10; ourMs /= reps / 10;
        int parameters = ourModel.parameters().Count();
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"AdamW step over {parameters} tensors, mean of {reps / 10 * 10} interleaved: TorchSharp {upstreamMs:F3} ms, KeptAliveAdamW {ourMs:F3} ms (ratio {ourMs / upstreamMs:F3}); " +
            $"forward + backward of a {preset.BatchSize}-image batch: {backward:F1} ms."));
    }

    private static double Time(Action action, int reps)
    {
        action();
        var watch = Stopwatch.StartNew();
        for (int i = 0; i < reps; i++) action();
        return watch.Elapsed.TotalMilliseconds / reps;
    }

    private static string Row(string workload, int fit, long steps, double seconds, string outcome, string detail) =>
        string.Join(",", DateTime.UtcNow.ToString("s", CultureInfo.InvariantCulture), workload, fit, steps,
            seconds.ToString("F2", CultureInfo.InvariantCulture), outcome, "\"" + detail.Replace("\"", "'") + "\"");

    private sealed record ChildFit(int Seed, long Steps, double Seconds);

    private sealed record ChildResult(List<ChildFit> Fits, int ExitCode, string? Crash);

    private static ChildResult RunChildProcess(string workload, int fits, int seed, string threads)
    {
        var start = new ProcessStartInfo(Environment.ProcessPath!)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        // Under `dotnet MergeMix.ML.Samples.dll` the process is the dotnet host, which needs the assembly first.
        if (Path.GetFileNameWithoutExtension(Environment.ProcessPath!) == "dotnet")
            start.ArgumentList.Add(typeof(StressCommand).Assembly.Location);
        foreach (var a in new[] { "stress", "--child", "--workload", workload, "--fits", fits.ToString(CultureInfo.InvariantCulture),
                     "--seed", seed.ToString(CultureInfo.InvariantCulture), "--threads", threads })
            start.ArgumentList.Add(a);
        using var process = Process.Start(start)!;
        var stderr = new StringBuilder();
        process.ErrorDataReceived += (_, e) => { if (e.Data is not null) lock (stderr) stderr.AppendLine(e.Data); };
        process.BeginErrorReadLine();
        var done = new List<ChildFit>();
        string? lastLine = null;
        while (process.StandardOutput.ReadLine() is { } line)
        {
            lastLine = line;
            var parts = line.Split(' ');
            if (parts.Length == 4 && parts[0] == "fit-ok")
                done.Add(new ChildFit(int.Parse(parts[1], CultureInfo.InvariantCulture), long.Parse(parts[2], CultureInfo.InvariantCulture),
                    double.Parse(parts[3], CultureInfo.InvariantCulture)));
        }
        process.WaitForExit();
        if (process.ExitCode == 0 && done.Count == fits) return new ChildResult(done, 0, null);
        string detail;
        lock (stderr) detail = FirstMeaningfulLine(stderr.ToString()) ?? lastLine ?? "no output";
        return new ChildResult(done, process.ExitCode, detail);
    }

    // The line that says what libtorch or the runtime reported (the stack trace below it is the same every time).
    private static string? FirstMeaningfulLine(string stderr)
    {
        var lines = stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        var hit = lines.FirstOrDefault(l => l.Contains("Exception", StringComparison.Ordinal) || l.Contains("Expected", StringComparison.Ordinal)
            || l.Contains("Scalar", StringComparison.Ordinal) || l.Contains("terminate", StringComparison.Ordinal) || l.Contains("Fatal", StringComparison.Ordinal))
            ?? lines.FirstOrDefault();
        return hit is null ? null : hit.Length > 300 ? hit[..300] : hit;
    }

    private static void RunChild(Options options)
    {
        Runtime.TorchNativeLoader.EnsureLoaded();
        TorchSharp.torch.set_num_threads(options.GetInt("threads", 1));
        string workload = options.Get("workload", "trainer");
        int fits = options.GetInt("fits", 1);
        int seed = options.GetInt("seed", 0);
        using var stop = new CancellationTokenSource();
        var collector = new Thread(() =>
        {
            while (!stop.IsCancellationRequested)
            {
                GC.Collect();
                GC.WaitForPendingFinalizers();
            }
        }) { IsBackground = true, Name = "stress-gc" };
        collector.Start();
        for (int i = 0; i < fits; i++)
        {
            var watch = Stopwatch.StartNew();
            long steps = workload switch
            {
                "trainer" => FitTrainer(seed + i),
                "mixer" => FitMixer(seed + i),
                "preference" => FitPreference(seed + i),
                _ => throw new ArgumentException($"unknown workload '{workload}'."),
            };
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"fit-ok {seed + i} {steps} {watch.Elapsed.TotalSeconds:F2}"));
        }
        stop.Cancel();
        collector.Join();
    }

    private const int Images = 512;
    private const int BatchSize = 64;
    private const int Epochs = 2;

    private static VisionTransformerOptions TinyVit(int classes) =>
        new() { ImageSize = 32, PatchSize = 4, Width = 32, Depth = 2, Heads = 2, ClassCount = classes, DropPathRate = 0.1, MergeCount = 16 };

    private static IDataView Scenes(MLContext ml, int seed) =>
        SyntheticShapes.Generate(Images, seed, new SyntheticShapesOptions { Width = 32, Height = 32 }).Images.ToDataView(ml);

    // The issue's recipe: online MergeMix, ToMe during training, a 32-wide 2-block ViT, 512 images, 2 epochs.
    private static long FitTrainer(int seed)
    {
        var ml = new MLContext(seed);
        var options = new VisionTransformerTrainerOptions
        {
            Epochs = Epochs,
            BatchSize = BatchSize,
            WarmupEpochs = 0.5,
            Seed = seed,
            Model = TinyVit(SyntheticShapes.ClassNames.Count),
            OnlineMixing = new MergeMixPolicy(),
            MergeDuringTraining = true,
        };
        using var model = ml.MulticlassClassification.Trainers.VisionTransformer(options).Fit(Scenes(ml, seed));
        return (long)model.History.Count * ((Images + BatchSize - 1) / BatchSize);
    }

    // Mixer: Fit trains the attention ViT, Transform mixes every batch (attention forward, ToMe, masks, soft labels).
    private static long FitMixer(int seed)
    {
        var ml = new MLContext(seed);
        var data = Scenes(ml, seed);
        var mixer = ml.Transforms.Mix(new MixingEstimator.Options
        {
            Policy = MixingPolicy.MergeMix,
            Seed = seed,
            BatchSize = BatchSize,
            AttentionTraining = new AttentionModelOptions { Epochs = Epochs, BatchSize = BatchSize, Model = TinyVit(SyntheticShapes.ClassNames.Count) },
        }).Fit(data);
        var mixed = mixer.Transform(data);
        long rows = mixed.GetColumn<float>("MixRatio").Count();
        if (rows != Images) throw new InvalidOperationException($"the mixer returned {rows} rows for {Images}.");
        long batches = (Images + BatchSize - 1) / BatchSize;
        return Epochs * batches + batches;
    }

    private sealed class PreferenceRow
    {
        [VectorType(3, 16, 16)] public float[] Features { get; set; } = Array.Empty<float>();
        public string Prompt { get; set; } = "";
        public string Answer { get; set; } = "";
    }

    // Preference tuning: SFT then mixed SimPO on MergeMix images, then generation over every row.
    private static long FitPreference(int seed)
    {
        var ml = new MLContext(seed);
        var (images, scenes) = SyntheticShapes.Generate(24, seed, new SyntheticShapesOptions { Width = 16, Height = 16, MaxObjects = 1 });
        var rows = new List<PreferenceRow>();
        for (int i = 0; i < scenes.Count; i++)
        {
            var question = scenes[i].Questions()[0];
            rows.Add(new PreferenceRow { Features = images.Image(i).ToArray(), Prompt = "describe the image", Answer = scenes[i].Caption });
            rows.Add(new PreferenceRow { Features = images.Image(i).ToArray(), Prompt = question.Question, Answer = question.Answer });
        }
        long steps = 0;
        var options = new PreferenceTuningEstimator.Options
        {
            Encoder = new VisionTransformerEncoderOptions
            {
                Vision = new VisionTransformerOptions { ImageSize = 16, PatchSize = 4, Width = 16, Depth = 2, Heads = 2, ClassCount = 1, DropPathRate = 0 },
                FeatureLayer = -1,
                InitSeed = seed,
            },
            Model = new MultimodalLmOptions { ModelDim = 32, Layers = 1, Heads = 2, MaxTextLength = 20, InitSeed = seed },
            Trainer = new PreferenceTrainerOptions { BatchSize = 8, LearningRate = 1e-3 },
            SftEpochs = 1,
            PreferenceEpochs = 2,
            MixGroupSize = 8,
            MaxNewTokens = 6,
            Seed = seed,
            Progress = new SyncProgress<PreferenceStepMetrics>(_ => steps++),
        };
        var data = ml.Data.LoadFromEnumerable(rows);
        using var model = ml.Alignment().PreferenceTuning(options).Fit(data);
        int responses = model.Transform(data).GetColumn<string>("Response").Count();
        if (responses != rows.Count) throw new InvalidOperationException($"generation returned {responses} rows for {rows.Count}.");
        return steps;
    }
}
