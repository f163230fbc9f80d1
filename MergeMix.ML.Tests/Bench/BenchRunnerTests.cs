using System.Globalization;
using MergeMix.ML.Samples.Bench;

namespace MergeMix.ML.Tests.Bench;

[TestClass]
public sealed class BenchRunnerTests
{
    private static readonly byte[] PngSignature = { 0x89, (byte)'P', (byte)'N', (byte)'G', 0x0D, 0x0A, 0x1A, 0x0A };

    [TestMethod]
    public void SmokePresetWritesCsvMarkdownAndChartsAndResumeSkipsFinishedRuns()
    {
        var folder = Path.Combine(Path.GetTempPath(), "mergemix-bench-" + Guid.NewGuid().ToString("N"));
        try
        {
            var settings = new BenchSettings
            {
                Preset = BenchPreset.Smoke,
                Methods = new[] { "none", "mergemix" },
                Seeds = 1,
                OutputFolder = folder,
                CommandLine = "bench --preset smoke --methods none,mergemix",
            };
            var log = new StringWriter();
            var outputs = BenchRunner.Run(settings, log);

            var lines = File.ReadAllLines(outputs.Csv);
            Assert.AreEqual(string.Join(",", BenchResults.Columns), lines[0]);
            Assert.AreEqual(3, lines.Length, "header + one row per method × seed");
            Assert.AreEqual(24, BenchResults.Columns.Count);
            var rows = BenchResults.ReadRows(outputs.Csv);
            CollectionAssert.AreEqual(new[] { "none", "mergemix" }, rows.Select(r => r.Method).ToArray());
            foreach (var r in rows)
            {
                Assert.AreEqual(0, r.Seed);
                Assert.AreEqual(BenchPreset.Smoke.Epochs, r.Epochs);
                Assert.IsTrue(r.BestEpoch >= 1 && r.BestEpoch <= r.Epochs, $"best epoch {r.BestEpoch}");
                foreach (var (name, v) in new[] { ("top1", r.Top1), ("top1_final", r.Top1Final), ("val_top1", r.ValidationTop1), ("ece", r.Ece), ("top1_tome", r.Top1Tome), ("ece_tome", r.EceTome) })
                    Assert.IsTrue(v >= 0 && v <= 1, $"{r.Method} {name} = {v}");
                Assert.IsTrue(r.LogLoss > 0 && double.IsFinite(r.LogLoss), $"log-loss {r.LogLoss}");
                Assert.IsTrue(r.ImagesPerSecond > 0 && r.ImagesPerSecondTome > 0 && r.TrainSecondsPerEpoch > 0);
                Assert.AreEqual(10, r.Occlusion.Count);
                Assert.IsTrue(r.Occlusion.All(a => a >= 0 && a <= 1));
                // The 0 % point of the curve is the plain test accuracy.
                Assert.AreEqual(r.Top1, r.Occlusion[0]);
            }
            var epochs = BenchResults.ReadEpochs(outputs.EpochsCsv);
            Assert.AreEqual(2 * BenchPreset.Smoke.Epochs, epochs.Count);
            foreach (var r in rows)
                Assert.AreEqual(r.ValidationTop1, epochs.Where(e => e.Method == r.Method).Max(e => e.ValidationTop1), $"{r.Method}: the selected epoch is the best validation epoch");

            var markdown = File.ReadAllText(outputs.Markdown);
            StringAssert.Contains(markdown, "Command: `bench --preset smoke --methods none,mergemix`");
            StringAssert.Contains(markdown, $"| none | 1 | {(100 * rows[0].Top1).ToString("F2", CultureInfo.InvariantCulture)} |");
            StringAssert.Contains(markdown, $"| mergemix | 1 | {(100 * rows[1].Top1).ToString("F2", CultureInfo.InvariantCulture)} |");
            Assert.AreEqual(3, outputs.Plots.Count);
            foreach (var png in outputs.Plots)
                CollectionAssert.AreEqual(PngSignature, File.ReadAllBytes(png).Take(8).ToArray(), png);
            Assert.IsFalse(Directory.EnumerateFileSystemEntries(Path.Combine(folder, "checkpoints")).Any(e => Path.GetFileName(e) != ".lock"), "finished runs leave no checkpoint");

            var again = new StringWriter();
            BenchRunner.Run(new BenchSettings { Preset = BenchPreset.Smoke, Methods = settings.Methods, OutputFolder = folder, Resume = true }, again);
            Assert.IsFalse(again.ToString().Contains("epoch 1/"), "resume must not train finished runs again");
            CollectionAssert.AreEqual(lines, File.ReadAllLines(outputs.Csv));

            // --report rewrites the report and charts from the CSVs and trains nothing, even for runs not yet done.
            File.Delete(outputs.Markdown);
            var report = new StringWriter();
            BenchRunner.Run(new BenchSettings { Preset = BenchPreset.Smoke, Methods = new[] { "none", "mergemix", "mixup" }, Seeds = 2, OutputFolder = folder, ReportOnly = true }, report);
            Assert.IsFalse(report.ToString().Contains("epoch 1/"), "--report must not train");
            StringAssert.Contains(File.ReadAllText(outputs.Markdown), $"| mergemix | 1 | {(100 * rows[1].Top1).ToString("F2", CultureInfo.InvariantCulture)} |");
            CollectionAssert.AreEqual(lines, File.ReadAllLines(outputs.Csv));
            var missing = Path.Combine(folder, "elsewhere");
            StringAssert.Contains(Assert.ThrowsExactly<ArgumentException>(() =>
                BenchRunner.Run(new BenchSettings { Preset = BenchPreset.Smoke, Methods = settings.Methods, OutputFolder = missing, ReportOnly = true }, TextWriter.Null)).Message, "--report");
        }
        finally
        {
            if (Directory.Exists(folder)) Directory.Delete(folder, recursive: true);
        }
    }

    [TestMethod]
    public void ReadingDropsATornLastLineAndRewriteDropsOrphanEpochs()
    {
        var folder = Path.Combine(Path.GetTempPath(), "mergemix-bench-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(folder);
        try
        {
            string csv = Path.Combine(folder, "r.csv"), epochsCsv = Path.Combine(folder, "e.csv");
            BenchResults.Create(csv, epochsCsv);
            var row = Row("mixup", 0.5, 0.1);
            BenchResults.Append(csv, epochsCsv, row, new[] { new BenchEpochRow("mixup", 0, 1, 2.0, 3.0, 0.4, 1.5, 0.05) });
            // An interrupted run: its epochs were written, its result row was cut off mid-line.
            File.AppendAllText(epochsCsv, "cutmix,0,1,2,3,0.4,1.5,0.05\n");
            File.AppendAllText(csv, "cutmix,0,2,1,0.4");

            var rows = BenchResults.ReadRows(csv);
            Assert.AreEqual(1, rows.Count);
            Assert.AreEqual(row with { Occlusion = rows[0].Occlusion }, rows[0]);
            CollectionAssert.AreEqual(row.Occlusion.ToArray(), rows[0].Occlusion.ToArray());
            var epochs = BenchResults.ReadEpochs(epochsCsv);
            Assert.AreEqual(2, epochs.Count);

            BenchResults.Rewrite(csv, epochsCsv, rows, epochs);
            Assert.AreEqual(2, File.ReadAllLines(csv).Length);
            CollectionAssert.AreEqual(new[] { "mixup" }, BenchResults.ReadEpochs(epochsCsv).Select(e => e.Method).ToArray());
        }
        finally
        {
            Directory.Delete(folder, recursive: true);
        }
    }

    [TestMethod]
    public void Bf16LinearReachesEveryRunsTrainerOptionsOnlyWhenAsked()
    {
        var preset = BenchPreset.Find("cifar10-2k-long");
        Assert.IsFalse(preset.TrainerOptions(1).BFloat16Linear, "the presets train in fp32");
        Assert.IsTrue((preset with { BFloat16Linear = true }).TrainerOptions(1).BFloat16Linear);
    }

    [TestMethod]
    public void AReportRewrittenWithReportNamesTheTrainingCommand()
    {
        Assert.AreEqual("dotnet run -c Release --project MergeMix.ML.Samples -- bench --seeds 3 --out x",
            MergeMix.ML.Samples.BenchCommand.TrainingCommandLine(new[] { "bench", "--seeds", "3", "--report", "--out", "x" }));
        Assert.AreEqual("dotnet run -c Release --project MergeMix.ML.Samples -- bench --out report-folder",
            MergeMix.ML.Samples.BenchCommand.TrainingCommandLine(new[] { "bench", "--out", "report-folder" }));
    }

    [TestMethod]
    public void MeanStdUsesTheSampleDeviation()
    {
        var s = MeanStd.Of(new[] { 0.70, 0.72, 0.74 });
        Assert.AreEqual(0.72, s.Mean, 1e-12);
        Assert.AreEqual(0.02, s.Std, 1e-12);
        Assert.AreEqual("72.00 ± 2.00", s.Format("F2", 100));
        Assert.AreEqual("0.500", MeanStd.Of(new[] { 0.5 }).Format("F3"));
        Assert.IsTrue(double.IsNaN(MeanStd.Of(new[] { 0.5 }).Std));
    }

    [TestMethod]
    public void TargetsCompareTheMeansOverSeeds()
    {
        var rows = new[]
        {
            Row("none", 0.50, 0.10), Row("none", 0.52, 0.10),
            Row("mixup", 0.55, 0.05), Row("mixup", 0.57, 0.07),
            Row("cutmix", 0.58, 0.08),
            Row("mergemix", 0.62, 0.04), Row("mergemix", 0.58, 0.06),
        };
        var targets = BenchReport.Targets(rows);
        Assert.AreEqual(3, targets.Count);
        Assert.AreEqual("Every mixer ≥ none (51.00 %): **met**", targets[0]);
        Assert.AreEqual("MergeMix top-1 60.00 % ≥ every other method (best other: cutmix 58.00 %): **met**", targets[1]);
        Assert.AreEqual("MergeMix ECE 5.00 % the lowest of the mixers (lowest other: mixup 6.00 %): **met**", targets[2]);

        var worse = BenchReport.Targets(new[]
        {
            Row("none", 0.60, 0.1), Row("none-2x", 0.62, 0.1), Row("mixup", 0.55, 0.02), Row("mergemix", 0.50, 0.03), Row("cutmix", 0.60, 0.01),
        });
        Assert.AreEqual("Every mixer ≥ none (60.00 %): **not met** (below none, top-1 points against it: mixup -5.00, mergemix -10.00)", worse[0]);
        Assert.AreEqual("MergeMix top-1 50.00 % ≥ every other method (best other: none-2x 62.00 %): **not met** (above MergeMix: none +10.00, none-2x +12.00, mixup +5.00, cutmix +10.00)", worse[1]);
        Assert.AreEqual("MergeMix ECE 3.00 % the lowest of the mixers (lowest other: cutmix 1.00 %): **not met**", worse[2]);

        // The last-epoch reading judges the two top-1 targets on Top1Final and has no ECE target.
        var last = BenchReport.Targets(new[]
        {
            Row("none", 0.60, 0.1) with { Top1Final = 0.40 }, Row("mixup", 0.55, 0.02) with { Top1Final = 0.45 }, Row("mergemix", 0.50, 0.03) with { Top1Final = 0.50 },
        }, lastEpoch: true);
        Assert.AreEqual(2, last.Count);
        Assert.AreEqual("Every mixer ≥ none (40.00 %): **met**", last[0]);
        Assert.AreEqual("MergeMix top-1 50.00 % ≥ every other method (best other: mixup 45.00 %): **met**", last[1]);
    }

    [TestMethod]
    public void PairedDifferencesPairSeedsAndNameTheBestOtherMethod()
    {
        BenchRow At(string method, int seed, double top1, double ece) => Row(method, top1, ece) with { Seed = seed };
        var rows = new[]
        {
            At("none", 0, 0.50, 0.10), At("none", 1, 0.52, 0.12), At("none", 2, 0.40, 0.10),
            At("none-2x", 0, 0.51, 0.10), At("none-2x", 1, 0.53, 0.10),
            At("mergemix", 0, 0.55, 0.05), At("mergemix", 1, 0.56, 0.06),
        };
        var lines = BenchReport.PairedDifferences(new[] { "none", "none-2x", "mergemix" }, rows);
        Assert.AreEqual(3, lines.Count);
        // Only seeds 0 and 1 pair up: differences +5 and +4 points, mean 4.5, sample std 0.71.
        Assert.AreEqual("| mergemix | +4.50 ± 0.71 (+5.00, +4.00) | -5.50 ± 0.71 (-5.00, -6.00) | +3.50 ± 0.71 (+4.00, +3.00) | none-2x | +3.50 ± 0.71 (+4.00, +3.00) |", lines[2]);
        Assert.AreEqual("| none | – | – | -1.00 ± 0.00 (-1.00, -1.00) | mergemix | -4.50 ± 0.71 (-5.00, -4.00) |", lines[0]);
    }

    [TestMethod]
    public void BenchOptionsForTheAblationsAreParsedWithErrorsNamingTheOption()
    {
        var preset = BenchPreset.Cifar10Long;
        Assert.AreEqual(MergeMix.ML.Vision.AttentionDirection.ClsKey, MergeMixVariant.ParseDirection(" CLS-key"));
        StringAssert.Contains(Assert.ThrowsExactly<ArgumentException>(() => MergeMixVariant.ParseDirection("row")).Message, "--attention-direction");
        StringAssert.Contains(Assert.ThrowsExactly<ArgumentException>(() => MergeMixVariant.ParseBaseLoss("soft")).Message, "--base-loss");
        StringAssert.Contains(Assert.ThrowsExactly<ArgumentException>(() => MergeMixVariant.ParseSwitch("merge-in-training", "maybe")).Message, "--merge-in-training expects on or off");
        StringAssert.Contains(Assert.ThrowsExactly<ArgumentException>(() => new MergeMixVariant { AttentionLayer = 4 }.Validate(preset)).Message, "--attention-layer must be a block index in [0, 3]");

        Assert.AreEqual("mergemix", new MergeMixVariant().Label("mergemix", preset));
        Assert.AreEqual("mergemix", new MergeMixVariant { AttentionLayer = 2, MergeDuringTraining = preset.MergeMixMergeDuringTraining }.Label("mergemix", preset), "defaults spelled out add nothing");
        Assert.AreEqual("mergemix:cls-key+layer-0+lam-scale+base-none+no-tome-train", new MergeMixVariant
        {
            Direction = MergeMix.ML.Vision.AttentionDirection.ClsKey, AttentionLayer = 0, LambdaScale = true,
            BaseLoss = MergeMix.ML.Classification.MergeMixBaseLoss.None, MergeDuringTraining = false,
        }.Label("mergemix", preset));

        var labels = BenchRunner.Jobs(new BenchSettings { Preset = preset, Ablations = true }).Select(j => j.Label).ToArray();
        CollectionAssert.AreEqual(new[]
        {
            "mergemix", "mergemix:cls-key", "mergemix:layer-0", "mergemix:layer-1", "mergemix:layer-3", "mergemix:lam-scale",
            "mergemix:base-mixup", "mergemix:base-none", "mergemix:no-tome-train",
        }, labels);
        var jobs = BenchRunner.Jobs(new BenchSettings { Preset = preset, Methods = BenchRunner.ParseMethods("none,none-2x,mixup") });
        CollectionAssert.AreEqual(new[] { preset.Epochs, 2 * preset.Epochs, preset.Epochs }, jobs.Select(j => j.Epochs).ToArray());
        Assert.AreEqual("none", jobs[1].Policy);
    }

    [TestMethod]
    public void AClaimedRunIsSkippedByOtherLiveProcessesAndTakenOverFromDeadOnes()
    {
        var folder = Path.Combine(Path.GetTempPath(), "mergemix-claim-" + Guid.NewGuid().ToString("N"));
        try
        {
            Assert.IsTrue(BenchResults.TryClaim(folder));
            Assert.IsTrue(BenchResults.TryClaim(folder), "a process may take its own claim again");
            using (var other = System.Diagnostics.Process.GetProcessById(1))
                File.WriteAllText(Path.Combine(folder, "owner.pid"), other.Id.ToString(CultureInfo.InvariantCulture));
            Assert.IsFalse(BenchResults.TryClaim(folder), "process 1 is alive");
            File.WriteAllText(Path.Combine(folder, "owner.pid"), int.MaxValue.ToString(CultureInfo.InvariantCulture));
            Assert.IsTrue(BenchResults.TryClaim(folder), "no process has that id");
        }
        finally
        {
            if (Directory.Exists(folder)) Directory.Delete(folder, recursive: true);
        }
    }

    [TestMethod]
    public void MethodsAndPresetsAreParsedWithHelpfulErrors()
    {
        Assert.AreEqual(11, BenchRunner.ParseMethods("all").Count);
        CollectionAssert.AreEqual(new[] { "mixup", "mergemix" }, BenchRunner.ParseMethods(" MixUp, mergemix ,mixup").ToArray());
        StringAssert.Contains(Assert.ThrowsExactly<ArgumentException>(() => BenchRunner.ParseMethods("mixup,puzzlemix")).Message, "--methods: unknown method 'puzzlemix'");
        Assert.AreSame(BenchPreset.Cifar10Small, BenchPreset.Find("CIFAR10-small"));
        StringAssert.Contains(Assert.ThrowsExactly<ArgumentException>(() => BenchPreset.Find("large")).Message, "valid presets: smoke, cifar10-small, cifar10-2k-long");
        StringAssert.Contains(Assert.ThrowsExactly<ArgumentException>(() => BenchRunner.Run(new BenchSettings { Seeds = 0 }, TextWriter.Null)).Message, "--seeds");
    }

    private static BenchRow Row(string method, double top1, double ece) =>
        new(method, 0, 2, 1, 0.4, top1, top1, 1.25, ece, top1, ece, 1000.5, 1500.25, 2.5, Enumerable.Range(0, 10).Select(i => top1 - i / 100.0).ToArray());
}
