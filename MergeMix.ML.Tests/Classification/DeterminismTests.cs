using System.Diagnostics;
using System.Globalization;
using MergeMix.ML.Classification;
using MergeMix.ML.Mixing;
using MergeMix.ML.Samples.Bench;
using static MergeMix.ML.Tests.Classification.TinyClassifier;

namespace MergeMix.ML.Tests.Classification;

/// <summary>
/// Same seed, same weights: online MergeMix training replays bit for bit from fresh state, in this process and in a
/// child process (same machine, same torch thread count; see the README on what else changes the last bits).
/// </summary>
[TestClass]
public sealed class DeterminismTests
{
    private static ImageClassifierModel Train(int seed, MergeMixAttentionPass pass, bool mergeDuringTraining, bool lambdaScale)
    {
        var options = Options(epochs: 2);
        options.Seed = seed;
        options.OnlineMixing = new MergeMixPolicy();
        options.MergeMixBaseLoss = MergeMixBaseLoss.Clean;
        options.MergeMixAttentionPass = pass;
        options.MergeDuringTraining = mergeDuringTraining;
        options.MergeMixLambdaScale = lambdaScale;
        return ClassifierTraining.Train(Shapes(32, 1), null, null, options).Model;
    }

    [TestMethod]
    [DataRow(MergeMixAttentionPass.CleanPass, false, false)]
    [DataRow(MergeMixAttentionPass.CleanPass, true, true)]
    [DataRow(MergeMixAttentionPass.Separate, true, false)]
    public void OnlineMergeMixFromFreshStateGivesBitIdenticalWeights(MergeMixAttentionPass pass, bool mergeDuringTraining, bool lambdaScale)
    {
        using var first = Train(7, pass, mergeDuringTraining, lambdaScale);
        using var again = Train(7, pass, mergeDuringTraining, lambdaScale);
        using var otherSeed = Train(8, pass, mergeDuringTraining, lambdaScale);
        AssertIdentical(first, again, "same seed");
        AssertDifferent(first, otherSeed, "another seed must train differently");
    }

    [TestMethod]
    public void BenchRunInAChildProcessReplaysThisProcessToTheLastBit()
    {
        var here = Path.Combine(Path.GetTempPath(), "mergemix-det-here-" + Guid.NewGuid().ToString("N"));
        var child = Path.Combine(Path.GetTempPath(), "mergemix-det-child-" + Guid.NewGuid().ToString("N"));
        try
        {
            BenchRunner.Run(new BenchSettings
            {
                Preset = BenchPreset.Smoke, Methods = new[] { "mergemix" }, Epochs = 1, Threads = 1, OutputFolder = here,
            }, TextWriter.Null);

            // The samples app sits next to the test assembly (the test project references it).
            var app = Path.ChangeExtension(typeof(BenchRunner).Assembly.Location, ".dll");
            var start = new ProcessStartInfo(Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") ?? "dotnet")
            {
                RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false,
            };
            foreach (var a in new[] { app, "bench", "--preset", "smoke", "--methods", "mergemix", "--epochs", "1", "--threads", "1", "--out", child })
                start.ArgumentList.Add(a);
            using var process = Process.Start(start)!;
            var stdout = process.StandardOutput.ReadToEndAsync();
            var stderr = process.StandardError.ReadToEndAsync();
            Assert.IsTrue(process.WaitForExit(TimeSpan.FromMinutes(3)), "the child bench did not finish in 3 minutes");
            Assert.AreEqual(0, process.ExitCode, $"child bench failed: {stdout.Result}\n{stderr.Result}");

            // Losses and metrics as 17-digit doubles: any different bit in the weights along the way would show.
            var a1 = BenchResults.ReadEpochs(Path.Combine(here, "bench-smoke-epochs.csv")).Single();
            var b1 = BenchResults.ReadEpochs(Path.Combine(child, "bench-smoke-epochs.csv")).Single();
            Assert.AreEqual(a1.TrainLoss, b1.TrainLoss, 0.0, "training loss");
            Assert.AreEqual(a1.ValidationLogLoss, b1.ValidationLogLoss, 0.0, "validation log-loss");
            Assert.AreEqual(a1.ValidationEce, b1.ValidationEce, 0.0, "validation ECE");
            var a2 = BenchResults.ReadRows(Path.Combine(here, "bench-smoke.csv")).Single();
            var b2 = BenchResults.ReadRows(Path.Combine(child, "bench-smoke.csv")).Single();
            Assert.AreEqual(a2.LogLoss, b2.LogLoss, 0.0, "test log-loss");
            CollectionAssert.AreEqual(a2.Occlusion.ToArray(), b2.Occlusion.ToArray(), "occlusion curve");
            Assert.IsTrue(a1.TrainLoss > 0 && double.IsFinite(a1.TrainLoss), a1.TrainLoss.ToString(CultureInfo.InvariantCulture));
        }
        finally
        {
            foreach (var folder in new[] { here, child })
                if (Directory.Exists(folder)) Directory.Delete(folder, recursive: true);
        }
    }
}
