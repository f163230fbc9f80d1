using MergeMix.ML.Augmentation;
using MergeMix.ML.Classification;
using MergeMix.ML.Mixing;
using MergeMix.ML.Runtime;
using Microsoft.ML;
using Microsoft.ML.Runtime;
using TorchSharp;
using static MergeMix.ML.Tests.Classification.TinyClassifier;
using static TorchSharp.torch;

namespace MergeMix.ML.Tests.Reliability;

/// <summary>The classifier trainer resumes only a checkpoint made from the same data and options, and resumes mid-epoch exactly.</summary>
[TestClass]
public sealed class ClassifierCheckpointTests
{
    private static string TempFolder() => Path.Combine(Path.GetTempPath(), $"mergemix-resume-{Guid.NewGuid():N}");

    private static VisionTransformerClassifier Fit(MLContext ml, IDataView data, VisionTransformerTrainerOptions options) =>
        ml.MulticlassClassification.Trainers.VisionTransformer(options).Fit(data);

    private static void WithFolder(Action<string> test)
    {
        string folder = TempFolder();
        try { test(folder); }
        finally { if (Directory.Exists(folder)) Directory.Delete(folder, recursive: true); }
    }

    // A folder holding the checkpoint of a finished default run on 32 shapes, for tests that resume it differently.
    private static void WithFinishedRun(Action<string, MLContext, IDataView> test) => WithFolder(folder =>
    {
        var ml = new MLContext(1);
        var data = Shapes(32, 1).ToDataView(ml);
        var first = Options();
        first.CheckpointFolder = folder;
        Fit(ml, data, first).Dispose();
        test(folder, ml, data);
    });

    [TestMethod]
    public void AnotherLearningRateIsRefusedNamingTheOptionAndBothValues()
    {
        WithFinishedRun((folder, ml, data) =>
        {

            var second = Options();
            second.CheckpointFolder = folder;
            second.LearningRate = 5e-4;
            var error = Assert.ThrowsExactly<InvalidOperationException>(() => Fit(ml, data, second));
            StringAssert.Contains(error.Message, "LearningRate: checkpoint 0.001, options 0.0005");
            StringAssert.Contains(error.Message, folder);
            StringAssert.Contains(error.Message, "OnCheckpointMismatch");

            var model = Options();
            model.CheckpointFolder = folder;
            model.Model.Width = 32;
            StringAssert.Contains(Assert.ThrowsExactly<InvalidOperationException>(() => Fit(ml, data, model)).Message, "Model.Width: checkpoint 16, options 32");

            var mixing = Options();
            mixing.CheckpointFolder = folder;
            mixing.OnlineMixing = new CutMixPolicy { Alpha = 0.5 };
            var mixingError = Assert.ThrowsExactly<InvalidOperationException>(() => Fit(ml, data, mixing)).Message;
            StringAssert.Contains(mixingError, "OnlineMixing: checkpoint null, options CutMixPolicy");
            StringAssert.Contains(mixingError, "OnlineMixing.Alpha: checkpoint (not recorded), options 0.5");

            // What does not decide the result may change: columns are renamed, threads and progress differ.
            var same = Options();
            same.CheckpointFolder = folder;
            same.Threads = 1;
            same.ScoreColumnName = "Probabilities";
            var epochs = new List<int>();
            same.Progress = new SyncProgress<EpochReport>(r => epochs.Add(r.Epoch));
            Fit(ml, data, same).Dispose();
            Assert.AreEqual(0, epochs.Count, "the finished run resumes with nothing left to train");
        });
    }

    [TestMethod]
    public void AnOptionACheckpointDoesNotRecordMatchesOnlyAtItsDefault()
    {
        WithFinishedRun((folder, ml, data) =>
        {

            // A checkpoint written before these options existed does not record them.
            var file = Path.Combine(folder, "fingerprint.json");
            var entries = System.Text.Json.JsonSerializer.Deserialize<Dictionary<string, string>>(File.ReadAllText(file))!;
            Assert.IsTrue(entries.Remove(nameof(VisionTransformerTrainerOptions.BFloat16Linear)));
            Assert.IsTrue(entries.Remove("Model.MergeInflection"));
            File.WriteAllText(file, System.Text.Json.JsonSerializer.Serialize(entries));

            var same = Options();
            same.CheckpointFolder = folder;
            var epochs = new List<int>();
            same.Progress = new SyncProgress<EpochReport>(r => epochs.Add(r.Epoch));
            Fit(ml, data, same).Dispose();
            Assert.AreEqual(0, epochs.Count, "options at their defaults are what the older code did: the finished run resumes");

            var changed = Options();
            changed.CheckpointFolder = folder;
            changed.BFloat16Linear = true;
            changed.Model.MergeInflection = 0.5;
            var error = Assert.ThrowsExactly<InvalidOperationException>(() => Fit(ml, data, changed)).Message;
            StringAssert.Contains(error, "BFloat16Linear: checkpoint (not recorded), options True");
            StringAssert.Contains(error, "Model.MergeInflection: checkpoint (not recorded), options 0.5");
        });
    }

    [TestMethod]
    public void OtherTrainingDataIsRefusedNamingTheData()
    {
        WithFolder(folder =>
        {
            var ml = new MLContext(1);
            var options = Options();
            options.CheckpointFolder = folder;
            Fit(ml, Shapes(32, 1).ToDataView(ml), options).Dispose();
            var error = Assert.ThrowsExactly<InvalidOperationException>(() => Fit(ml, Shapes(32, 2).ToDataView(ml), options));
            StringAssert.Contains(error.Message, "Data.Images: checkpoint 24576 pixels of 32 3×16×16 images, sha256 ");
            StringAssert.Contains(error.Message, "Data.Labels");
        });
    }

    [TestMethod]
    public void ResumeOnMismatchContinuesDeliberatelyAndWarns()
    {
        WithFolder(folder =>
        {
            var ml = new MLContext(1);
            var warnings = new List<string>();
            ml.Log += (_, e) => { if (e.Kind == ChannelMessageKind.Warning) lock (warnings) warnings.Add(e.RawMessage); };
            var data = Shapes(32, 1).ToDataView(ml);
            var first = Options(epochs: 2);
            first.CheckpointFolder = folder;
            using var cancel = new CancellationTokenSource();
            first.CancellationToken = cancel.Token;
            first.Progress = new SyncProgress<EpochReport>(_ => cancel.Cancel());
            Assert.ThrowsExactly<OperationCanceledException>(() => Fit(ml, data, first));

            var second = Options(epochs: 2);
            second.CheckpointFolder = folder;
            second.LabelSmoothing = 0;
            second.OnCheckpointMismatch = CheckpointMismatch.Resume;
            var epochs = new List<int>();
            second.Progress = new SyncProgress<EpochReport>(r => epochs.Add(r.Epoch));
            using var classifier = Fit(ml, data, second);
            CollectionAssert.AreEqual(new[] { 2 }, epochs);
            Assert.IsTrue(warnings.Any(w => w.Contains("LabelSmoothing: checkpoint 0.1, options 0")), string.Join("\n", warnings));
        });
    }

    /// <summary>Mixup that cancels training after a given number of steps, to interrupt an epoch in its middle.</summary>
    private sealed class CancellingMixup(CancellationTokenSource? cancel, int afterSteps) : IMixPolicy
    {
        private readonly MixupPolicy inner = new();
        private int steps;

        /// <summary>Steps mixed so far (read-only, so not part of the options' fingerprint).</summary>
        public int Mixes => steps;

        public string Name => "mixup";

        public bool NeedsAttention => false;

        public MixResult Mix(Tensor images, Tensor labels, int classCount, Generator generator, IAttentionSource? attention = null)
        {
            if (++steps == afterSteps) cancel?.Cancel();
            return inner.Mix(images, labels, classCount, generator, attention);
        }
    }

    [TestMethod]
    public void AnEpochInterruptedInItsMiddleResumesFromItsLastStepBitForBit()
    {
        var ml = new MLContext(1);
        var data = Shapes(64, 1).ToDataView(ml); // 4 steps of 16 per epoch
        VisionTransformerTrainerOptions Recipe(IMixPolicy mixing)
        {
            var o = Options(epochs: 2);
            o.OnlineMixing = mixing; // exercises the mixing generator; the drop path of Options() the global torch stream; crop and flip the augmentation stream
            o.RandAugment = new RandAugmentOptions(); // its own generator, whose position the checkpoint must keep too
            o.CheckpointEverySteps = 1;
            return o;
        }
        using var uninterrupted = Fit(ml, data, Recipe(new CancellingMixup(null, 0)));

        WithFolder(folder =>
        {
            using var cancel = new CancellationTokenSource();
            var interrupted = Recipe(new CancellingMixup(cancel, afterSteps: 6)); // 2 steps into the second epoch
            interrupted.CheckpointFolder = folder;
            interrupted.CancellationToken = cancel.Token;
            Assert.ThrowsExactly<OperationCanceledException>(() => Fit(ml, data, interrupted));

            var mixing = new CancellingMixup(null, 0);
            var resumed = Recipe(mixing);
            resumed.CheckpointFolder = folder;
            using var classifier = Fit(ml, data, resumed);

            Assert.AreEqual(2, mixing.Mixes, "only the last 2 steps of the second epoch run again");
            AssertIdentical(uninterrupted.Model, classifier.Model);
            CollectionAssert.AreEqual(uninterrupted.History.Select(h => h.TrainLoss).ToArray(), classifier.History.Select(h => h.TrainLoss).ToArray());
        });
    }
}
