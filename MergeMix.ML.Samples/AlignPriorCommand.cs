using System.Diagnostics;
using System.Globalization;
using System.Text;
using MergeMix.ML.Alignment;
using MergeMix.ML.Data;
using MergeMix.ML.Mixing;
using MergeMix.ML.Runtime;
using MergeMix.ML.Samples.Imaging;
using Microsoft.ML;
using static TorchSharp.torch;
using Example = MergeMix.ML.Samples.AlignCommand.Example;

namespace MergeMix.ML.Samples;

/// <summary>
/// The alignment experiment that can separate the methods (issue #11 §1): scenes whose attributes correlate with the
/// shape (a prior to resist), SFT run to a plateau of the held-out validation CE, then every variant given the same
/// extra steps from that checkpoint, over several seeds, scored on an in-distribution and a counter-prior split.
/// </summary>
/// <remarks>
/// Options: --out DIR, --seeds N (seeds 1..N), --train N / --val N / --test N (images; the test size is per split),
/// --prior P (probability of each typical attribute in train/val/in-distribution test), --pretrain N,
/// --pretrain-epochs N, --max-sft-epochs N, --patience N (epochs without a validation-CE gain of --min-delta),
/// --extra-epochs N, --threads N, --resume (keep finished seeds/variants and checkpoints), --first-seed N (start at seed N), --variants a,b (only these).
/// </remarks>
internal static class AlignPriorCommand
{
    private sealed record Variant(string Key, string Name, string Family, PreferenceObjective Objective, Func<IMixPolicy>? Mixing, double Beta);

    // Family = which quantity its margin is: CE has none; SimPO-family margins are β·Δ(average log-prob), DPO-family
    // margins are β·Σ(log-ratio to the reference), so the two are plotted apart.
    private static readonly Variant[] Variants =
    {
        new("control", "CE control (more SFT steps)", "ce", PreferenceObjective.Sft, null, 1.0),
        new("simpo", "SimPO, MergeMix pairs", "simpo", PreferenceObjective.SimPo, () => new MergeMixPolicy(), 1.0),
        new("mergemix", "mixed SimPO, MergeMix pairs", "simpo", PreferenceObjective.MixedSimPo, () => new MergeMixPolicy(), 1.0),
        new("mixup", "mixed SimPO, Mixup pairs", "simpo", PreferenceObjective.MixedSimPo, () => new MixupPolicy(), 1.0),
        new("cutmix", "mixed SimPO, CutMix pairs", "simpo", PreferenceObjective.MixedSimPo, () => new CutMixPolicy(), 1.0),
        new("resizemix", "mixed SimPO, ResizeMix pairs", "simpo", PreferenceObjective.MixedSimPo, () => new ResizeMixPolicy(), 1.0),
        new("dpo", "DPO (pure, SFT weight 0), MergeMix pairs", "dpo", PreferenceObjective.Dpo, () => new MergeMixPolicy(), 0.1),
        new("rpo", "RPO (DPO + NLL), MergeMix pairs", "dpo", PreferenceObjective.Rpo, () => new MergeMixPolicy(), 0.1),
    };

    private static readonly string[] Splits = { "in-distribution", "counter-prior" };

    private sealed record Settings(int Seeds, int Train, int Val, int Test, float Prior, int Pretrain, int PretrainEpochs, int MaxSftEpochs,
        int Patience, double MinDelta, int ExtraEpochs, int Threads)
    {
        public string Command(string output) => string.Create(CultureInfo.InvariantCulture,
            $"dotnet run -c Release --project MergeMix.ML.Samples -- align-prior --out {output} --seeds {Seeds} --train {Train} --val {Val} --test {Test} " +
            $"--prior {Prior} --pretrain {Pretrain} --pretrain-epochs {PretrainEpochs} --max-sft-epochs {MaxSftEpochs} --patience {Patience} " +
            $"--min-delta {MinDelta} --extra-epochs {ExtraEpochs} --threads {Threads} [--resume]");
    }

    public static void Run(Options options)
    {
        var output = options.OutputFolder();
        var s = new Settings(options.GetInt("seeds", 3), options.GetInt("train", 600), options.GetInt("val", 100), options.GetInt("test", 250),
            (float)options.GetDouble("prior", 0.9), options.GetInt("pretrain", 3000), options.GetInt("pretrain-epochs", 6),
            options.GetInt("max-sft-epochs", 30), options.GetInt("patience", 2), options.GetDouble("min-delta", 0.002),
            options.GetInt("extra-epochs", 2), options.GetInt("threads", 1));
        bool resume = options.Get("resume") is not null;
        TorchNativeLoader.EnsureLoaded();
        set_num_threads(s.Threads);
        Directory.CreateDirectory(output);
        string resultsPath = Path.Combine(output, "align-prior-results.csv");
        if (!resume)
        {
            foreach (var file in Directory.GetFiles(output, "align-prior-*")) File.Delete(file);
            string old = Path.Combine(output, "checkpoints");
            if (Directory.Exists(old)) Directory.Delete(old, recursive: true);
        }
        // --first-seed lets a second process share the output folder and take the later seeds (results are appended line by line).
        // --variants a,b splits one seed's variants between processes sharing the folder (each variant has its own checkpoints).
        var only = options.Get("variants")?.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).ToHashSet(StringComparer.Ordinal);
        foreach (var unknown in only?.Where(k => Variants.All(v => v.Key != k)) ?? Enumerable.Empty<string>())
            throw new ArgumentException($"--variants: unknown variant '{unknown}'; expected some of {string.Join(", ", Variants.Select(v => v.Key))}.");
        for (int seed = options.GetInt("first-seed", 1); seed <= s.Seeds; seed++)
        {
            RunSeed(s, seed, output, resultsPath, only);
            Report(s, output, resultsPath);
        }
    }

    private static void RunSeed(Settings s, int seed, string output, string resultsPath, IReadOnlySet<string>? only)
    {
        var done = ReadResults(resultsPath).Where(r => r.Seed == seed).Select(r => r.Variant).ToHashSet();
        if (only is not null) done.UnionWith(Variants.Select(v => v.Key).Where(k => !only.Contains(k)));
        if (Variants.All(v => done.Contains(v.Key)) && done.Contains("sft")) { Console.WriteLine($"Seed {seed}: done, kept."); return; }
        var total = Stopwatch.StartNew();
        var prior = new SyntheticShapesOptions { AttributePrior = s.Prior };
        var counter = new SyntheticShapesOptions { AttributePrior = 0 };
        // Validation rows are fresh draws from the training distribution (not test): they choose the SFT stopping epoch.
        var train = AlignCommand.Examples(s.Train, 1_000 + seed, prior);
        var val = AlignCommand.Examples(s.Val, 2_000 + seed, prior);
        var tests = new[] { AlignCommand.Examples(s.Test, 3_000 + seed, prior), AlignCommand.Examples(s.Test, 4_000 + seed, counter) };
        Console.WriteLine($"Seed {seed}: {train.Count} train rows, {val.Count} validation rows, {tests[0].Count} in-distribution and " +
                          $"{tests[1].Count} counter-prior test rows.");

        var ml = new MLContext(seed: 0);
        ml.Log += (_, e) =>
        {
            if (e.Source.StartsWith("PreferenceTuning", StringComparison.Ordinal) && e.Kind == Microsoft.ML.Runtime.ChannelMessageKind.Warning)
                Console.WriteLine($"    [warning] {e.RawMessage}");
        };
        var trainData = ml.Data.LoadFromEnumerable(train.Select(AlignCommand.ToRow));
        var valData = ml.Data.LoadFromEnumerable(val.Select(AlignCommand.ToRow));
        string seedFolder = Path.Combine(output, "checkpoints", $"seed{seed}");
        string sftFolder = Path.Combine(seedFolder, "sft");
        Directory.CreateDirectory(sftFolder);

        int stopEpoch = ConvergeSft(s, seed, ml, trainData, valData, sftFolder, output);
        using var sftModel = FitFrom(ml, trainData, valData, sftFolder, stopEpoch, 0, null, seed);
        using var mixedPairs = AlignCommand.HeldOutMixedPairs(tests[0], sftModel, seed);
        var answerPairs = tests.Select(AlignCommand.HeldOutAnswerPairs).ToArray();
        try
        {
            if (!done.Contains("sft"))
                AppendResult(resultsPath, Evaluate(seed, "sft", sftModel, tests, mixedPairs, answerPairs, 0, stopEpoch));
            foreach (var variant in Variants.Where(v => !done.Contains(v.Key)))
            {
                string folder = Path.Combine(seedFolder, variant.Key);
                Directory.CreateDirectory(folder);
                string shared = Path.Combine(folder, "sft.checkpoint.zip");
                if (!File.Exists(shared)) File.Copy(Path.Combine(sftFolder, "sft.checkpoint.zip"), shared);
                var watch = Stopwatch.StartNew();
                using var model = FitFrom(ml, trainData, valData, folder, stopEpoch, s.ExtraEpochs, variant, seed);
                var result = Evaluate(seed, variant.Key, model, tests, mixedPairs, answerPairs, watch.Elapsed.TotalSeconds, stopEpoch);
                AppendResult(resultsPath, result);
                WriteHistory(output, seed, variant.Key, model.History);
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"  seed {seed} {variant.Key}: EM {result.Values["em_in-distribution"]:P1} / {result.Values["em_counter-prior"]:P1}, " +
                    $"hallucination {result.Values["halluc_in-distribution"]:P1} / {result.Values["halluc_counter-prior"]:P1} (in-dist. / counter-prior), {watch.Elapsed.TotalSeconds:F0} s"));
            }
        }
        finally
        {
            foreach (var pairs in answerPairs) pairs.Dispose();
        }
        Console.WriteLine($"Seed {seed}: {total.Elapsed.TotalSeconds:F0} s.");
    }

    // SFT with a validation plateau stop: the epoch count is decided by the validation CE, saved, and reused on resume.
    private static int ConvergeSft(Settings s, int seed, MLContext ml, IDataView trainData, IDataView valData, string sftFolder, string output)
    {
        string stopFile = Path.Combine(sftFolder, "stop-epoch.txt");
        if (File.Exists(stopFile)) return int.Parse(File.ReadAllText(stopFile).Trim(), CultureInfo.InvariantCulture);
        string curvePath = Path.Combine(output, $"align-prior-sft-seed{seed}.csv");
        var validation = File.Exists(curvePath)
            ? File.ReadAllLines(curvePath).Skip(1).Select(l => l.Split(',')).ToDictionary(f => int.Parse(f[0], CultureInfo.InvariantCulture), f => double.Parse(f[1], CultureInfo.InvariantCulture))
            : new Dictionary<int, double>();
        if (!File.Exists(curvePath)) File.WriteAllText(curvePath, "epoch,validation_ce,train_loss\n");
        using var vision = PretrainTower(s, seed, ml);
        using var cancel = new CancellationTokenSource();
        var trainLosses = new List<double>();
        int stopEpoch = s.MaxSftEpochs;
        var o = Estimator(trainData, valData, sftFolder, s.MaxSftEpochs, 0, null, seed);
        o.PretrainedVision = vision.Model.Backbone;
        o.CancellationToken = cancel.Token;
        o.Progress = new SyncProgress<PreferenceStepMetrics>(m =>
        {
            if (!m.IsEvaluation) { trainLosses.Add(m.Loss); return; }
            int epoch = m.Epoch + 1;
            validation[epoch] = m.SftLoss;
            File.AppendAllText(curvePath, string.Create(CultureInfo.InvariantCulture, $"{epoch},{m.SftLoss:F5},{(trainLosses.Count == 0 ? double.NaN : trainLosses.Average()):F5}\n"));
            trainLosses.Clear();
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"  seed {seed} SFT epoch {epoch}: validation CE {m.SftLoss:F4}"));
            if (AlignMetrics.Plateaued(validation, epoch, s.Patience, s.MinDelta)) { stopEpoch = epoch; cancel.Cancel(); }
        });
        try
        {
            ml.Alignment().PreferenceTuning(o).Fit(trainData).Dispose();
        }
        catch (OperationCanceledException) when (cancel.IsCancellationRequested)
        {
        }
        File.WriteAllText(stopFile, stopEpoch.ToString(CultureInfo.InvariantCulture));
        Console.WriteLine($"  seed {seed} SFT stopped after {stopEpoch} epochs (validation CE {validation[stopEpoch]:F4}).");
        return stopEpoch;
    }

    private static MergeMix.ML.Classification.VisionTransformerClassifier PretrainTower(Settings s, int seed, MLContext ml)
    {
        var watch = Stopwatch.StartNew();
        var classifier = AlignCommand.PretrainVisionTower(ml, new PreferenceTuningEstimator.Options().Encoder, s.Pretrain, s.PretrainEpochs, seed, s.Threads, out double accuracy);
        Console.WriteLine($"  seed {seed} vision tower: {s.Pretrain} images × {s.PretrainEpochs} epochs, shape accuracy {accuracy:P1}, {watch.Elapsed.TotalSeconds:F0} s");
        return classifier;
    }

    private static PreferenceTuningEstimator.Options Estimator(IDataView trainData, IDataView valData, string folder, int sftEpochs, int extraEpochs,
        Variant? variant, int seed)
    {
        var o = new PreferenceTuningEstimator.Options
        {
            SftEpochs = sftEpochs,
            PreferenceEpochs = extraEpochs,
            Mixing = variant?.Mixing?.Invoke(),
            Seed = seed,
            CheckpointFolder = folder,
            ValidationSet = valData,
            // Every variant continues the seed's SFT checkpoint on purpose: its fingerprint holds the SFT run's epoch
            // budget and objective, which differ from the variant's.
            OnCheckpointMismatch = CheckpointMismatch.Resume,
        };
        o.Trainer.Objective = variant?.Objective ?? PreferenceObjective.Sft;
        o.Trainer.Beta = variant?.Beta ?? 1.0;
        return o;
    }

    private static PreferenceTuningTransformer FitFrom(MLContext ml, IDataView trainData, IDataView valData, string folder, int sftEpochs,
        int extraEpochs, Variant? variant, int seed) =>
        ml.Alignment().PreferenceTuning(Estimator(trainData, valData, folder, sftEpochs, extraEpochs, variant, seed)).Fit(trainData);

    private sealed record Result(int Seed, string Variant, IReadOnlyDictionary<string, double> Values);

    private static Result Evaluate(int seed, string key, PreferenceTuningTransformer model, IReadOnlyList<List<Example>> tests,
        PreferenceDataset mixedPairs, IReadOnlyList<PreferenceDataset> answerPairs, double trainSeconds, int sftEpochs)
    {
        var values = new Dictionary<string, double>(StringComparer.Ordinal);
        for (int split = 0; split < Splits.Length; split++)
        {
            string name = Splits[split];
            var scores = AlignMetrics.Score(Generate(model, tests[split]));
            values[$"em_{name}"] = scores.ExactMatch;
            foreach (var kind in AlignMetrics.Kinds) values[$"em_{kind}_{name}"] = scores.ExactMatchByKind[kind];
            values[$"halluc_{name}"] = scores.HallucinationRate;
            foreach (var attribute in AlignMetrics.Attributes) values[$"halluc_{attribute}_{name}"] = scores.HallucinationByAttribute[attribute];
            values[$"empty_or_truncated_{name}"] = scores.EmptyOrTruncatedRate;
            values[$"correct_vs_corrupted_{name}"] = model.EvaluatePreferences(answerPairs[split]).Accuracy;
        }
        values["raw_vs_mixed_in-distribution"] = model.EvaluatePreferences(mixedPairs).Accuracy;
        values["train_seconds"] = trainSeconds;
        values["sft_epochs"] = sftEpochs;
        values["extra_steps"] = model.History.Preference.Count;
        return new Result(seed, key, values);
    }

    // Greedy answers with whether each ran out of budget: Generate stops a row at eos, else after
    // min(MaxNewTokens, MaxTextLength − longest prompt of the batch) tokens.
    private static List<ScoredAnswer> Generate(PreferenceTuningTransformer model, IReadOnlyList<Example> examples)
    {
        const int batch = 64;
        var answers = new List<ScoredAnswer>(examples.Count);
        var lm = model.Model;
        for (int start = 0; start < examples.Count; start += batch)
        {
            var rows = examples.Skip(start).Take(batch).ToArray();
            using var images = AlignCommand.ImagesOf(rows);
            var prompts = rows.Select(e => TextBatch.PromptIds(lm.Tokenizer, e.Prompt)).ToArray();
            int budget = Math.Min(model.MaxNewTokens, lm.Options.MaxTextLength - prompts.Max(p => p.Length));
            var generated = lm.Generate(images, prompts, model.MaxNewTokens);
            for (int i = 0; i < rows.Length; i++)
                answers.Add(new ScoredAnswer(lm.Tokenizer.Decode(generated[i]), generated[i].Length >= budget, rows[i].Answer, rows[i].Kind, rows[i].Scene));
        }
        return answers;
    }

    private static void AppendResult(string path, Result result)
    {
        var keys = result.Values.Keys.Order(StringComparer.Ordinal).ToArray();
        if (!File.Exists(path)) File.WriteAllText(path, "seed,variant," + string.Join(",", keys) + "\n");
        var header = File.ReadLines(path).First().Split(',').Skip(2).ToArray();
        if (!header.SequenceEqual(keys)) throw new InvalidDataException($"'{path}' has other columns than this run writes; delete it or run without --resume.");
        File.AppendAllText(path, string.Create(CultureInfo.InvariantCulture,
            $"{result.Seed},{result.Variant},{string.Join(",", keys.Select(k => result.Values[k].ToString("R", CultureInfo.InvariantCulture)))}\n"));
    }

    private static List<Result> ReadResults(string path)
    {
        if (!File.Exists(path)) return new List<Result>();
        var lines = File.ReadAllLines(path);
        var header = lines[0].Split(',');
        return lines.Skip(1).Where(l => l.Length > 0).Select(l =>
        {
            var f = l.Split(',');
            var values = Enumerable.Range(2, header.Length - 2).ToDictionary(i => header[i], i => double.Parse(f[i], CultureInfo.InvariantCulture));
            return new Result(int.Parse(f[0], CultureInfo.InvariantCulture), f[1], values);
        }).ToList();
    }

    // Step metrics of the extra phase and the validation scores, for the curves.
    private static void WriteHistory(string output, int seed, string key, PreferenceTuningHistory history)
    {
        var text = new StringBuilder("kind,step,loss,margin,chosen_ce\n");
        foreach (var m in history.Preference)
            text.AppendLine(string.Create(CultureInfo.InvariantCulture, $"train,{m.Step},{m.Loss:R},{m.RewardsMargins:R},{m.SftLoss:R}"));
        foreach (var m in history.Evaluations.Where(e => e.Phase != "sft"))
            text.AppendLine(string.Create(CultureInfo.InvariantCulture, $"eval,{m.Step},{m.Loss:R},{m.RewardsMargins:R},{m.SftLoss:R}"));
        File.WriteAllText(Path.Combine(output, $"align-prior-history-seed{seed}-{key}.csv"), text.ToString());
    }

    private static readonly (string Metric, string Label)[] Headline =
    {
        ("em_in-distribution", "EM in-dist."), ("em_counter-prior", "EM counter-prior"),
        ("halluc_in-distribution", "halluc. in-dist."), ("halluc_counter-prior", "halluc. counter-prior"),
    };

    private static void Report(Settings s, string output, string resultsPath)
    {
        var results = ReadResults(resultsPath);
        var control = results.Where(r => r.Variant == "control").ToDictionary(r => r.Seed);
        var seeds = control.Keys.Order().ToArray();
        if (seeds.Length == 0) return;
        var keys = new[] { "sft" }.Concat(Variants.Select(v => v.Key)).ToArray();
        string Name(string key) => key == "sft" ? "SFT (converged, start of every variant)" : Variants.First(v => v.Key == key).Name;
        List<double> Values(string key, string metric) =>
            seeds.Select(seed => results.FirstOrDefault(r => r.Seed == seed && r.Variant == key)?.Values[metric] ?? double.NaN).ToList();
        static string Pct(double v) => double.IsNaN(v) ? "–" : (100 * v).ToString("F1", CultureInfo.InvariantCulture);
        string MeanStd(List<double> v)
        {
            if (v.Any(double.IsNaN)) return "–";
            var (mean, std) = AlignMetrics.MeanStd(v);
            return v.Count < 2 ? Pct(mean) : $"{Pct(mean)} ± {Pct(std)}";
        }

        var md = new StringBuilder();
        md.AppendLine("# Alignment with a prior to resist (counter-prior split)");
        md.AppendLine();
        md.AppendLine($"Command: `{s.Command(output)}`; seeds {string.Join(", ", seeds)} ({seeds.Length} of {s.Seeds} done).");
        md.AppendLine();
        var sftEpochs = Values("sft", "sft_epochs");
        var extraSteps = Values("control", "extra_steps");
        md.AppendLine(string.Create(CultureInfo.InvariantCulture,
            $"Scenes: every attribute takes its shape's typical value (colour, cell, count) with probability {s.Prior} in train, validation and the in-distribution test; never in the counter-prior test. " +
            $"SFT stopped on a validation-CE plateau after {string.Join(", ", sftEpochs.Select(e => e.ToString("F0", CultureInfo.InvariantCulture)))} epochs (per seed); " +
            $"then every variant trained {string.Join(", ", extraSteps.Select(e => e.ToString("F0", CultureInfo.InvariantCulture)))} more steps ({s.ExtraEpochs} epochs, batch 32, lr 2e-4) from that checkpoint."));
        md.AppendLine();
        md.AppendLine("Mean ± std over seeds, in %. EM = exact match; halluc. = answers that state a wrong colour, shape, position or count, or are empty or truncated.");
        md.AppendLine();
        md.AppendLine("| Variant | " + string.Join(" | ", Headline.Select(h => h.Label)) + " | pref. acc. raw ≻ mixed (training objective) |");
        md.AppendLine("|---|" + string.Concat(Enumerable.Repeat("---|", Headline.Length + 1)));
        foreach (var key in keys)
            md.AppendLine($"| {Name(key)} | " + string.Join(" | ", Headline.Select(h => MeanStd(Values(key, h.Metric)))) +
                          $" | {MeanStd(Values(key, "raw_vs_mixed_in-distribution"))} |");
        md.AppendLine();
        md.AppendLine("Paired differences from the CE control (variant − control, points; mean ± std over seeds, [95 % t interval], seeds with difference > 0 / < 0). **Bold** = the interval excludes 0.");
        md.AppendLine();
        md.AppendLine("| Variant | " + string.Join(" | ", Headline.Select(h => "Δ " + h.Label)) + " |");
        md.AppendLine("|---|" + string.Concat(Enumerable.Repeat("---|", Headline.Length)));
        foreach (var key in keys.Where(k => k != "control"))
        {
            var cells = Headline.Select(h =>
            {
                var v = Values(key, h.Metric);
                if (v.Any(double.IsNaN)) return "–";
                var d = AlignMetrics.Paired(v, Values("control", h.Metric));
                string text = string.Create(CultureInfo.InvariantCulture,
                    $"{100 * d.Mean:+0.0;-0.0;0.0} ± {100 * d.Std:F1} [{100 * (d.Mean - d.HalfWidth95):F1}, {100 * (d.Mean + d.HalfWidth95):F1}] {d.Positive}/{d.Negative}");
                return d.Survives ? $"**{text}**" : text;
            });
            md.AppendLine($"| {Name(key)} | {string.Join(" | ", cells)} |");
        }
        md.AppendLine();
        foreach (var split in Splits)
        {
            md.AppendLine($"Exact match per question type, {split} (mean ± std, %), and hallucination per attribute:");
            md.AppendLine();
            md.AppendLine("| Variant | " + string.Join(" | ", AlignMetrics.Kinds) + " | " + string.Join(" | ", AlignMetrics.Attributes.Select(a => "halluc. " + a)) + " | empty/truncated |");
            md.AppendLine("|---|" + string.Concat(Enumerable.Repeat("---|", AlignMetrics.Kinds.Count + AlignMetrics.Attributes.Count + 1)));
            foreach (var key in keys)
                md.AppendLine($"| {Name(key)} | " + string.Join(" | ", AlignMetrics.Kinds.Select(k => MeanStd(Values(key, $"em_{k}_{split}")))) + " | " +
                              string.Join(" | ", AlignMetrics.Attributes.Select(a => MeanStd(Values(key, $"halluc_{a}_{split}")))) +
                              $" | {MeanStd(Values(key, $"empty_or_truncated_{split}"))} |");
            md.AppendLine();
        }
        md.AppendLine("- Pref. acc. raw ≻ mixed: share of in-distribution test pairs (raw image, answer) ≻ (MergeMix mix from the SFT model's attention, same answer) " +
                      "by average log-prob per token. It is what the mixed-SimPO variants are trained to do, not an independent measure.");
        md.AppendLine("- Curves: align-prior-sft.png (SFT validation CE per epoch, per seed), align-prior-chosen-ce.png (CE of the chosen/ground-truth answers " +
                      "during the extra steps, all variants, one scale), align-prior-margins-simpo.png and align-prior-margins-dpo.png (rewards/margins per family: " +
                      "SimPO margins are β·Δ of average log-probs, DPO margins β·Σ log-ratio to the reference; different quantities, so apart).");
        File.WriteAllText(Path.Combine(output, "align-prior-results.md"), md.ToString());
        Console.WriteLine(md.ToString());
        WriteCurves(output, seeds);
    }

    private static void WriteCurves(string output, IReadOnlyList<int> seeds)
    {
        var sft = new List<PlotSeries>();
        foreach (int seed in seeds)
        {
            string path = Path.Combine(output, $"align-prior-sft-seed{seed}.csv");
            if (!File.Exists(path)) continue;
            var rows = File.ReadAllLines(path).Skip(1).Select(l => l.Split(',')).ToArray();
            sft.Add(new PlotSeries($"seed {seed} validation", rows.Select(r => double.Parse(r[0], CultureInfo.InvariantCulture)).ToArray(),
                rows.Select(r => double.Parse(r[1], CultureInfo.InvariantCulture)).ToArray()));
            sft.Add(new PlotSeries($"seed {seed} train", rows.Select(r => double.Parse(r[0], CultureInfo.InvariantCulture)).ToArray(),
                rows.Select(r => double.Parse(r[2], CultureInfo.InvariantCulture)).ToArray()));
        }
        if (sft.Count > 0) LinePlot.Save(Path.Combine(output, "align-prior-sft.png"), "SFT: CE per epoch (train mean, validation) to the plateau", "epoch", "CE (nats/token)", sft);

        // Mean over seeds of each step's value, smoothed.
        const int window = 10;
        PlotSeries? Curve(Variant v, int column)
        {
            var perSeed = seeds.Select(seed => Path.Combine(output, $"align-prior-history-seed{seed}-{v.Key}.csv")).Where(File.Exists)
                .Select(p => File.ReadAllLines(p).Skip(1).Select(l => l.Split(',')).Where(f => f[0] == "train")
                    .Select(f => double.Parse(f[column], CultureInfo.InvariantCulture)).ToArray()).ToArray();
            if (perSeed.Length == 0) return null;
            int steps = perSeed.Min(a => a.Length);
            var mean = Enumerable.Range(0, steps).Select(i => perSeed.Average(a => a[i])).ToArray();
            return new PlotSeries(v.Key, Enumerable.Range(1, steps).Select(i => (double)i).ToArray(), AlignCommand.MovingAverage(mean, window));
        }
        string Seeds() => $"mean of {seeds.Count} seed(s), {window}-step moving average";
        var chosen = Variants.Select(v => Curve(v, 4)).OfType<PlotSeries>().ToArray();
        if (chosen.Length > 0)
            LinePlot.Save(Path.Combine(output, "align-prior-chosen-ce.png"), $"Extra steps: CE of the true answers ({Seeds()})", "extra step", "CE (nats/token)", chosen);
        // Margins only: the losses are not one quantity even inside a family (mixed SimPO and RPO add the CE term).
        foreach (var (family, title, label) in new[]
        {
            ("simpo", "SimPO family: rewards/margins", "β·Δ average log-prob (raw − mixed)"),
            ("dpo", "DPO family: rewards/margins", "β·Σ log-ratio to reference (raw − mixed)"),
        })
        {
            var margins = Variants.Where(v => v.Family == family).Select(v => Curve(v, 3)).OfType<PlotSeries>().ToArray();
            if (margins.Length > 0)
                LinePlot.Save(Path.Combine(output, $"align-prior-margins-{family}.png"), $"{title} ({Seeds()})", "extra step", label, margins);
        }
    }
}
