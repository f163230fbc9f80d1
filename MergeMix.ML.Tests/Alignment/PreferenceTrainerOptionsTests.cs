using MergeMix.ML.Alignment;
using TorchSharp;
using static TorchSharp.torch;
using static MergeMix.ML.Tests.Alignment.PreferenceFixtures;

namespace MergeMix.ML.Tests.Alignment;

/// <summary>The TRL-style trainer options: schedules, accumulation, truncation, loss selection, metrics.</summary>
[TestClass]
public sealed class PreferenceTrainerOptionsTests
{
    private const string LongAnswer = "a very long answer about the shape.";

    private static MultimodalLm Model(int maxTextLength = 16) => ColorModel(ColorTokenizer(LongAnswer), maxTextLength);

    // Answers of different lengths, so that per-step token normalisation matters for accumulation.
    private static string MixedLengthCaption(int i) => i % 4 == 3 ? LongAnswer : ColorCaption(i);

    private static float[] Weights(nn.Module m) => m.parameters().SelectMany(p => p.detach().cpu().data<float>().ToArray()).ToArray();

    [TestMethod]
    public void SchedulesMatchHuggingFaceValues()
    {
        // 10 steps, 2 of warm-up: 0, 0.5, then decay over the 8 remaining steps.
        double F(LearningRateSchedule s, long step) => LearningRateSchedules.Factor(s, step, totalSteps: 10, warmupSteps: 2);
        Assert.AreEqual(0.0, F(LearningRateSchedule.Linear, 0), 0.0);
        Assert.AreEqual(0.5, F(LearningRateSchedule.Cosine, 1), 0.0);
        Assert.AreEqual(1.0, F(LearningRateSchedule.Linear, 2), 0.0);
        Assert.AreEqual(6.0 / 8, F(LearningRateSchedule.Linear, 4), 1e-15);
        Assert.AreEqual(1.0 / 8, F(LearningRateSchedule.Linear, 9), 1e-15);
        Assert.AreEqual(1.0, F(LearningRateSchedule.Cosine, 2), 1e-15);
        Assert.AreEqual(0.5, F(LearningRateSchedule.Cosine, 6), 1e-15);
        Assert.AreEqual(0.5 * (1 + Math.Cos(Math.PI * 7 / 8)), F(LearningRateSchedule.Cosine, 9), 1e-15);
        Assert.AreEqual(1.0, F(LearningRateSchedule.Constant, 9), 0.0);
        Assert.AreEqual(1.0, LearningRateSchedules.Factor(LearningRateSchedule.Constant, 0, 10, 0), 0.0);
        // Hugging Face's warmup_ratio rounds up; WarmupSteps wins when set.
        Assert.AreEqual(3, new PreferenceTrainerOptions { WarmupRatio = 0.1 }.WarmupStepsFor(21));
        Assert.AreEqual(5, new PreferenceTrainerOptions { WarmupRatio = 0.1, WarmupSteps = 5 }.WarmupStepsFor(21));
    }

    [TestMethod]
    public void TrainerLogsTheScheduledLearningRate()
    {
        using var data = ColorPairs(8, MixedLengthCaption);
        using var model = Model();
        using var trainer = new PreferenceTrainer(model, new PreferenceTrainerOptions
        {
            Objective = PreferenceObjective.Sft, BatchSize = 2, Epochs = 2, LearningRate = 1e-3, Schedule = LearningRateSchedule.Linear, WarmupSteps = 2,
        });
        var history = trainer.Train(data);
        var expected = Enumerable.Range(0, 8).Select(s => 1e-3 * LearningRateSchedules.Factor(LearningRateSchedule.Linear, s, 8, 2)).ToArray();
        CollectionAssert.AreEqual(expected, history.Select(h => h.LearningRate).ToArray());
        Assert.IsTrue(history.All(h => h.GradNorm > 0 && double.IsFinite(h.GradNorm)));
        // num_tokens is cumulative, as TRL logs it.
        Assert.IsTrue(history.Zip(history.Skip(1)).All(p => p.Second.NumTokens > p.First.NumTokens));
    }

    [TestMethod]
    public void AccumulatedMicroBatchesEqualOneBigBatch()
    {
        foreach (var objective in new[] { PreferenceObjective.Rpo, PreferenceObjective.SimPo })
        {
            float[] Train(int batchSize, int accumulation)
            {
                using var data = ColorPairs(12, MixedLengthCaption);
                using var model = Model();
                using var trainer = new PreferenceTrainer(model, new PreferenceTrainerOptions
                {
                    Objective = objective, Beta = 0.5, Reference = ReferenceMode.Precomputed, BatchSize = batchSize,
                    GradientAccumulationSteps = accumulation, Epochs = 2, LearningRate = 1e-5, Seed = 3,
                });
                var history = trainer.Train(data);
                Assert.AreEqual(2 * 12 / (batchSize * accumulation), history.Count);
                return Weights(model);
            }
            using var initial = Model();
            var start = Weights(initial);
            var big = Train(6, 1);
            var accumulated = Train(2, 3);
            double moved = big.Zip(start).Max(p => Math.Abs(p.First - p.Second));
            double gap = big.Zip(accumulated).Max(p => Math.Abs(p.First - p.Second));
            Assert.IsTrue(moved > 1e-5, $"{objective}: the weights moved only {moved}");
            Assert.IsTrue(gap <= 1e-6, $"{objective}: 3 × 2 accumulated pairs differ from one batch of 6 by {gap}");
        }
    }

    [TestMethod]
    public void TruncationKeepsTheMarkerAndTheChosenEnd()
    {
        int[] prompt = { 9, 1, 2, 3, 4, 5 };
        int[] answer = { 6, 7, 8 };
        var keepEnd = TextBatch.Truncate(prompt, answer, maxLength: 6, maxPromptLength: 3, TruncationMode.KeepEnd);
        CollectionAssert.AreEqual(new[] { 9, 4, 5 }, keepEnd.Prompt);
        CollectionAssert.AreEqual(new[] { 6, 7, 8 }, keepEnd.Answer);
        var keepStart = TextBatch.Truncate(prompt, answer, maxLength: 6, maxPromptLength: 3, TruncationMode.KeepStart);
        CollectionAssert.AreEqual(new[] { 9, 1, 2 }, keepStart.Prompt);
        // The answer is cut (keeping its start) only when it does not fit after the prompt.
        var cutAnswer = TextBatch.Truncate(new[] { 9, 1 }, new[] { 5, 6, 7, 8, 0 }, maxLength: 5, maxPromptLength: 2, TruncationMode.KeepEnd);
        CollectionAssert.AreEqual(new[] { 9, 1 }, cutAnswer.Prompt);
        CollectionAssert.AreEqual(new[] { 5, 6, 7 }, cutAnswer.Answer);
        var fits = TextBatch.Truncate(prompt, answer, maxLength: 9, maxPromptLength: 3, TruncationMode.KeepEnd);
        Assert.AreSame(prompt, fits.Prompt);
        Assert.AreSame(answer, TextBatch.Truncate(prompt, answer, 6, 3, TruncationMode.Error).Answer);
    }

    [TestMethod]
    public void TruncationModesInTheTrainer()
    {
        // Context of 8 tokens: "<image> what color is the shape?" and the long answer do not fit together.
        using var data = ColorPairs(4, MixedLengthCaption);
        using var model = Model(maxTextLength: 8);
        var error = Assert.ThrowsExactly<ArgumentException>(() =>
        {
            using var t = new PreferenceTrainer(model, new PreferenceTrainerOptions { Objective = PreferenceObjective.Sft, BatchSize = 4 });
            t.Train(data);
        });
        StringAssert.Contains(error.Message, "truncation mode");
        foreach (var mode in new[] { TruncationMode.KeepEnd, TruncationMode.KeepStart })
        {
            using var trainer = new PreferenceTrainer(model, new PreferenceTrainerOptions
            {
                Objective = PreferenceObjective.SimPo, BatchSize = 4, Truncation = mode, MaxPromptLength = 3,
            });
            var step = trainer.Train(data).Single();
            Assert.IsTrue(trainer.TruncatedRows > 0, $"{mode}: nothing was truncated");
            Assert.IsTrue(double.IsFinite(step.Loss));
        }
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => new PreferenceTrainer(model, new PreferenceTrainerOptions { MaxLength = 9 }));
        var ex = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => new PreferenceTrainerOptions { MaxLength = 8, MaxPromptLength = 8 }.Validate());
        Assert.AreEqual(nameof(PreferenceTrainerOptions.MaxPromptLength), ex.ParamName);
    }

    [TestMethod]
    public void EachObjectiveSelectsItsLossAtPolicyEqualsReference()
    {
        // Before the first step policy = reference, so h = 0: every DPO-family loss has a closed form.
        double ln2 = Math.Log(2);
        var cases = new (PreferenceObjective Objective, double LabelSmoothing, Func<double, double> Expected)[]
        {
            (PreferenceObjective.Dpo, 0, _ => ln2),
            (PreferenceObjective.Dpo, 0.1, _ => ln2),
            (PreferenceObjective.RobustDpo, 0.1, _ => (0.9 * ln2 - 0.1 * ln2) / 0.8),
            (PreferenceObjective.DpoLengthNormalized, 0, _ => ln2),
            (PreferenceObjective.Hinge, 0, _ => 1.0),
            (PreferenceObjective.Ipo, 0, _ => Math.Pow(1 / (2 * 0.5), 2)),
            (PreferenceObjective.IpoSummed, 0, _ => Math.Pow(1 / (2 * 0.5), 2)),
            (PreferenceObjective.Rpo, 0, ce => ln2 + ce),
        };
        using var data = ColorPairs(6, MixedLengthCaption);
        foreach (var (objective, smoothing, expected) in cases)
        {
            using var model = Model();
            using var trainer = new PreferenceTrainer(model, new PreferenceTrainerOptions
            {
                Objective = objective, Beta = 0.5, LabelSmoothing = smoothing, Reference = ReferenceMode.Precomputed, BatchSize = 6,
            });
            var m = trainer.Evaluate(data);
            Assert.AreEqual(expected(m.SftLoss), m.Loss, 1e-5, $"{objective} ε = {smoothing}");
            Assert.AreEqual(0.0, m.RewardsAccuracies, 0.0, $"{objective}: strict accuracy is 0 at step 0");
        }
    }

    [TestMethod]
    public void SftWeightDefaultsFollowTrl()
    {
        Assert.AreEqual(0.0, new PreferenceTrainerOptions { Objective = PreferenceObjective.Dpo }.EffectiveSftWeight);
        Assert.AreEqual(0.0, new PreferenceTrainerOptions { Objective = PreferenceObjective.Ipo }.EffectiveSftWeight);
        Assert.AreEqual(0.0, new PreferenceTrainerOptions { Objective = PreferenceObjective.Hinge }.EffectiveSftWeight);
        Assert.AreEqual(0.0, new PreferenceTrainerOptions { Objective = PreferenceObjective.SimPo }.EffectiveSftWeight);
        Assert.AreEqual(1.0, new PreferenceTrainerOptions { Objective = PreferenceObjective.Rpo }.EffectiveSftWeight);
        Assert.AreEqual(1.0, new PreferenceTrainerOptions { Objective = PreferenceObjective.MixedSimPo }.EffectiveSftWeight);
        Assert.AreEqual(0.5, new PreferenceTrainerOptions { Objective = PreferenceObjective.Dpo, SftWeight = 0.5 }.EffectiveSftWeight);
        var ex = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() =>
            new PreferenceTrainerOptions { Objective = PreferenceObjective.Hinge, LabelSmoothing = 0.1 }.Validate());
        Assert.AreEqual(nameof(PreferenceTrainerOptions.LabelSmoothing), ex.ParamName);
    }

    [TestMethod]
    public void SimPoLogsAveragedLogpsAndLogits()
    {
        using var data = ColorPairs(6, MixedLengthCaption);
        using var model = Model();
        using var simpo = new PreferenceTrainer(model, new PreferenceTrainerOptions { Objective = PreferenceObjective.SimPo, Beta = 2, BatchSize = 6 });
        using var dpo = new PreferenceTrainer(model, new PreferenceTrainerOptions
        {
            Objective = PreferenceObjective.Dpo, Reference = ReferenceMode.Precomputed, BatchSize = 6,
        });
        var averaged = simpo.Evaluate(data);
        var summed = dpo.Evaluate(data);
        // SimPO rewards are β·A, so logps/chosen (averaged) is rewards/chosen / β; DPO's logps are sums, larger in magnitude.
        Assert.AreEqual(averaged.RewardsChosen / 2, averaged.LogpsChosen, 1e-5);
        Assert.IsTrue(summed.LogpsChosen < averaged.LogpsChosen * 2, $"{summed.LogpsChosen} vs {averaged.LogpsChosen}");
        Assert.IsTrue(double.IsFinite(averaged.LogitsChosen) && double.IsFinite(averaged.LogitsRejected));
        Assert.AreEqual(averaged.LogitsChosen, summed.LogitsChosen, 1e-6);
    }

    [TestMethod]
    public void PrecomputedReferenceIsKeptPerDataset()
    {
        // Two datasets of the same size: the second must get its own reference values, not the first's.
        using var first = ColorPairs(6, MixedLengthCaption);
        using var second = PreferenceDataset.FromPairs(ColorImages(6), Enumerable.Repeat(ColorPrompt, 6).ToArray(),
            Enumerable.Range(0, 6).Select(i => MixedLengthCaption(i + 2)).ToArray(), Enumerable.Range(0, 6).Select(MixedLengthCaption).ToArray());
        using var third = ColorPairs(5, MixedLengthCaption);
        using var model = Model();
        using var trainer = new PreferenceTrainer(model, new PreferenceTrainerOptions
        {
            Objective = PreferenceObjective.Dpo, Reference = ReferenceMode.Precomputed, BatchSize = 6, LearningRate = 1e-2,
        });
        Assert.AreEqual(Math.Log(2), trainer.Evaluate(first).Loss, 1e-5);
        Assert.AreEqual(Math.Log(2), trainer.Evaluate(second).Loss, 1e-5, "policy = reference on the second dataset too");
        trainer.Train(first);
        Assert.IsTrue(double.IsFinite(trainer.Evaluate(second).Loss));
        StringAssert.Contains(Assert.ThrowsExactly<InvalidOperationException>(() => trainer.Evaluate(third)).Message, "PrecomputeReference");
    }
}
