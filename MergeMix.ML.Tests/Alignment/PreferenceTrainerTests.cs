using MergeMix.ML.Alignment;
using MergeMix.ML.Mixing;
using TorchSharp;
using static TorchSharp.torch;
using static MergeMix.ML.Tests.Alignment.PreferenceFixtures;

namespace MergeMix.ML.Tests.Alignment;

/// <summary>Test mixing policy: blends row i with row (i + 1) mod B at a fixed λ.</summary>
internal sealed class FakeBlendPolicy(float lambda) : IMixPolicy
{
    public string Name => "fake-blend";
    public bool NeedsAttention => false;
    public int Calls { get; private set; }

    public MixResult Mix(Tensor images, Tensor labels, int classCount, Generator generator, IAttentionSource? attention = null)
    {
        Calls++;
        long b = images.shape[0];
        var partner = (arange(b, dtype: ScalarType.Int64) + 1).remainder(b);
        var mixed = lambda * images + (1 - lambda) * images.index_select(0, partner);
        var lambdas = full(b, lambda, ScalarType.Float32);
        var soft = lambda * nn.functional.one_hot(labels, classCount).to_type(ScalarType.Float32)
                   + (1 - lambda) * nn.functional.one_hot(labels.index_select(0, partner), classCount).to_type(ScalarType.Float32);
        return new MixResult(mixed, partner, lambdas, soft, null);
    }
}

[TestClass]
public sealed class PreferenceTrainerTests
{
    private static MultimodalLm Model() => ColorModel(ColorTokenizer("there are 3 shapes."));

    private static PreferenceDataset MixedPairs(int n, float lambda = 0.5f) => PreferenceDataset.FromMixing(
        ColorImages(n), Enumerable.Repeat(ColorPrompt, n).ToArray(), Enumerable.Range(0, n).Select(ColorCaption).ToArray(),
        new FakeBlendPolicy(lambda), seed: 5, groupSize: 4);

    private static float[][] Snapshot(nn.Module m) => m.parameters().Select(p => p.detach().cpu().data<float>().ToArray()).ToArray();

    [TestMethod]
    public void DpoStepLeavesTheReferenceUnchanged()
    {
        using var data = ColorPairs(6, ColorCaption);
        using var model = Model();
        using var trainer = new PreferenceTrainer(model,
            new PreferenceTrainerOptions { Objective = PreferenceObjective.Dpo, Beta = 0.1, SftWeight = 0, BatchSize = 6, LearningRate = 1e-2 },
            () => new TinyPatchEncoder(seed: 77));
        var reference = trainer.ReferenceModel!;
        Assert.IsFalse(reference.training);
        Assert.IsTrue(reference.parameters().All(p => !p.requires_grad));
        var referenceBefore = Snapshot(reference);
        var policyBefore = Snapshot(model);
        CollectionAssert.AreEqual(policyBefore.SelectMany(x => x).ToArray(), referenceBefore.SelectMany(x => x).ToArray(), "the reference starts as a copy");

        var history = trainer.Train(data);

        Assert.AreEqual(1, history.Count);
        // Step 0: policy = reference, so h = 0 and loss = ln 2 (up to rounding: the gradient-recording forward may take
        // another attention kernel, so rewards are ±1e-7 and the strict accuracy is noise).
        Assert.AreEqual(Math.Log(2), history[0].Loss, 1e-5);
        Assert.AreEqual(0.0, history[0].RewardsMargins, 1e-5);
        CollectionAssert.AreEqual(referenceBefore.SelectMany(x => x).ToArray(), Snapshot(reference).SelectMany(x => x).ToArray());
        CollectionAssert.AreNotEqual(policyBefore.SelectMany(x => x).ToArray(), Snapshot(model).SelectMany(x => x).ToArray());
    }

    [TestMethod]
    public void OnlySomeObjectivesCreateAReference()
    {
        using var model = Model();
        foreach (var objective in new[] { PreferenceObjective.SimPo, PreferenceObjective.MixedSimPo, PreferenceObjective.Sft })
        {
            using var t = new PreferenceTrainer(model, new PreferenceTrainerOptions { Objective = objective }, () => throw new AssertFailedException("no copy expected"));
            Assert.IsNull(t.ReferenceModel, objective.ToString());
        }
        using var precomputed = new PreferenceTrainer(model, new PreferenceTrainerOptions { Objective = PreferenceObjective.Ipo, Reference = ReferenceMode.Precomputed });
        Assert.IsNull(precomputed.ReferenceModel);
        var e = Assert.ThrowsExactly<ArgumentNullException>(() => new PreferenceTrainer(model, new PreferenceTrainerOptions { Objective = PreferenceObjective.Dpo }));
        Assert.AreEqual("visionEncoderFactory", e.ParamName);
        var mismatch = Assert.ThrowsExactly<ArgumentException>(() => new PreferenceTrainer(model,
            new PreferenceTrainerOptions { Objective = PreferenceObjective.Dpo }, () => new TinyPatchEncoder(featureDim: 8)));
        Assert.AreEqual("visionEncoderFactory", mismatch.ParamName);
    }

    [TestMethod]
    public void MixedSimPoLowersLossAndPrefersRawImages()
    {
        using var data = MixedPairs(12, lambda: 0.5f);
        using var model = Model();
        using var trainer = new PreferenceTrainer(model, new PreferenceTrainerOptions
        {
            Objective = PreferenceObjective.MixedSimPo, Beta = 1, SftWeight = 1, BatchSize = 6, Epochs = 8, LearningRate = 5e-3, Seed = 1,
        });
        var before = trainer.Evaluate(data);
        var reported = new List<PreferenceStepMetrics>();
        var history = trainer.Train(data, new SyncProgress<PreferenceStepMetrics>(reported.Add));
        var after = trainer.Evaluate(data);

        Assert.AreEqual(16, history.Count);
        CollectionAssert.AreEqual(history.ToArray(), reported.ToArray());
        CollectionAssert.AreEqual(Enumerable.Range(1, 16).Select(i => (long)i).ToArray(), history.Select(h => h.Step).ToArray());
        Assert.IsTrue(after.Loss < before.Loss - 0.5, $"loss {before.Loss} → {after.Loss}");
        Assert.IsTrue(after.RewardsAccuracies > 0.5, $"accuracy {before.RewardsAccuracies} → {after.RewardsAccuracies}");
        Assert.IsTrue(after.LogpsChosen > before.LogpsChosen);
        // Mixed SimPO with λ = 0.5: margin γ = 0.5, rewards are β·A.
        // An evaluation is named with TRL's eval_ prefix and has no optimiser values (grad_norm, learning_rate, ...).
        var keys = after.ToDictionary().Keys.ToArray();
        CollectionAssert.AreEquivalent(new[] { "eval_loss", "eval_rewards/chosen", "eval_rewards/rejected", "eval_rewards/margins",
            "eval_rewards/accuracies", "eval_logps/chosen", "eval_logps/rejected", "eval_logits/chosen", "eval_logits/rejected",
            "eval_sft_loss", "eval_num_tokens" }, keys);
        CollectionAssert.IsSubsetOf(new[] { "loss", "grad_norm", "learning_rate", "logits/chosen", "logits/rejected", "num_tokens",
            "tokens_per_second", "step", "epoch" }, history[0].ToDictionary().Keys.ToArray());
    }

    [TestMethod]
    public void DpoOnExplicitPairsRaisesPreferenceAccuracy()
    {
        using var data = ColorPairs(12, ColorCaption);
        using var model = Model();
        using var trainer = new PreferenceTrainer(model, new PreferenceTrainerOptions
        {
            Objective = PreferenceObjective.Dpo, Beta = 0.5, SftWeight = 0, BatchSize = 6, Epochs = 5, LearningRate = 5e-3,
            Reference = ReferenceMode.Precomputed,
        });
        var history = trainer.Train(data);
        var after = trainer.Evaluate(data);
        Assert.AreEqual(Math.Log(2), history[0].Loss, 1e-5);
        Assert.IsTrue(after.Loss < 0.5, $"loss {after.Loss}");
        Assert.IsTrue(after.RewardsAccuracies > 0.5, $"accuracy {after.RewardsAccuracies}");
        Assert.IsTrue(after.RewardsMargins > 0);
    }

    [TestMethod]
    public void DetachRejectedTrainsOnlyTheChosenBranch()
    {
        // Identical sides: the SimPO gradients of the two branches cancel unless the rejected one is detached.
        using var data = PreferenceDataset.FromPairs(ColorImages(4), Enumerable.Repeat(ColorPrompt, 4).ToArray(),
            Enumerable.Range(0, 4).Select(ColorCaption).ToArray(), Enumerable.Range(0, 4).Select(ColorCaption).ToArray());
        double GradNorm(bool detach)
        {
            using var model = Model();
            using var trainer = new PreferenceTrainer(model, new PreferenceTrainerOptions
            {
                Objective = PreferenceObjective.SimPo, Beta = 2, Gamma = 0.5, SftWeight = 0, BatchSize = 4, DetachRejected = detach,
            });
            trainer.Train(data);
            using var scope = NewDisposeScope();
            return Math.Sqrt(model.parameters().Sum(p => p.grad is null ? 0 : p.grad.square().sum().item<float>()));
        }
        Assert.IsTrue(GradNorm(detach: false) < 1e-5);
        Assert.IsTrue(GradNorm(detach: true) > 1e-3);
    }

    [TestMethod]
    public void SftReportsCrossEntropyAndNoRewards()
    {
        using var data = ColorPairs(6, ColorCaption);
        using var model = Model();
        using var trainer = new PreferenceTrainer(model, new PreferenceTrainerOptions { Objective = PreferenceObjective.Sft, BatchSize = 3, Epochs = 4, LearningRate = 5e-3 });
        var history = trainer.Train(data);
        Assert.AreEqual(8, history.Count);
        Assert.AreEqual(history[0].SftLoss, history[0].Loss, 0.0);
        Assert.IsTrue(double.IsNaN(history[0].RewardsAccuracies) && double.IsNaN(history[0].LogpsRejected));
        var after = trainer.Evaluate(data);
        Assert.IsTrue(after.Loss < history[0].Loss - 0.5, $"CE {history[0].Loss} → {after.Loss}");
        // Token-mean CE over all chosen answers equals −Σ logps / Σ tokens; every answer has the same length here.
        int tokensPerAnswer = model.Tokenizer.Encode("a red shape.").Length + 1;
        Assert.AreEqual(-after.LogpsChosen / tokensPerAnswer, after.Loss, 1e-4);
    }

    [TestMethod]
    public void ResumedRunMatchesUninterruptedRun()
    {
        var options = new PreferenceTrainerOptions { Objective = PreferenceObjective.Dpo, Beta = 0.5, SftWeight = 0.5, BatchSize = 4, Epochs = 2, LearningRate = 5e-3, Seed = 3 };
        using var data = ColorPairs(8, ColorCaption);

        using var straightModel = Model();
        using (var straight = new PreferenceTrainer(straightModel, options, () => new TinyPatchEncoder()))
            straight.Train(data);

        string path = Path.Combine(Path.GetTempPath(), $"pref-ckpt-{Guid.NewGuid():N}.zip");
        try
        {
            using (var firstModel = Model())
            using (var first = new PreferenceTrainer(firstModel, options, () => new TinyPatchEncoder()))
            {
                using var cts = new CancellationTokenSource();
                Assert.ThrowsExactly<OperationCanceledException>(() => first.Train(data,
                    new SyncProgress<PreferenceStepMetrics>(m => { if (m.Step == 1) cts.Cancel(); }), cts.Token));
                Assert.AreEqual(1, first.Step);
                first.SaveCheckpoint(path);
            }
            using var resumedModel = Model();
            using var resumed = new PreferenceTrainer(resumedModel, options, () => new TinyPatchEncoder());
            resumed.LoadCheckpoint(path);
            Assert.AreEqual(1, resumed.Step);
            var history = resumed.Train(data);
            Assert.AreEqual(4, history.Count);

            var expected = Snapshot(straightModel).SelectMany(x => x).ToArray();
            var actual = Snapshot(resumedModel).SelectMany(x => x).ToArray();
            double maxDiff = expected.Zip(actual, (a, b) => Math.Abs(a - b)).Max();
            Assert.IsTrue(maxDiff < 1e-6, $"max |Δweight| = {maxDiff}");
        }
        finally { File.Delete(path); }
    }

    [TestMethod]
    public void MixingIsSeededAndRecordsLambda()
    {
        using var a = MixedPairs(10, lambda: 0.25f);
        using var b = MixedPairs(10, lambda: 0.25f);
        CollectionAssert.AreEqual(a.RejectedImages.data<float>().ToArray(), b.RejectedImages.data<float>().ToArray());
        CollectionAssert.AreEqual(Enumerable.Repeat(0.25f, 10).ToArray(), a.Lambdas!.ToArray());
        CollectionAssert.AreEqual(ColorImages(10).data<float>().ToArray(), a.ChosenImages.data<float>().ToArray());
        CollectionAssert.AreEqual(a.ChosenAnswers.ToArray(), a.RejectedAnswers.ToArray());
        // Every rejected image is a real blend: it differs from its raw image.
        for (int i = 0; i < 10; i++)
            Assert.IsFalse(a.ChosenImages[i].eq(a.RejectedImages[i]).all().item<bool>(), $"row {i}");
        var policy = new FakeBlendPolicy(0.5f);
        using var grouped = PreferenceDataset.FromMixing(ColorImages(10), Enumerable.Repeat(ColorPrompt, 10).ToArray(),
            Enumerable.Range(0, 10).Select(ColorCaption).ToArray(), policy, seed: 1, groupSize: 4);
        Assert.AreEqual(2, policy.Calls, "10 rows in groups of 4: the remainder of 2 joins the last group");
    }

    [TestMethod]
    public void DegeneratePairsWarnInsteadOfFailing()
    {
        var warnings = new List<string>();
        using var data = PreferenceDataset.FromPairs(ColorImages(3), new[] { ColorPrompt, ColorPrompt, ColorPrompt },
            new[] { "a red shape.", "a green shape.", "a blue shape." }, new[] { "a blue shape.", "a green shape.", "a red shape." }, warnings.Add);
        Assert.AreEqual(1, warnings.Count);
        StringAssert.StartsWith(warnings[0], "pair 1:");
        Assert.AreEqual(3, data.Count);
    }

    [TestMethod]
    public void BadInputsGiveClearErrors()
    {
        using var model = Model();
        using var trainer = new PreferenceTrainer(model, new PreferenceTrainerOptions { Objective = PreferenceObjective.SimPo });

        using var emptyAnswer = PreferenceDataset.FromPairs(ColorImages(2), new[] { ColorPrompt, ColorPrompt }, new[] { "a red shape.", "" }, new[] { "a blue shape.", "a red shape." });
        var e1 = Assert.ThrowsExactly<ArgumentException>(() => trainer.Train(emptyAnswer));
        Assert.AreEqual("data", e1.ParamName);
        StringAssert.Contains(e1.Message, "answers[1] is empty");

        string longPrompt = string.Join(" ", Enumerable.Repeat("what color is the shape?", 4));
        using var tooLong = PreferenceDataset.FromPairs(ColorImages(1), new[] { longPrompt }, new[] { "a red shape." }, new[] { "a blue shape." });
        var e2 = Assert.ThrowsExactly<ArgumentException>(() => trainer.Train(tooLong));
        StringAssert.Contains(e2.Message, "MaxTextLength = 16");

        var e3 = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => MixedPairs(4, lambda: 1.3f));
        Assert.AreEqual("policy", e3.ParamName);
        StringAssert.Contains(e3.Message, "fake-blend");

        using var mixedTrainer = new PreferenceTrainer(model, new PreferenceTrainerOptions { Objective = PreferenceObjective.MixedSimPo });
        using var explicitPairs = ColorPairs(3, ColorCaption);
        StringAssert.Contains(Assert.ThrowsExactly<ArgumentException>(() => mixedTrainer.Train(explicitPairs)).Message, "FromMixing");

        Assert.AreEqual("Beta", Assert.ThrowsExactly<ArgumentOutOfRangeException>(
            () => new PreferenceTrainer(model, new PreferenceTrainerOptions { Beta = 0 })).ParamName);
        Assert.AreEqual("LabelSmoothing", Assert.ThrowsExactly<ArgumentOutOfRangeException>(
            () => new PreferenceTrainer(model, new PreferenceTrainerOptions { LabelSmoothing = 0.5 })).ParamName);
        Assert.AreEqual("BatchSize", Assert.ThrowsExactly<ArgumentOutOfRangeException>(
            () => new PreferenceTrainer(model, new PreferenceTrainerOptions { BatchSize = 0 })).ParamName);
        Assert.AreEqual("Device", Assert.ThrowsExactly<ArgumentException>(
            () => new PreferenceTrainer(model, new PreferenceTrainerOptions { Device = "tpu" })).ParamName);
    }
}
