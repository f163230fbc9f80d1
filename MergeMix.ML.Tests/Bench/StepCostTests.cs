using MergeMix.ML.Classification;
using MergeMix.ML.Samples;
using MergeMix.ML.Samples.Bench;

namespace MergeMix.ML.Tests.Bench;

[TestClass]
public sealed class StepCostTests
{
    private static TrainingStepCost Cost(string name, int passes, double cpuSeconds, double wallSeconds)
    {
        var phases = Enum.GetValues<StepPhase>().ToDictionary(p => p, p => p == StepPhase.Forward ? cpuSeconds / 3 : 0.0);
        return new TrainingStepCost(name, passes, wallSeconds, 128 / wallSeconds, phases, cpuSeconds, phases);
    }

    [TestMethod]
    public void ThreadRowsPairEachVariantWithItsTwinAtTheComparedThreadCount()
    {
        var costs = new[] { Cost("plain", 1, 0.5, 0.6), Cost("mixup", 1, 0.5, 0.8), Cost(StepCost.ThreadsName("plain", 2), 1, 0.7, 0.4), Cost("mixup@2t", 1, 0.8, 0.5) };
        var rows = StepCost.ThreadRows(costs, new[] { "plain", "mixup" }, 1, 2);
        Assert.AreEqual("plain@2t", StepCost.ThreadsName("plain", 2));
        Assert.AreEqual(1.5, rows[0].SpeedUp, 1e-12);
        Assert.AreEqual(1.6, rows[1].SpeedUp, 1e-12);
        Assert.AreEqual(700, rows[0].ComparedCpuMs, 1e-9);
        StringAssert.Contains(StepCost.ThreadsMarkdown(rows, 1, 2), "| `plain` | 600 | 400 | 1.50× | 500 | 700 |");
        var csv = StepCost.ThreadsCsv(rows, 1, 2).TrimEnd('\n').Split('\n');
        Assert.AreEqual("plain,1,2,600,400,1.5,500,700", csv[1]);
        StringAssert.Contains(Assert.ThrowsExactly<ArgumentException>(() => StepCost.ThreadRows(costs.Take(3).ToList(), new[] { "plain", "mixup" }, 1, 2)).Message, "mixup@2t");
        StringAssert.Contains(Assert.ThrowsExactly<ArgumentException>(() => new StepCostSettings { CompareThreads = 1 }.Validate()).Message, "--compare-threads");
    }

    [TestMethod]
    public void Bf16VariantsAreTheirFp32VariantWithBFloat16Linear()
    {
        foreach (var name in new[] { "plain", "mixup", "mergemix", "mergemix-tome" })
        {
            var fp32 = StepCost.Options(name);
            var bf16 = StepCost.Options(name + "-bf16");
            Assert.IsFalse(fp32.BFloat16Linear, name);
            Assert.IsTrue(bf16.BFloat16Linear, name + "-bf16");
            Assert.AreEqual(fp32.OnlineMixing?.Name, bf16.OnlineMixing?.Name, name);
            Assert.AreEqual(fp32.MergeDuringTraining, bf16.MergeDuringTraining, name);
            Assert.AreEqual(fp32.MergeMixBaseLoss, bf16.MergeMixBaseLoss, name);
            StringAssert.StartsWith(StepCost.Describe(name + "-bf16"), StepCost.Describe(name));
        }
    }

    [TestMethod]
    public void RatiosAreToMixupOnCpuTimeAndTargetsFollowTheBounds()
    {
        var costs = new[]
        {
            Cost("plain", 1, 0.5, 1.0), Cost("mixup", 1, 0.5, 2.0), Cost("mergemix", 2, 1.0, 3.0),
            Cost("mergemix-tome", 2, 0.75, 1.0), Cost("mergemix-nobase-tome", 1, 0.3, 1.0),
        };
        double plainFlops = StepCost.FlopsPerStep("plain", 1, 128);
        // Ceiling chosen so that the plain step sits at exactly 50 % of it.
        double ceiling = plainFlops / 0.5 / 1e9 / 0.5;
        var rows = StepCost.Rows(costs, 128, ceiling);

        Assert.AreEqual(2.0, rows[2].RatioToMixup!.Value, 1e-12);
        Assert.AreEqual(1.5, rows[2].WallRatioToMixup!.Value, 1e-12);
        Assert.AreEqual(0.5, rows[0].CeilingShare, 1e-12);
        Assert.AreEqual(2 * plainFlops, rows[2].FlopsPerStep, 1e-3, "two unmerged passes");
        Assert.IsTrue(rows[3].FlopsPerStep < rows[2].FlopsPerStep, "merged passes count fewer FLOPs");

        var targets = StepCost.Targets(rows);
        CollectionAssert.AreEqual(new[] { true, false, true, false }, targets.Select(t => t.Met).ToArray(), "2.0 ≤ 2.1, 1.5 > 1.4, 0.6 ≤ 0.7, 50 % < 60 %");
        Assert.AreEqual(0.6, targets[2].Measured!.Value, 1e-12);

        var csv = StepCost.Csv(rows, 1, 128, ceiling).TrimEnd('\n').Split('\n');
        Assert.AreEqual(1 + costs.Length, csv.Length);
        Assert.AreEqual(string.Join(",", StepCost.CsvColumns), csv[0]);
        Assert.IsTrue(csv.Skip(1).All(l => l.Split(',').Length == StepCost.CsvColumns.Count));

        var markdown = StepCost.Markdown(rows, new StepCostSettings { CommandLine = "stepcost" }, new[] { ceiling }, new[] { ceiling / 2 });
        StringAssert.Contains(markdown, "| 2.00 |");
        StringAssert.Contains(markdown, "| 1.50× | missed |");
    }

    [TestMethod]
    public void WithoutMixupThereAreNoRatiosAndTheRatioTargetsAreNotRun()
    {
        var rows = StepCost.Rows(new[] { Cost("plain", 1, 0.5, 0.5) }, 128, 100);
        Assert.IsNull(rows[0].RatioToMixup);
        var targets = StepCost.Targets(rows);
        Assert.IsTrue(targets.Take(3).All(t => t.Measured is null && !t.Met));
        StringAssert.Contains(StepCost.Markdown(rows, new StepCostSettings(), new[] { 100.0 }, new[] { 100.0 }), "not run");
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => StepCost.Rows(new[] { Cost("plain", 1, 0.5, 0.5) }, 128, 0));
    }

    [TestMethod]
    public void VariantsSetTheTrainerOptionsTheirNamesSay()
    {
        Assert.IsNull(StepCost.Options("plain").OnlineMixing);
        var separate = StepCost.Options("mergemix-separate");
        Assert.AreEqual(MergeMixAttentionPass.Separate, separate.MergeMixAttentionPass);
        Assert.IsFalse(separate.MergeDuringTraining);
        var noBase = StepCost.Options("mergemix-nobase-tome");
        Assert.AreEqual(MergeMixBaseLoss.None, noBase.MergeMixBaseLoss);
        Assert.IsTrue(noBase.MergeDuringTraining);
        Assert.AreEqual("mixup", StepCost.Options("mixup-tome").OnlineMixing!.Name);
        Assert.IsTrue(StepCost.Options("mixup-tome").Model.ProportionalAttention);
        var noProportional = StepCost.Options("mixup-tome-noprop");
        Assert.IsTrue(noProportional.MergeDuringTraining);
        Assert.IsFalse(noProportional.Model.ProportionalAttention);
        Assert.IsFalse(noProportional.BFloat16Linear);
        StringAssert.StartsWith(StepCost.Describe("mixup-tome-noprop"), StepCost.Describe("mixup-tome") + "; proportional attention off");
        var bf16 = StepCost.Options("mergemix-tome-bf16");
        Assert.IsTrue(bf16.BFloat16Linear && bf16.MergeDuringTraining && bf16.Model.ProportionalAttention);
        StringAssert.StartsWith(StepCost.Describe("mergemix-tome-bf16"), StepCost.Describe("mergemix-tome") + "; the blocks' Linear layers in bf16");
        Assert.IsTrue(StepCost.Options("mixup").Model.ProportionalAttention);
        Assert.ThrowsExactly<ArgumentException>(() => StepCost.Options("cutmix"));
    }

    [TestMethod]
    public async Task BadOptionsAreRefusedNamingTheOption()
    {
        foreach (var (args, expected) in new[]
        {
            (new[] { "stepcost", "--threads", "0" }, "--threads"),
            (new[] { "stepcost", "--batch", "1" }, "--batch"),
            (new[] { "stepcost", "--rounds", "0" }, "--rounds"),
            (new[] { "stepcost", "--variants", "plain,cutmix" }, "cutmix"),
            (new[] { "stepcost", "--variants", "plain,plain" }, "twice"),
            (new[] { "stepcost", "--allocator", "jemalloc" }, "--allocator"),
            (new[] { "stepcost", "--steps", "x" }, "--steps"),
        })
        {
            var error = new StringWriter();
            var saved = Console.Error;
            Console.SetError(error);
            try
            {
                Assert.AreEqual(2, await CommandLine.RunAsync(args), string.Join(" ", args));
            }
            finally
            {
                Console.SetError(saved);
            }
            StringAssert.Contains(error.ToString(), expected, string.Join(" ", args));
        }
    }

    [TestMethod]
    public void NativeMemorySettingsApplyOnLinux()
    {
        if (!OperatingSystem.IsLinux()) Assert.Inconclusive("glibc only");
        Assert.IsTrue(MergeMix.ML.Runtime.NativeAllocator.KeepFreedMemory());
        Assert.IsTrue(MergeMix.ML.Runtime.NativeAllocator.KeepFreedMemory(), "a second call keeps them");
        Assert.IsTrue(MergeMix.ML.Runtime.NativeAllocator.IsKeepingFreedMemory);
    }

    [TestMethod]
    public void LinearPrecisionTableHasTheModelsLayersAndTheReference()
    {
        var rows = StepCost.LinearPrecisions(batch: 2, iterations: 1);
        CollectionAssert.AreEqual(new[] { "qkv", "attention projection", "MLP fc1", "MLP fc2", "reference 2048²" }, rows.Select(r => r.Layer).ToArray());
        Assert.AreEqual(2 * 65, rows[0].Rows, "2 images × (64 patches + CLS)");
        Assert.AreEqual((96L, 288L), (rows[0].In, rows[0].Out));
        Assert.AreEqual((384L, 96L), (rows[3].In, rows[3].Out));
        Assert.IsTrue(rows.All(r => r.Fp32Gflops > 0 && r.Bf16Gflops > 0));
        StringAssert.Contains(StepCost.LinearPrecisionMarkdown(rows), "| qkv | [130×96]·[96×288] |");
    }
}
