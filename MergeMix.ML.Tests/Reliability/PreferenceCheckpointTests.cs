using MergeMix.ML.Alignment;
using MergeMix.ML.Data;
using MergeMix.ML.Runtime;
using MergeMix.ML.Tests.Alignment;
using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace MergeMix.ML.Tests.Reliability;

/// <summary>Preference tuning resumes only a checkpoint made from the same data and options, deliberately otherwise, and mid-epoch exactly.</summary>
[TestClass]
public sealed class PreferenceCheckpointTests
{
    private sealed class Row
    {
        [VectorType(3, 16, 16)] public float[] Features { get; set; } = Array.Empty<float>();
        public string Prompt { get; set; } = "";
        public string Answer { get; set; } = "";
    }

    // 6 scenes, two rows each (caption, then the first question, or the second when asked for other rows): 12 rows.
    private static Row[] Rows(int question = 0)
    {
        var (images, scenes) = SyntheticShapes.Generate(6, seed: 3, new SyntheticShapesOptions { Width = 16, Height = 16, MaxObjects = 1 });
        var rows = new List<Row>();
        for (int i = 0; i < scenes.Count; i++)
        {
            var q = scenes[i].Questions()[question];
            rows.Add(new Row { Features = images.Image(i).ToArray(), Prompt = "describe the image", Answer = scenes[i].Caption });
            rows.Add(new Row { Features = images.Image(i).ToArray(), Prompt = q.Question, Answer = q.Answer });
        }
        return rows.ToArray();
    }

    private static PreferenceTuningEstimator.Options Tiny(string folder, int preferenceEpochs = 0) => new()
    {
        Encoder = PreferenceFixtures.TinyEncoder(),
        Model = new MultimodalLmOptions { ModelDim = 16, Layers = 1, Heads = 2, MaxTextLength = 20, InitSeed = 5 },
        Trainer = new PreferenceTrainerOptions { Objective = PreferenceObjective.SimPo, BatchSize = 4, LearningRate = 1e-3 },
        SftEpochs = 2,
        PreferenceEpochs = preferenceEpochs,
        MixGroupSize = 4,
        MaxNewTokens = 2,
        Seed = 7,
        CheckpointFolder = folder,
    };

    private static float[] Weights(nn.Module model) => model.parameters().SelectMany(p => p.detach().cpu().data<float>().ToArray()).ToArray();

    private static void WithFolders(Action<string, string> test)
    {
        string a = Path.Combine(Path.GetTempPath(), $"mergemix-pref-{Guid.NewGuid():N}"), b = a + "-shared";
        try { test(a, b); }
        finally
        {
            foreach (var folder in new[] { a, b }) if (Directory.Exists(folder)) Directory.Delete(folder, recursive: true);
        }
    }

    [TestMethod]
    public void OtherRowsOfTheSameImagesAreRefusedNamingTheData()
    {
        WithFolders((folder, _) =>
        {
            var ml = new MLContext(0);
            ml.Alignment().PreferenceTuning(Tiny(folder)).Fit(ml.Data.LoadFromEnumerable(Rows())).Dispose();
            var error = Assert.ThrowsExactly<InvalidOperationException>(
                () => ml.Alignment().PreferenceTuning(Tiny(folder)).Fit(ml.Data.LoadFromEnumerable(Rows(question: 1))));
            StringAssert.Contains(error.Message, "sft.checkpoint.zip");
            StringAssert.Contains(error.Message, "Data.Prompts: checkpoint 12 prompts, sha256 ");
            StringAssert.Contains(error.Message, "Data.ChosenAnswers");
            Assert.IsFalse(error.Message.Contains("Data.ChosenImages"), "the images are the same: " + error.Message);
        });
    }

    [TestMethod]
    public void AnotherBetaIsRefusedButASharedSftCheckpointResumesWhenAskedTo()
    {
        WithFolders((folder, shared) =>
        {
            var ml = new MLContext(0);
            var warnings = new List<string>();
            ml.Log += (_, e) => { if (e.Kind == ChannelMessageKind.Warning) lock (warnings) warnings.Add(e.RawMessage); };
            var data = ml.Data.LoadFromEnumerable(Rows());
            using var first = ml.Alignment().PreferenceTuning(Tiny(folder, preferenceEpochs: 1)).Fit(data);

            var beta = Tiny(folder, preferenceEpochs: 1);
            beta.Trainer.Beta = 0.5;
            var error = Assert.ThrowsExactly<InvalidOperationException>(() => ml.Alignment().PreferenceTuning(beta).Fit(data));
            StringAssert.Contains(error.Message, "Beta: checkpoint 1, options 0.5");
            StringAssert.Contains(error.Message, "OnCheckpointMismatch");

            // As the samples' align command: another variant starts from the same SFT model, on purpose.
            Directory.CreateDirectory(shared);
            File.Copy(Path.Combine(folder, "sft.checkpoint.zip"), Path.Combine(shared, "sft.checkpoint.zip"));
            var variant = Tiny(shared, preferenceEpochs: 1);
            variant.Trainer.Beta = 0.5;
            variant.OnCheckpointMismatch = CheckpointMismatch.Resume;
            var steps = new List<long>();
            variant.Progress = new SyncProgress<PreferenceStepMetrics>(m => steps.Add(m.GlobalStep));
            using var resumed = ml.Alignment().PreferenceTuning(variant).Fit(data);
            CollectionAssert.AreEqual(new long[] { 7, 8, 9 }, steps, "the SFT phase is not redone");
            CollectionAssert.AreEqual(first.History.Sft.Select(m => m.Loss).ToArray(), resumed.History.Sft.Select(m => m.Loss).ToArray());
            Assert.IsTrue(warnings.Any(w => w.Contains("Beta: checkpoint 1, options 0.5")), string.Join("\n", warnings));
        });
    }

    [TestMethod]
    public void OtherValidationPairsAreRefusedWhenTheCheckpointHoldsTheirPrecomputedReference()
    {
        WithFolders((folder, _) =>
        {
            var ml = new MLContext(0);
            var data = ml.Data.LoadFromEnumerable(Rows());
            PreferenceTuningEstimator.Options Dpo(int validationQuestion)
            {
                var o = Tiny(folder, preferenceEpochs: 1);
                o.Trainer.Objective = PreferenceObjective.Dpo;
                o.Trainer.Reference = ReferenceMode.Precomputed;
                o.ValidationSet = ml.Data.LoadFromEnumerable(Rows(validationQuestion).Take(4));
                return o;
            }
            using (ml.Alignment().PreferenceTuning(Dpo(0)).Fit(data)) { }
            var error = Assert.ThrowsExactly<InvalidOperationException>(() => ml.Alignment().PreferenceTuning(Dpo(1)).Fit(data));
            StringAssert.Contains(error.Message, "preference.checkpoint.zip");
            StringAssert.Contains(error.Message, "Data.Validation.Prompts");
            Assert.IsFalse(error.Message.Contains("Data.Prompts"), "the training pairs are the same: " + error.Message);
            // The same validation pairs resume without complaint (nothing left to train: the history comes from the checkpoint).
            using var again = ml.Alignment().PreferenceTuning(Dpo(0)).Fit(data);
            Assert.AreEqual(3, again.History.Preference.Count);
        });
    }

    [TestMethod]
    public void AnEpochInterruptedInItsMiddleResumesFromItsLastStepExactly()
    {
        var ml = new MLContext(0);
        var data = ml.Data.LoadFromEnumerable(Rows());
        using var uninterrupted = ml.Alignment().PreferenceTuning(Tiny(folder: null!, preferenceEpochs: 1)).Fit(data);
        WithFolders((folder, _) =>
        {
            using var cancel = new CancellationTokenSource();
            var interrupted = Tiny(folder, preferenceEpochs: 1);
            interrupted.CheckpointEverySteps = 1;
            interrupted.CancellationToken = cancel.Token;
            // Step 5 is the second of the 3 steps of the second SFT epoch.
            interrupted.Progress = new SyncProgress<PreferenceStepMetrics>(m => { if (m.GlobalStep == 5) cancel.Cancel(); });
            Assert.ThrowsExactly<OperationCanceledException>(() => ml.Alignment().PreferenceTuning(interrupted).Fit(data));

            var resumed = Tiny(folder, preferenceEpochs: 1);
            resumed.CheckpointEverySteps = 1;
            var steps = new List<long>();
            resumed.Progress = new SyncProgress<PreferenceStepMetrics>(m => steps.Add(m.GlobalStep));
            using var model = ml.Alignment().PreferenceTuning(resumed).Fit(data);
            CollectionAssert.AreEqual(new long[] { 6, 7, 8, 9 }, steps, "only the last SFT step is redone, then the preference phase");
            CollectionAssert.AreEqual(Weights(uninterrupted.Model), Weights(model.Model));
        });
    }
}
