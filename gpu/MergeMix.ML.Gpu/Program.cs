using System.Diagnostics;
using System.Globalization;
using System.Text;
using MergeMix.ML.Alignment;
using MergeMix.ML.Classification;
using MergeMix.ML.Data;
using MergeMix.ML.Mixing;
using MergeMix.ML.Runtime;
using MergeMix.ML.Vision;
using TorchSharp;
using static TorchSharp.torch;

// The CUDA check of issue #12, in two steps so that GPU time is spent only once the first one passes:
//   bind                  does TorchSharp's bridge (built for libtorch 2.10) bind to this machine's libtorch, and run
//                         a CUDA matmul? Prints the exact error when it does not.
//   check [--device D]    classifier training with online MergeMix, the mixing policy, DPO/SimPO steps and
//                         generation on D, each compared with the CPU on the same weights, and timed on both.
// Everything it prints also goes to --out (default: $OUT when set, else ./gpu-out) as a Markdown report.
var arguments = args.ToList();
string command = arguments.Count > 0 && !arguments[0].StartsWith("--", StringComparison.Ordinal) ? arguments[0] : "bind";
string Option(string name, string fallback)
{
    int i = arguments.IndexOf("--" + name);
    return i >= 0 && i + 1 < arguments.Count ? arguments[i + 1] : fallback;
}

string outputFolder = Option("out", Environment.GetEnvironmentVariable("OUT") is { Length: > 0 } o ? o : "gpu-out");
Directory.CreateDirectory(outputFolder);
var report = new Report(Path.Combine(outputFolder, $"gpu-{command}.md"));
try
{
    return command switch
    {
        "bind" => GpuChecks.Bind(report),
        "check" => GpuChecks.Check(report, Option("device", "cuda"), int.Parse(Option("steps", "6"), CultureInfo.InvariantCulture)),
        _ => throw new ArgumentException($"unknown command '{command}'; use bind or check"),
    };
}
catch (Exception ex)
{
    report.Line($"FAILED: {ex.GetType().Name}: {ex.Message}");
    report.Line(ex.ToString());
    return 1;
}
finally
{
    report.Flush();
}

/// <summary>Prints and records every line, so the report survives a crash half-way.</summary>
internal sealed class Report(string path)
{
    private readonly StringBuilder _text = new();

    public void Line(string text = "")
    {
        Console.WriteLine(text);
        _text.AppendLine(text);
        Flush();
    }

    public void Flush() => File.WriteAllText(path, _text.ToString());
}

internal static class GpuChecks
{
    private const double LogitTolerance = 1e-3;

    public static int Bind(Report report)
    {
        var native = TorchNativeLoader.EnsureLoaded();
        report.Line("# GPU bind check");
        report.Line($"- LD_LIBRARY_PATH: `{Environment.GetEnvironmentVariable("LD_LIBRARY_PATH")}`");
        report.Line($"- native loader: {native.Action} ({native.Message})");
        report.Line($"- TorchSharp built for libtorch {torch.__version__}");
        using (var cpuProbe = ones(2, 2))
            report.Line($"- CPU tensor op: ok (sum {cpuProbe.sum().item<float>()})");
        bool cuda = torch.cuda.is_available();
        report.Line($"- torch.cuda.is_available(): {cuda}; device count {(cuda ? torch.cuda.device_count() : 0)}");
        if (!cuda)
        {
            report.Line("RESULT: no CUDA device usable from TorchSharp in this process.");
            return 2;
        }
        var device = new Device(DeviceType.CUDA, 0);
        using var generator = new Generator(0);
        using var a = randn(new long[] { 2048, 2048 }, generator: generator);
        using var b = randn(new long[] { 2048, 2048 }, generator: generator);
        using var expected = a.matmul(b);
        using var ga = a.to(device);
        using var gb = b.to(device);
        using var warm = ga.matmul(gb);
        torch.cuda.synchronize();
        var watch = Stopwatch.StartNew();
        const int repeats = 20;
        for (int i = 0; i < repeats; i++) ga.matmul(gb).Dispose();
        torch.cuda.synchronize();
        double gflops = repeats * 2.0 * 2048 * 2048 * 2048 / watch.Elapsed.TotalSeconds / 1e9;
        using var back = warm.cpu();
        double relative = (back - expected).abs().max().item<float>() / expected.abs().max().item<float>();
        report.Line($"- CUDA 2048² fp32 matmul: {gflops:F0} GFLOP/s; max |CUDA − CPU| / max |CPU| = {relative:E2}");
        report.Line(relative < 1e-3 ? "RESULT: bound and computing on CUDA." : "RESULT: bound, but the CUDA matmul disagrees with the CPU.");
        return relative < 1e-3 ? 0 : 3;
    }

    public static int Check(Report report, string deviceName, int steps)
    {
        var device = TorchDevice.Resolve(deviceName, "--device");
        report.Line($"# GPU check on `{deviceName}` (TorchSharp for libtorch {torch.__version__})");
        report.Line();
        int failures = 0;
        failures += ForwardAndStepParity(report, device);
        failures += ClassifierTraining(report, device, deviceName, steps);
        failures += Mixing(report, device);
        failures += Preference(report, deviceName, steps);
        report.Line();
        report.Line(failures == 0 ? "RESULT: every check passed." : $"RESULT: {failures} check(s) failed.");
        return failures == 0 ? 0 : 4;
    }

    private static VisionTransformerOptions SmallVit() => new()
    {
        ImageSize = 32, PatchSize = 4, Width = 96, Depth = 4, Heads = 3, ClassCount = 10, DropPathRate = 0, MergeCount = 32,
    };

    /// <summary>Same weights on both devices: forward logits (merging off and on) and one AdamW step agree.</summary>
    private static int ForwardAndStepParity(Report report, Device device)
    {
        report.Line("## Forward and optimizer-step parity (same weights, CPU vs device)");
        int failures = 0;
        var options = SmallVit();
        float[] mean = { 125f, 123f, 114f }, std = { 63f, 62f, 66f };
        using var g1 = new Generator(7);
        using var g2 = new Generator(7);
        using var cpuModel = new ImageClassifierModel(options, mean, std, g1);
        using var devModel = new ImageClassifierModel(options, mean, std, g2);
        devModel.to(device);
        cpuModel.eval();
        devModel.eval();
        using var dataGenerator = new Generator(11);
        using var scale = 255f.ToScalar();
        using var images = rand(new long[] { 64, 3, 32, 32 }, generator: dataGenerator).mul_(scale);
        using var labels = randint(0, 10, new long[] { 64 }, generator: dataGenerator);
        foreach (bool merge in new[] { false, true })
        {
            cpuModel.Backbone.MergeEnabled = merge;
            devModel.Backbone.MergeEnabled = merge;
            using var scope = NewDisposeScope();
            using var _ = no_grad();
            var cpuLogits = cpuModel.call(images);
            var devLogits = devModel.call(images.to(device)).cpu();
            double diff = (cpuLogits - devLogits).abs().max().item<float>();
            bool ok = diff <= LogitTolerance;
            failures += ok ? 0 : 1;
            report.Line($"- forward logits, merging {(merge ? "on" : "off")}: max |Δ| = {diff:E2} ({(ok ? "ok" : "FAIL")}, tolerance {LogitTolerance:E0})");
        }

        cpuModel.train();
        devModel.train();
        cpuModel.Backbone.MergeEnabled = false;
        devModel.Backbone.MergeEnabled = false;
        using var cpuOptimizer = optim.AdamW(cpuModel.parameters(), lr: 1e-3);
        using var devOptimizer = optim.AdamW(devModel.parameters(), lr: 1e-3);
        using (var scope = NewDisposeScope())
        {
            cpuOptimizer.zero_grad();
            nn.functional.cross_entropy(cpuModel.call(images), labels).backward();
            cpuOptimizer.step();
            devOptimizer.zero_grad();
            nn.functional.cross_entropy(devModel.call(images.to(device)), labels.to(device)).backward();
            devOptimizer.step();
        }
        double worst = 0;
        string worstName = "";
        var devParameters = devModel.named_parameters().ToDictionary(p => p.name, p => p.parameter);
        foreach (var (name, parameter) in cpuModel.named_parameters())
        {
            using var scope = NewDisposeScope();
            double d = (parameter - devParameters[name].cpu()).abs().max().item<float>();
            if (d > worst) (worst, worstName) = (d, name);
        }
        bool stepOk = worst <= LogitTolerance;
        failures += stepOk ? 0 : 1;
        report.Line($"- one AdamW step (lr 1e-3): max |Δ weight| = {worst:E2} at `{worstName}` ({(stepOk ? "ok" : "FAIL")})");
        report.Line();
        return failures;
    }

    /// <summary>The public trainer with online MergeMix (ToMe in training) on the device and on the CPU: images/s of both.</summary>
    private static int ClassifierTraining(Report report, Device device, string deviceName, int epochs)
    {
        report.Line("## Classifier training with online MergeMix");
        var (train, _) = SyntheticShapes.Generate(1024, seed: 1);
        var (validation, _) = SyntheticShapes.Generate(256, seed: 2);
        var results = new List<(string Device, double ImagesPerSecond, double Accuracy)>();
        foreach (var name in new[] { deviceName, "cpu" })
        {
            var options = new VisionTransformerTrainerOptions
            {
                Model = SmallVit(),
                Epochs = epochs,
                BatchSize = 128,
                OnlineMixing = new MergeMixPolicy(),
                MergeDuringTraining = true,
                Device = name,
                Seed = 0,
            };
            var watch = Stopwatch.StartNew();
            var (model, history) = MergeMix.ML.Classification.ClassifierTraining.Train(train, null, validation, options);
            using (model)
            {
                // The first epoch includes CUDA context set-up and kernel autotuning: leave it out of the rate.
                double seconds = history.Skip(1).Sum(h => h.Seconds);
                int timedEpochs = Math.Max(1, history.Count - 1);
                double rate = seconds > 0 ? timedEpochs * train.Count / seconds : train.Count * history.Count / watch.Elapsed.TotalSeconds;
                double accuracy = history[^1].Validation?.Accuracy ?? double.NaN;
                results.Add((name, rate, accuracy));
                report.Line($"- {name}: {rate:F0} training images/s (epochs 2..{history.Count}), final train loss {history[^1].TrainLoss:F3}, validation accuracy {accuracy:P1}");
            }
        }
        bool finite = results.All(r => !double.IsNaN(r.Accuracy));
        report.Line($"- speed-up {deviceName} / cpu: {results[0].ImagesPerSecond / results[1].ImagesPerSecond:F1}×");
        report.Line();
        return finite ? 0 : 1;
    }

    /// <summary>MergeMix masks from the device model's attention: λ and soft labels consistent, mixed images on the device.</summary>
    private static int Mixing(Report report, Device device)
    {
        report.Line("## MergeMix mixing on the device");
        var options = SmallVit();
        using var g = new Generator(3);
        using var model = new VisionTransformer(options, g);
        model.to(device);
        model.eval();
        var attention = new VisionTransformerAttentionSource(model);
        using var dataGenerator = new Generator(5);
        using var scale = 255f.ToScalar();
        using var images = rand(new long[] { 256, 3, 32, 32 }, generator: dataGenerator).mul_(scale).to(device);
        using var labels = randint(0, 10, new long[] { 256 }, generator: dataGenerator).to(device);
        var policy = new MergeMixPolicy();
        using var mixGenerator = new Generator(9, device);
        using (var warm = policy.Mix(images, labels, 10, mixGenerator, attention)) { }
        if (device.type == DeviceType.CUDA) torch.cuda.synchronize();
        var watch = Stopwatch.StartNew();
        const int rounds = 10;
        MixResult? last = null;
        for (int i = 0; i < rounds; i++)
        {
            last?.Dispose();
            last = policy.Mix(images, labels, 10, mixGenerator, attention);
        }
        if (device.type == DeviceType.CUDA) torch.cuda.synchronize();
        double rate = rounds * 256 / watch.Elapsed.TotalSeconds;
        using var outputs = last!;
        using var scope = NewDisposeScope();
        using var one = 1f.ToScalar();
        double softSum = outputs.SoftLabels.sum(1).sub_(one).abs().max().item<float>();
        bool onDevice = outputs.Mixed.device.type == device.type;
        bool ok = softSum < 1e-5 && onDevice;
        report.Line($"- {rate:F0} images/s (batch 256); soft labels sum to 1 within {softSum:E1}; output on {outputs.Mixed.device} ({(ok ? "ok" : "FAIL")})");
        report.Line();
        return ok ? 0 : 1;
    }

    /// <summary>A few DPO and SimPO steps and greedy generation on the device and on the CPU, from the same weights.</summary>
    private static int Preference(Report report, string deviceName, int steps)
    {
        report.Line("## Preference tuning and generation");
        var (set, scenes) = SyntheticShapes.Generate(64, seed: 4);
        var prompts = new List<string>();
        var answers = new List<string>();
        var rows = new List<int>();
        for (int i = 0; i < scenes.Count; i++)
            foreach (var (question, answer) in scenes[i].Questions())
            {
                prompts.Add(question);
                answers.Add(answer);
                rows.Add(i);
            }
        var pixels = new float[rows.Count * set.ImageSize];
        for (int r = 0; r < rows.Count; r++) set.Image(rows[r]).CopyTo(pixels.AsSpan(r * set.ImageSize));
        using var images = tensor(pixels, new long[] { rows.Count, set.Channels, set.Height, set.Width });
        var tokenizer = MultimodalTokenizer.CreateFromCorpus(prompts.Concat(answers));
        using var pairs = PreferenceDataset.FromMixing(images, prompts, answers, new MixupPolicy(), seed: 1, groupSize: 16);

        int failures = 0;
        var generated = new Dictionary<string, int[][]>();
        var encoderOptions = new VisionTransformerEncoderOptions();
        foreach (var name in new[] { deviceName, "cpu" })
        {
            // Same InitSeed on both devices: identical starting weights.
            using var model = new MultimodalLm(new VisionTransformerEncoder(encoderOptions.Clone()), tokenizer, new MultimodalLmOptions());
            foreach (var objective in new[] { PreferenceObjective.Dpo, PreferenceObjective.SimPo })
            {
                var trainerOptions = new PreferenceTrainerOptions
                {
                    Objective = objective,
                    Beta = objective == PreferenceObjective.Dpo ? 0.1 : 2.0,
                    Epochs = 1_000,
                    BatchSize = 16,
                    Device = name,
                };
                using var trainer = new PreferenceTrainer(model, trainerOptions, () => new VisionTransformerEncoder(encoderOptions.Clone()));
                var seen = new List<PreferenceStepMetrics>();
                var watch = new Stopwatch();
                using var stop = new CancellationTokenSource();
                var progress = new Progress(m =>
                {
                    seen.Add(m);
                    if (seen.Count == 1) watch.Start();
                    if (seen.Count == steps + 1) { watch.Stop(); stop.Cancel(); }
                });
                try { trainer.Train(pairs, progress, stop.Token); }
                catch (OperationCanceledException) { }
                bool finite = seen.All(m => double.IsFinite(m.Loss));
                failures += finite ? 0 : 1;
                double perStep = watch.Elapsed.TotalSeconds / Math.Max(1, seen.Count - 1);
                report.Line($"- {name} {objective}: {seen.Count} steps, loss {seen[0].Loss:F4} → {seen[^1].Loss:F4}, {perStep * 1000:F1} ms/step{(finite ? "" : " (NON-FINITE LOSS: FAIL)")}");
            }
            model.eval();
            using var scope = NewDisposeScope();
            var promptIds = prompts.Take(64).Select(p => TextBatch.PromptIds(tokenizer, p)).ToArray();
            var watchGen = Stopwatch.StartNew();
            int[][] output;
            using (no_grad()) output = model.Generate(images.narrow(0, 0, 64).to(model.Device), promptIds, 12);
            double tokensPerSecond = output.Sum(o => o.Length + 1) / watchGen.Elapsed.TotalSeconds;
            generated[name] = output;
            report.Line($"- {name} greedy generation, batch 64: {tokensPerSecond:F0} tokens/s");
        }
        int same = generated[deviceName].Zip(generated["cpu"]).Count(p => p.First.SequenceEqual(p.Second));
        report.Line($"- greedy answers identical on {deviceName} and cpu after the same training: {same} of 64 " +
                    "(training on two devices drifts apart in rounding, so this is a report, not a check)");
        report.Line();
        return failures;
    }

    private sealed class Progress(Action<PreferenceStepMetrics> report) : IProgress<PreferenceStepMetrics>
    {
        public void Report(PreferenceStepMetrics value) => report(value);
    }
}
