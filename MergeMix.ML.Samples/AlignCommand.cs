using System.Diagnostics;
using System.Globalization;
using System.Text;
using MergeMix.ML.Alignment;
using MergeMix.ML.Classification;
using MergeMix.ML.Data;
using MergeMix.ML.Samples.Imaging;
using MergeMix.ML.Mixing;
using MergeMix.ML.Runtime;
using Microsoft.ML;
using Microsoft.ML.Data;
using static TorchSharp.torch;

namespace MergeMix.ML.Samples;

/// <summary>
/// The preference-alignment experiment on the embedded synthetic captioning task: SFT alone, then from the same SFT
/// checkpoint mixed SimPO with MergeMix, Mixup and CutMix pairs, pure DPO and RPO (DPO + NLL); evaluated on held-out images. Also measures
/// training/generation throughput, peak memory and the DPO/SimPO step-cost ratio.
/// </summary>
/// <remarks>
/// Options: --out DIR, --train N (training images), --test N (held-out images), --pretrain N and --pretrain-epochs N
/// (vision-tower pretraining), --sft-epochs N, --pref-epochs N, --seed N, --threads N (TorchSharp intra-op threads),
/// --bench (only the measurement), --no-bench (skip it), --bench-steps N.
/// </remarks>
internal static class AlignCommand
{
    internal const int ImageSide = 32;
    private const string DescribePrompt = "describe the image";

    internal sealed class AlignRow
    {
        [VectorType(3, ImageSide, ImageSide)] public float[] Features { get; set; } = Array.Empty<float>();
        public string Prompt { get; set; } = "";
        public string Answer { get; set; } = "";
    }

    /// <summary>One question (or the caption request) about one image.</summary>
    internal sealed record Example(float[] Image, string Prompt, string Answer, SyntheticScene Scene, string Kind);

    private sealed record Variant(string Name, string Key, PreferenceObjective Objective, IMixPolicy? Mixing, double Beta);

    private static readonly string[] Kinds = { "caption", "colour", "shape", "position", "count" };

    private sealed record VariantResult(string Name, string Key, double ExactMatch, IReadOnlyDictionary<string, double> ExactByKind,
        double HallucinationRate, double MixedPairAccuracy, double AnswerPairAccuracy, double TrainSeconds, double EvalSeconds,
        PreferenceTuningHistory History);

    public static void Run(Options options)
    {
        var output = options.OutputFolder();
        int threads = options.GetInt("threads", 1);
        MergeMix.ML.Runtime.TorchNativeLoader.EnsureLoaded();
        // Tiny models on a few cores: OpenMP spin-waiting across threads costs more than it saves (see README/bench).
        set_num_threads(threads);
        if (options.Get("bench") is null)
            RunExperiment(options, output, threads);
        if (options.Get("no-bench") is null)
            RunBenchmark(options, output, threads, experimentRan: options.Get("bench") is null);
    }

    private static void RunExperiment(Options options, string output, int threads)
    {
        int trainImages = options.GetInt("train", 800);
        int testImages = options.GetInt("test", 200);
        int pretrainImages = options.GetInt("pretrain", 6000);
        int pretrainEpochs = options.GetInt("pretrain-epochs", 10);
        int sftEpochs = options.GetInt("sft-epochs", 10);
        int preferenceEpochs = options.GetInt("pref-epochs", 1);
        int seed = options.GetInt("seed", 1);
        var total = Stopwatch.StartNew();

        var train = Examples(trainImages, seed: 100 + seed);
        var test = Examples(testImages, seed: 200 + seed);
        Console.WriteLine($"Synthetic captioning: {trainImages} train images → {train.Count} rows, {testImages} held-out images → {test.Count} rows " +
                          $"(caption + colour/shape/position/count questions), {threads} TorchSharp thread(s).");

        var ml = new MLContext(seed: 0);
        ml.Log += (_, e) =>
        {
            if (e.Source.StartsWith("PreferenceTuning", StringComparison.Ordinal) && e.Kind is Microsoft.ML.Runtime.ChannelMessageKind.Info or Microsoft.ML.Runtime.ChannelMessageKind.Warning)
                Console.WriteLine($"    [{e.Kind}] {e.RawMessage}");
        };
        var trainData = ml.Data.LoadFromEnumerable(train.Select(ToRow));
        var testData = ml.Data.LoadFromEnumerable(test.Select(ToRow));
        string checkpoints = Path.Combine(output, "align-checkpoints");
        if (Directory.Exists(checkpoints)) Directory.Delete(checkpoints, recursive: true);

        // LLaVA starts from a pretrained vision tower: here a ToMe ViT classifier trained on other synthetic images' shapes.
        var defaults = new PreferenceTuningEstimator.Options();
        var pretrainWatch = Stopwatch.StartNew();
        using var tower = PretrainVisionTower(ml, defaults.Encoder, pretrainImages, pretrainEpochs, seed, threads, out double towerAccuracy);
        double pretrainSeconds = pretrainWatch.Elapsed.TotalSeconds;
        Console.WriteLine($"  Vision tower: ViT classifier on {pretrainImages} other images × {pretrainEpochs} epochs, held-out shape accuracy " +
                          $"{towerAccuracy:P1}, {pretrainSeconds:F0} s.");

        var variants = new[]
        {
            new Variant("SFT", "sft", PreferenceObjective.Sft, null, 1.0),
            new Variant("SFT + 1 more CE-only epoch (control)", "sft-more", PreferenceObjective.Sft, null, 1.0),
            new Variant("SFT + mixed SimPO, MergeMix pairs", "mergemix", PreferenceObjective.MixedSimPo, new MergeMixPolicy(), 1.0),
            new Variant("SFT + mixed SimPO, Mixup pairs", "mixup", PreferenceObjective.MixedSimPo, new MixupPolicy(), 1.0),
            new Variant("SFT + mixed SimPO, CutMix pairs", "cutmix", PreferenceObjective.MixedSimPo, new CutMixPolicy(), 1.0),
            // Pure DPO has no SFT term (TRL's default); RPO is DPO + NLL on the chosen answers (rpo_alpha = 1).
            new Variant("SFT + DPO (pure), MergeMix pairs", "dpo", PreferenceObjective.Dpo, new MergeMixPolicy(), 0.1),
            new Variant("SFT + RPO (DPO + NLL), MergeMix pairs", "rpo", PreferenceObjective.Rpo, new MergeMixPolicy(), 0.1),
        };

        var results = new List<VariantResult>();
        PreferenceDataset? mixedPairs = null, answerPairs = null;
        try
        {
            foreach (var variant in variants)
            {
                Console.WriteLine($"  {variant.Name} ...");
                string folder = Path.Combine(checkpoints, variant.Key);
                Directory.CreateDirectory(folder);
                bool sftOnly = variant.Key == "sft";
                // Every other variant resumes from the SFT run's final checkpoint, so all start from the same SFT model.
                if (!sftOnly)
                    File.Copy(Path.Combine(checkpoints, "sft", "sft.checkpoint.zip"), Path.Combine(folder, "sft.checkpoint.zip"));
                var estimatorOptions = new PreferenceTuningEstimator.Options
                {
                    SftEpochs = sftEpochs,
                    PreferenceEpochs = sftOnly ? 0 : preferenceEpochs,
                    Mixing = variant.Mixing,
                    Seed = seed,
                    CheckpointFolder = folder,
                    // Sharing the SFT checkpoint is deliberate: its fingerprint differs from the variant's (Beta, ...) in
                    // options the SFT phase carries but does not use.
                    OnCheckpointMismatch = sftOnly ? CheckpointMismatch.Fail : CheckpointMismatch.Resume,
                    PretrainedVision = tower.Model.Backbone,
                };
                estimatorOptions.Trainer.Objective = variant.Objective;
                estimatorOptions.Trainer.Beta = variant.Beta;
                var watch = Stopwatch.StartNew();
                using var model = ml.Alignment().PreferenceTuning(estimatorOptions).Fit(trainData);
                double trainSeconds = sftOnly ? model.History.SftDuration.TotalSeconds : model.History.PreferenceDuration.TotalSeconds;

                // Held-out pairs are built once, from the SFT model, so every variant is scored on the same pairs.
                mixedPairs ??= HeldOutMixedPairs(test, model, seed);
                answerPairs ??= HeldOutAnswerPairs(test);
                var evalWatch = Stopwatch.StartNew();
                var result = Evaluate(variant, model, testData, test, mixedPairs, answerPairs, trainSeconds);
                results.Add(result with { EvalSeconds = evalWatch.Elapsed.TotalSeconds });
                Console.WriteLine($"    exact match {result.ExactMatch:P1} ({string.Join(", ", Kinds.Select(k => $"{k} {result.ExactByKind[k]:P0}"))}), " +
                                  $"hallucination {result.HallucinationRate:P1}, pref. acc. raw≻mixed {result.MixedPairAccuracy:P1}, " +
                                  $"correct≻corrupted {result.AnswerPairAccuracy:P1}, train {trainSeconds:F1} s, total {watch.Elapsed.TotalSeconds:F1} s");
            }
        }
        finally
        {
            mixedPairs?.Dispose();
            answerPairs?.Dispose();
        }

        string command = $"dotnet run -c Release --project MergeMix.ML.Samples -- align --train {trainImages} --test {testImages} --pretrain {pretrainImages} " +
                         $"--pretrain-epochs {pretrainEpochs} --sft-epochs {sftEpochs} --pref-epochs {preferenceEpochs} --seed {seed} --threads {threads}";
        WriteResults(output, results, command, train.Count, test.Count, total.Elapsed, towerAccuracy, pretrainSeconds);
        WriteCurves(output, results);
        Console.WriteLine();
        Console.WriteLine(Table(results));
        Console.WriteLine($"Wrote align-results.md, align-results.csv, align-loss.png, align-margins.png, align-sft-loss.png to {output} " +
                          $"({total.Elapsed.TotalSeconds:F0} s).");
    }

    internal static VisionTransformerClassifier PretrainVisionTower(MLContext ml, VisionTransformerEncoderOptions encoder, int images,
        int epochs, int seed, int threads, out double heldOutAccuracy)
    {
        var vision = encoder.Vision.Clone();
        vision.ClassCount = SyntheticShapes.ClassNames.Count;
        var trainer = ml.MulticlassClassification.Trainers.VisionTransformer(new VisionTransformerTrainerOptions
        {
            Model = vision,
            Epochs = epochs,
            BatchSize = 128,
            LearningRate = 2e-3,
            WarmupEpochs = 0.5,
            LabelSmoothing = 0,
            // Positions are part of the task, so no flips or shifted crops.
            RandomCropPadding = 0,
            HorizontalFlip = false,
            ChannelMean = encoder.ChannelMean,
            ChannelStd = encoder.ChannelStd,
            Seed = seed,
            Threads = threads,
        });
        var (pretrain, _) = SyntheticShapes.Generate(images, seed: 50 + seed);
        var classifier = trainer.Fit(pretrain.ToDataView(ml));
        var (check, _) = SyntheticShapes.Generate(500, seed: 60 + seed);
        heldOutAccuracy = ml.MulticlassClassification.Evaluate(classifier.Transform(check.ToDataView(ml))).MicroAccuracy;
        return classifier;
    }

    private static VariantResult Evaluate(Variant variant, PreferenceTuningTransformer model, IDataView testData, IReadOnlyList<Example> test,
        PreferenceDataset mixedPairs, PreferenceDataset answerPairs, double trainSeconds)
    {
        var responses = model.Transform(testData).GetColumn<string>(model.ResponseColumnName).ToArray();
        var exact = new bool[test.Count];
        int hallucinating = 0;
        for (int i = 0; i < test.Count; i++)
        {
            exact[i] = Normalize(responses[i]) == test[i].Answer;
            if (Hallucinates(responses[i], test[i].Scene)) hallucinating++;
        }
        var byKind = Kinds.ToDictionary(k => k, k =>
        {
            var rows = Enumerable.Range(0, test.Count).Where(i => test[i].Kind == k).ToArray();
            return rows.Length == 0 ? double.NaN : (double)rows.Count(i => exact[i]) / rows.Length;
        });
        return new VariantResult(variant.Name, variant.Key, (double)exact.Count(e => e) / test.Count, byKind, (double)hallucinating / test.Count,
            model.EvaluatePreferences(mixedPairs).Accuracy, model.EvaluatePreferences(answerPairs).Accuracy, trainSeconds, 0, model.History);
    }

    /// <summary>
    /// True when <paramref name="response"/> names a colour, shape or position that the scene does not have. Positions
    /// are matched longest first ("top left" before "top"); shapes also in the plural.
    /// </summary>
    internal static bool Hallucinates(string response, SyntheticScene scene)
    {
        var words = Normalize(response).Split(' ', StringSplitOptions.RemoveEmptyEntries);
        for (int i = 0; i < words.Length; i++)
        {
            string word = words[i];
            if (i + 1 < words.Length && SyntheticShapes.PositionNames.Contains(word + " " + words[i + 1]))
            {
                if (!scene.Positions.Contains(word + " " + words[i + 1])) return true;
                i++;
                continue;
            }
            if (SyntheticShapes.PositionNames.Contains(word) && !scene.Positions.Contains(word)) return true;
            if (SyntheticShapes.ColourNames.Contains(word) && word != scene.Colour) return true;
            string? shape = SyntheticShapes.ClassNames.FirstOrDefault(s => word == s || word == Plural(s));
            if (shape is not null && shape != scene.Shape) return true;
        }
        return false;
    }

    private static string Plural(string shape) => shape.EndsWith('s') ? shape + "es" : shape + "s";

    private static string Normalize(string text) => string.Join(' ', text.Trim().TrimEnd('.', '?').Split(' ', StringSplitOptions.RemoveEmptyEntries));

    // The same answer on the raw image (chosen) and on its MergeMix mix (rejected), with attention from the SFT model.
    internal static PreferenceDataset HeldOutMixedPairs(IReadOnlyList<Example> test, PreferenceTuningTransformer sftModel, int seed)
    {
        using var images = ImagesOf(test);
        var encoder = (VisionTransformerEncoder)sftModel.Model.Vision;
        return PreferenceDataset.FromMixing(images, test.Select(e => e.Prompt).ToArray(), test.Select(e => e.Answer).ToArray(),
            new MergeMixPolicy(), seed: 9_000 + seed, groupSize: 16, attention: encoder.AttentionSource());
    }

    // The correct answer (chosen) against the same answer with one attribute swapped (rejected), on the raw image.
    internal static PreferenceDataset HeldOutAnswerPairs(IReadOnlyList<Example> test)
    {
        using var images = ImagesOf(test);
        return PreferenceDataset.FromPairs(images, test.Select(e => e.Prompt).ToArray(), test.Select(e => e.Answer).ToArray(),
            test.Select(Corrupt).ToArray());
    }

    private static string Corrupt(Example e)
    {
        static string Next(IReadOnlyList<string> names, string current) => names[(names.ToList().IndexOf(current) + 1) % names.Count];
        return e.Kind switch
        {
            "caption" => e.Answer.Replace(e.Scene.Colour, Next(SyntheticShapes.ColourNames, e.Scene.Colour), StringComparison.Ordinal),
            "colour" => Next(SyntheticShapes.ColourNames, e.Answer),
            "shape" => Next(SyntheticShapes.ClassNames, e.Answer),
            "position" => Next(SyntheticShapes.PositionNames, e.Answer),
            _ => SyntheticShapes.CountWord(e.Scene.Count % 9 + 1),
        };
    }

    internal static Tensor ImagesOf(IReadOnlyList<Example> examples)
    {
        int size = 3 * ImageSide * ImageSide;
        var pixels = new float[examples.Count * size];
        for (int i = 0; i < examples.Count; i++) examples[i].Image.CopyTo(pixels, i * size);
        return tensor(pixels, new long[] { examples.Count, 3, ImageSide, ImageSide });
    }

    internal static List<Example> Examples(int imageCount, int seed, SyntheticShapesOptions? shapes = null)
    {
        var (images, scenes) = SyntheticShapes.Generate(imageCount, seed, shapes);
        var examples = new List<Example>();
        for (int i = 0; i < scenes.Count; i++)
        {
            var image = images.Image(i).ToArray();
            examples.Add(new Example(image, DescribePrompt, scenes[i].Caption, scenes[i], "caption"));
            foreach (var (question, answer) in scenes[i].Questions())
                examples.Add(new Example(image, question, answer, scenes[i], KindOf(question)));
        }
        return examples;
    }

    private static string KindOf(string question) =>
        question.StartsWith("what colour", StringComparison.Ordinal) ? "colour"
        : question.StartsWith("what shape", StringComparison.Ordinal) ? "shape"
        : question.StartsWith("where", StringComparison.Ordinal) ? "position"
        : "count";

    internal static AlignRow ToRow(Example e) => new() { Features = e.Image, Prompt = e.Prompt, Answer = e.Answer };

    private static string Table(IReadOnlyList<VariantResult> results)
    {
        var text = new StringBuilder();
        text.AppendLine("| Variant | Exact match (all) | Caption | Colour | Shape | Position | Count | Hallucination rate | Pref. acc. raw≻mixed | Pref. acc. correct≻corrupted | Train time (s) |");
        text.AppendLine("|---|---|---|---|---|---|---|---|---|---|---|");
        foreach (var r in results)
            text.AppendLine(string.Create(CultureInfo.InvariantCulture,
                $"| {r.Name} | {r.ExactMatch:P1} | {string.Join(" | ", Kinds.Select(k => r.ExactByKind[k].ToString("P1", CultureInfo.InvariantCulture)))} | {r.HallucinationRate:P1} | {r.MixedPairAccuracy:P1} | {r.AnswerPairAccuracy:P1} | {r.TrainSeconds:F1} |"));
        return text.ToString();
    }

    private static void WriteResults(string output, IReadOnlyList<VariantResult> results, string command, int trainRows, int testRows, TimeSpan elapsed,
        double towerAccuracy, double pretrainSeconds)
    {
        var csv = new StringBuilder("variant,exact_match," + string.Join(",", Kinds.Select(k => k + "_exact_match")) +
                                    ",hallucination_rate,pref_acc_raw_vs_mixed,pref_acc_correct_vs_corrupted,train_seconds,eval_seconds,preference_steps\n");
        foreach (var r in results)
            csv.AppendLine(string.Create(CultureInfo.InvariantCulture,
                $"{r.Key},{r.ExactMatch:F4},{string.Join(",", Kinds.Select(k => r.ExactByKind[k].ToString("F4", CultureInfo.InvariantCulture)))},{r.HallucinationRate:F4},{r.MixedPairAccuracy:F4},{r.AnswerPairAccuracy:F4},{r.TrainSeconds:F2},{r.EvalSeconds:F2},{r.History.Preference.Count}"));
        File.WriteAllText(Path.Combine(output, "align-results.csv"), csv.ToString());

        var sft = results[0].History;
        var md = new StringBuilder();
        md.AppendLine("# Preference alignment on the synthetic captioning task");
        md.AppendLine();
        md.AppendLine($"Command: `{command}` (total {elapsed.TotalSeconds:F0} s, {Environment.ProcessorCount} cores).");
        md.AppendLine();
        md.AppendLine(string.Create(CultureInfo.InvariantCulture,
            $"Vision tower: ToMe ViT classifier pretrained on other synthetic images (held-out shape accuracy {towerAccuracy:P1}, {pretrainSeconds:F0} s). {trainRows} training rows, {testRows} held-out rows (held-out images). SFT: {sft.Sft.Count} steps in {sft.SftDuration.TotalSeconds:F1} s; every other variant starts from that same SFT checkpoint and trains {results.Last().History.Preference.Count} more steps."));
        md.AppendLine();
        md.AppendLine(Table(results));
        md.AppendLine("- Exact match: the greedy response equals the ground-truth answer, overall and per row kind (caption, colour, shape, position, count), on held-out images.");
        md.AppendLine("- Hallucination rate: share of responses naming a colour, shape or position that is not in the image.");
        md.AppendLine("- Pref. acc. raw≻mixed: share of held-out (raw image, answer) vs (MergeMix-mixed image, answer) pairs where the model gives the " +
                      "raw image the higher average log-prob per token; the pairs are built once from the SFT model's attention.");
        md.AppendLine("- Pref. acc. correct≻corrupted: same on the raw image, correct answer vs the answer with one attribute swapped.");
        md.AppendLine("- Control: one more epoch of plain CE (SFT) at the preference learning rate, so the preference variants are compared at equal extra training.");
        md.AppendLine("- Train time: SFT phase for SFT, the extra phase (pair building included) for the others.");
        md.AppendLine("- Curves: align-loss.png, align-margins.png (preference phase), align-sft-loss.png.");
        File.WriteAllText(Path.Combine(output, "align-results.md"), md.ToString());
    }

    private static void WriteCurves(string output, IReadOnlyList<VariantResult> results)
    {
        const int window = 10;
        var preference = results.Where(r => r.History.Preference.Count > 0).ToArray();
        PlotSeries Series(string name, IReadOnlyList<PreferenceStepMetrics> steps, Func<PreferenceStepMetrics, double> value) =>
            new(name, steps.Select(s => (double)s.Step).ToArray(), MovingAverage(steps.Select(value).ToArray(), window));
        LinePlot.Save(Path.Combine(output, "align-loss.png"), $"Preference phase loss ({window}-step moving average)", "step", "loss",
            preference.Select(r => Series(r.Key, r.History.Preference, s => s.Loss)).ToArray());
        LinePlot.Save(Path.Combine(output, "align-margins.png"), $"rewards/margins ({window}-step moving average; DPO: β × log-ratio)", "step", "margin",
            preference.Where(r => r.History.Objective != PreferenceObjective.Sft).Select(r => Series(r.Key, r.History.Preference, s => s.RewardsMargins)).ToArray());
        LinePlot.Save(Path.Combine(output, "align-sft-loss.png"), $"SFT loss ({window}-step moving average)", "step", "loss",
            new[] { Series("sft", results[0].History.Sft, s => s.Loss) });
    }

    internal static double[] MovingAverage(IReadOnlyList<double> values, int window)
    {
        var result = new double[values.Count];
        double sum = 0;
        for (int i = 0; i < values.Count; i++)
        {
            sum += values[i];
            if (i >= window) sum -= values[i - window];
            result[i] = sum / Math.Min(i + 1, window);
        }
        return result;
    }

    private static void RunBenchmark(Options options, string output, int threads, bool experimentRan)
    {
        int steps = options.GetInt("bench-steps", 20);
        // The three step kinds take turns in short rounds, so a change of machine load hits them alike and the
        // DPO/SimPO ratio compares steps measured side by side.
        const int rounds = 4;
        var defaults = new PreferenceTuningEstimator.Options();
        var examples = Examples(256, seed: 300);
        Console.WriteLine();
        Console.WriteLine($"Benchmark at the default model size (ViT width {defaults.Encoder.Vision.Width}, depth {defaults.Encoder.Vision.Depth}, " +
                          $"feature layer {defaults.Encoder.FeatureLayer}; decoder width {defaults.Model.ModelDim}, {defaults.Model.Layers} layers; " +
                          $"batch {defaults.Trainer.BatchSize}), CPU, {threads} thread(s), {steps} timed steps each, in {rounds} alternating rounds:");

        var tokenizer = MultimodalTokenizer.CreateFromCorpus(examples.SelectMany(e => new[] { e.Prompt, e.Answer }));
        using var images = ImagesOf(examples);
        var prompts = examples.Select(e => e.Prompt).ToArray();
        var answers = examples.Select(e => e.Answer).ToArray();
        var encoderOptions = defaults.Encoder.Clone();
        using var model = new MultimodalLm(new VisionTransformerEncoder(encoderOptions), tokenizer, defaults.Model);
        int imageTokens = model.ImageTokenCount;
        double textTokensPerRow = answers.Select((a, i) => 1 + tokenizer.Encode(prompts[i]).Length + tokenizer.Encode(a).Length + 1).Average();

        using var sftData = PreferenceDataset.FromPairs(images, prompts, answers, answers);
        using var mixedData = PreferenceDataset.FromMixing(images, prompts, answers, new MixupPolicy(), seed: 1, groupSize: 16);
        PreferenceTrainer Trainer(PreferenceObjective objective)
        {
            var trainerOptions = defaults.Trainer.Clone();
            trainerOptions.Objective = objective;
            trainerOptions.Beta = objective == PreferenceObjective.Dpo ? 0.1 : 1.0;
            trainerOptions.Epochs = 1_000;
            return new PreferenceTrainer(model, trainerOptions, () => new VisionTransformerEncoder(encoderOptions));
        }
        using var sftTrainer = Trainer(PreferenceObjective.Sft);
        using var simpoTrainer = Trainer(PreferenceObjective.MixedSimPo);
        using var dpoTrainer = Trainer(PreferenceObjective.Dpo);
        int perRound = Math.Max(1, steps / rounds);
        double sft = 0, simpo = 0, dpo = 0;
        for (int round = 0; round < rounds; round++)
        {
            sft += TimeSteps(sftTrainer, sftData, perRound);
            simpo += TimeSteps(simpoTrainer, mixedData, perRound);
            dpo += TimeSteps(dpoTrainer, mixedData, perRound);
        }
        sft /= rounds * perRound;
        simpo /= rounds * perRound;
        dpo /= rounds * perRound;
        int batch = defaults.Trainer.BatchSize;
        double textPerStep = batch * textTokensPerRow;
        double allPerStep = batch * (textTokensPerRow + imageTokens);

        model.eval();
        var genWatch = Stopwatch.StartNew();
        int generated = 0;
        using (no_grad())
            for (int start = 0; start < examples.Count; start += 64)
            {
                int n = Math.Min(64, examples.Count - start);
                using var scope = NewDisposeScope();
                var ids = prompts.Skip(start).Take(n).Select(p => TextBatch.PromptIds(tokenizer, p)).ToArray();
                generated += model.Generate(images.narrow(0, start, n), ids, defaults.MaxNewTokens).Sum(r => r.Length + 1);
            }
        double generationBatched = generated / genWatch.Elapsed.TotalSeconds;
        genWatch.Restart();
        int single = 0;
        for (int i = 0; i < 32; i++)
        {
            using var scope = NewDisposeScope();
            single += model.Generate(images.narrow(0, i, 1), new[] { TextBatch.PromptIds(tokenizer, prompts[i]) }, defaults.MaxNewTokens)[0].Length + 1;
        }
        double generationSingle = single / genWatch.Elapsed.TotalSeconds;
        long peak = Process.GetCurrentProcess().PeakWorkingSet64;
        string memoryScope = experimentRan ? "this process also ran the experiment before the benchmark" : "benchmark only";

        var lines = new[]
        {
            ("SFT step", sft, $"{textPerStep / sft:F0} text tokens/s ({allPerStep / sft:F0} incl. {imageTokens} image tokens/row)"),
            ("mixed SimPO step (policy only, chosen + rejected)", simpo, $"{2 * textPerStep / simpo:F0} text tokens/s ({2 * allPerStep / simpo:F0} incl. image tokens)"),
            ("DPO step (policy + frozen reference)", dpo, $"{2 * textPerStep / dpo:F0} policy text tokens/s"),
        };
        var md = new StringBuilder();
        md.AppendLine("# Alignment benchmark (CPU)");
        md.AppendLine();
        md.AppendLine($"Command: `dotnet run -c Release --project MergeMix.ML.Samples -- align --bench --bench-steps {steps} --threads {threads}`; " +
                      $"{Environment.ProcessorCount} cores, batch {batch}, {textTokensPerRow:F1} text tokens/row, {imageTokens} image tokens/row.");
        md.AppendLine();
        md.AppendLine("| Measurement | Time per step (ms) | Throughput |");
        md.AppendLine("|---|---|---|");
        foreach (var (name, seconds, throughput) in lines)
            md.AppendLine(string.Create(CultureInfo.InvariantCulture, $"| {name} | {seconds * 1000:F1} | {throughput} |"));
        md.AppendLine(string.Create(CultureInfo.InvariantCulture, $"| Greedy generation, batch 64 | – | {generationBatched:F0} generated tokens/s |"));
        md.AppendLine(string.Create(CultureInfo.InvariantCulture, $"| Greedy generation, batch 1 | – | {generationSingle:F0} generated tokens/s |"));
        md.AppendLine();
        md.AppendLine(string.Create(CultureInfo.InvariantCulture, $"DPO / SimPO step-cost ratio (same run, same pairs): **{dpo / simpo:F2}**."));
        md.AppendLine();
        md.AppendLine(string.Create(CultureInfo.InvariantCulture,
            $"Peak memory: {peak / (1024.0 * 1024.0):F0} MiB — Process.PeakWorkingSet64 (VmHWM: peak resident set of the whole process, managed + native libtorch; {memoryScope})."));
        File.WriteAllText(Path.Combine(output, "align-bench.md"), md.ToString());
        Console.WriteLine(md.ToString());
    }

    // Seconds taken by `count` optimisation steps, not counting the first step of the call (warm-up).
    private static double TimeSteps(PreferenceTrainer trainer, PreferenceDataset data, int count)
    {
        var watch = new Stopwatch();
        int seen = 0;
        using var stop = new CancellationTokenSource();
        var progress = new SyncProgress<PreferenceStepMetrics>(_ =>
        {
            if (++seen == 1) watch.Start();
            if (seen == count + 1)
            {
                watch.Stop();
                stop.Cancel();
            }
        });
        try { trainer.Train(data, progress, stop.Token); }
        catch (OperationCanceledException) { }
        return watch.Elapsed.TotalSeconds;
    }
}
