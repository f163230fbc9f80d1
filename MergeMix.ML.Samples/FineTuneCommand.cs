using System.Globalization;
using System.Text;
using MergeMix.ML.Classification;
using MergeMix.ML.Data;
using MergeMix.ML.Vision;

namespace MergeMix.ML.Samples;

/// <summary>
/// <c>finetune</c>: few-shot training on new classes, from scratch vs from a pretrained checkpoint file. The checkpoint is
/// the user's (<c>--weights</c>, timm or Hugging Face, safetensors or PyTorch) or, without one, a ViT this command
/// pretrains on the other half of the classes and writes in timm's safetensors layout, so the whole file route
/// (export → <see cref="PretrainedWeights"/> → trainer) runs either way. CIFAR-10 with <c>--data</c>: source classes
/// airplane…deer, target classes dog…truck; otherwise the embedded synthetic shapes (3 + 3 classes). Settings are fixed
/// up front, not tuned; validation is carved from train, the test split only reports.
/// </summary>
internal static class FineTuneCommand
{
    public static void Run(Options options)
    {
        string? data = options.Get("data");
        string outFolder = options.OutputFolder();
        int perClass = options.GetInt("per-class", 100);
        int epochs = options.GetInt("epochs", 30);
        int pretrainEpochs = options.GetInt("pretrain-epochs", 15);
        int threads = options.GetInt("threads", 1);
        int seed = options.GetInt("seed", 0);
        string? weights = options.Get("weights");
        int? heads = options.Get("heads") is null ? null : options.GetInt("heads", 0);

        var (train, test) = data is null
            ? (SyntheticShapes.Generate(3000, 1, new SyntheticShapesOptions { Width = 32, Height = 32 }).Images,
               SyntheticShapes.Generate(600, 2, new SyntheticShapesOptions { Width = 32, Height = 32 }).Images)
            : (Cifar10Reader.ReadTrain(data), Cifar10Reader.ReadTest(data));
        int half = train.ClassNames.Count / 2;
        var sourceClasses = Enumerable.Range(0, half).ToArray();
        var targetClasses = Enumerable.Range(half, train.ClassNames.Count - half).ToArray();

        var model = new VisionTransformerOptions { Width = 96, Depth = 4, Heads = 4, PatchSize = 4, MergeCount = 0, DropPathRate = 0.1 };
        float[] mean, std;
        if (weights is null)
        {
            weights = Path.Combine(outFolder, "source.safetensors");
            heads = model.Heads;
            (mean, std) = Pretrain(OnlyClasses(train, sourceClasses), model, pretrainEpochs, threads, seed, weights, outFolder);
        }
        else
        {
            if (heads is null) throw new ArgumentException("--heads is required with --weights: a checkpoint does not record its head count.");
            var norm = options.Get("norm", "imagenet");
            (mean, std) = norm switch
            {
                "imagenet" => (PretrainedWeights.ImageNetMean, PretrainedWeights.ImageNetStd),
                "half" => (PretrainedWeights.HalfMean, PretrainedWeights.HalfStd),
                _ => throw new ArgumentException($"--norm expects imagenet or half (the checkpoint's normalisation), got '{norm}'."),
            };
        }

        var target = OnlyClasses(train, targetClasses);
        var (pool, validation) = target.StratifiedSplit(0.1, seed);
        var few = Cifar10Reader.StratifiedSubset(pool, perClass, seed);
        var targetTest = OnlyClasses(test, targetClasses);
        Console.WriteLine($"Target classes {string.Join(", ", target.ClassNames)}: {few.Count} training images ({perClass} per class), " +
                          $"{validation.Count} validation (carved from train), {targetTest.Count} test.");

        var results = new List<(string Name, ClassificationMetrics Validation, ClassificationMetrics Test, double Seconds)>();
        foreach (var (name, initial, lr) in new (string, PretrainedWeights?, double)[]
                 {
                     ("from scratch", null, 1e-3),
                     ("from checkpoint", new PretrainedWeights { Path = weights, Heads = heads }, 2e-4),
                 })
        {
            var o = new VisionTransformerTrainerOptions
            {
                Model = model.Clone(),
                InitialWeights = initial,
                Epochs = epochs,
                BatchSize = 64,
                LearningRate = lr,
                MinLearningRate = lr / 100,
                WarmupEpochs = 2,
                HeadLearningRateMultiplier = initial is null ? 1 : 10,
                ChannelMean = mean,
                ChannelStd = std,
                Seed = seed,
                Threads = threads,
                CheckpointFolder = Path.Combine(outFolder, name.Replace(' ', '-')),
            };
            var watch = System.Diagnostics.Stopwatch.StartNew();
            var (trained, _) = ClassifierTraining.Train(few, null, null, o);
            using (trained)
            {
                var v = ClassifierTraining.Evaluate(trained, validation);
                var t = ClassifierTraining.Evaluate(trained, targetTest);
                results.Add((name, v, t, watch.Elapsed.TotalSeconds));
                Console.WriteLine($"  {name}: validation {v.Accuracy:P1}, test {t.Accuracy:P1} ({watch.Elapsed.TotalSeconds:F0} s)");
            }
        }

        var report = new StringBuilder();
        report.AppendLine(CultureInfo.InvariantCulture, $"Command: `{CommandLine.RerunThisProcess()}`");
        report.AppendLine();
        report.AppendLine(CultureInfo.InvariantCulture, $"{few.Count} training images of {target.ClassNames.Count} classes, {epochs} epochs; checkpoint {Path.GetFileName(weights)}.");
        report.AppendLine();
        report.AppendLine("| start | validation top-1 % | test top-1 % | test log-loss | train s |");
        report.AppendLine("|---|---|---|---|---|");
        foreach (var r in results)
            report.AppendLine(CultureInfo.InvariantCulture,
                $"| {r.Name} | {100 * r.Validation.Accuracy:F1} | {100 * r.Test.Accuracy:F1} | {r.Test.LogLoss:F3} | {r.Seconds:F0} |");
        File.WriteAllText(Path.Combine(outFolder, "finetune.md"), report.ToString());
        Console.WriteLine($"Wrote {Path.Combine(outFolder, "finetune.md")}");
    }

    /// <summary>Trains the source ViT (resumable per epoch) and writes it as timm safetensors; returns its normalisation.</summary>
    private static (float[] Mean, float[] Std) Pretrain(LabeledImageSet source, VisionTransformerOptions model, int epochs, int threads, int seed,
        string path, string outFolder)
    {
        string statsFile = path + ".norm.txt";
        if (File.Exists(path) && File.Exists(statsFile))
        {
            Console.WriteLine($"Source checkpoint {path} exists; reusing it.");
            var lines = File.ReadAllLines(statsFile);
            return (Parse(lines[0]), Parse(lines[1]));
        }
        Console.WriteLine($"Pretraining on {string.Join(", ", source.ClassNames)} ({source.Count} images, {epochs} epochs) ...");
        var o = new VisionTransformerTrainerOptions
        {
            Model = model.Clone(),
            Epochs = epochs,
            BatchSize = 128,
            LearningRate = 1e-3,
            MinLearningRate = 1e-5,
            Seed = seed,
            Threads = threads,
            CheckpointFolder = Path.Combine(outFolder, "pretrain"),
            Progress = new SyncProgress<EpochReport>(r => Console.WriteLine($"  epoch {r.Epoch}/{r.Epochs}: loss {r.TrainLoss:F3}, {r.Seconds:F0} s")),
        };
        var (trained, _) = ClassifierTraining.Train(source, null, null, o);
        using (trained)
        {
            VisionTransformerCheckpoint.SaveTimm(trained.Backbone, path);
            File.WriteAllLines(statsFile, new[] { Format(trained.ChannelMean), Format(trained.ChannelStd) });
            return (trained.ChannelMean.ToArray(), trained.ChannelStd.ToArray());
        }

        static string Format(IEnumerable<float> values) => string.Join(" ", values.Select(v => v.ToString("R", CultureInfo.InvariantCulture)));
        static float[] Parse(string line) => line.Split(' ').Select(v => float.Parse(v, CultureInfo.InvariantCulture)).ToArray();
    }

    /// <summary>The images of <paramref name="classes"/>, relabelled 0..n−1 in that order.</summary>
    private static LabeledImageSet OnlyClasses(LabeledImageSet set, int[] classes)
    {
        var indices = Enumerable.Range(0, set.Count).Where(i => classes.Contains(set.Labels[i])).ToArray();
        var subset = set.Select(indices);
        var labels = subset.Labels.Select(l => Array.IndexOf(classes, l)).ToArray();
        return new LabeledImageSet(subset.Pixels, labels, classes.Select(c => set.ClassNames[c]).ToArray(), set.Channels, set.Height, set.Width);
    }
}
