using MergeMix.ML.Alignment;
using Microsoft.ML;
using Microsoft.ML.Data;
using TorchSharp;
using static TorchSharp.torch;

namespace MergeMix.ML.Tests.Alignment;

/// <summary>Top-k / top-p sampling, prompt templates, and the estimator's step/phase fields.</summary>
[TestClass]
public sealed class GenerationOptionsTests
{
    private static float[] Filtered(float[] probabilities, double temperature, int topK, double topP)
    {
        using var scope = NewDisposeScope();
        var logits = tensor(probabilities.Select(p => MathF.Log(p)).ToArray(), new long[] { 1, probabilities.Length });
        return SamplingFilter.Apply(logits, temperature, topK, topP).softmax(-1).data<float>().ToArray();
    }

    [TestMethod]
    public void TopKAndTopPKeepTheExpectedTokens()
    {
        float[] p = { 0.5f, 0.3f, 0.15f, 0.05f };
        CollectionAssert.AreEqual(new[] { 0.625f, 0.375f, 0f, 0f }, Filtered(p, 1, topK: 2, topP: 1).Select(x => MathF.Round(x, 5)).ToArray());
        // Ascending cumulative mass 0.05, 0.20, 0.50, 1: top_p = 0.7 removes what stays ≤ 0.3 (the two least likely).
        CollectionAssert.AreEqual(new[] { 0.625f, 0.375f, 0f, 0f }, Filtered(p, 1, topK: 0, topP: 0.7).Select(x => MathF.Round(x, 5)).ToArray());
        var nucleus = Filtered(p, 1, topK: 0, topP: 0.9);
        Assert.AreEqual(0f, nucleus[3]);
        Assert.AreEqual(0.5f / 0.95f, nucleus[0], 1e-6f);
        // A tiny top_p keeps only the most likely token; temperature 2 flattens before filtering.
        CollectionAssert.AreEqual(new[] { 1f, 0f, 0f, 0f }, Filtered(p, 1, 0, 1e-6));
        var hot = Filtered(p, 2, 0, 1);
        Assert.AreEqual(MathF.Sqrt(0.5f) / p.Sum(x => MathF.Sqrt(x)), hot[0], 1e-6f);
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => Filtered(p, 1, -1, 1));
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => Filtered(p, 1, 0, 0));
    }

    [TestMethod]
    public void SeededSamplingRepeatsAndTopKOneIsGreedy()
    {
        var tok = MultimodalTokenizer.CreateFromCorpus(new[] { "a red circle.", "a blue square on the left.", "what is it?", "two green triangles." });
        using var model = new MultimodalLm(new TinyPatchEncoder(), tok, new MultimodalLmOptions { ModelDim = 32, Layers = 1, Heads = 2, MaxTextLength = 16, InitSeed = 4 });
        using var images = rand(new long[] { 3, 3, 8, 8 }, generator: new Generator(9));
        var prompts = Enumerable.Repeat(TextBatch.PromptIds(tok, "what is it?"), 3).ToArray();
        int[][] Sample(ulong seed, int topK, double topP)
        {
            using var g = new Generator(seed);
            return model.Generate(images, prompts, 8, temperature: 1.0, generator: g, stopId: tok.PadId, topK: topK, topP: topP);
        }
        var greedy = model.Generate(images, prompts, 8, stopId: tok.PadId);
        CollectionAssert.AreEqual(greedy.SelectMany(x => x).ToArray(), Sample(1, topK: 1, topP: 1).SelectMany(x => x).ToArray(), "top-k = 1 is greedy");
        CollectionAssert.AreEqual(greedy.SelectMany(x => x).ToArray(), Sample(2, topK: 0, topP: 1e-6).SelectMany(x => x).ToArray(), "a tiny top-p is greedy");
        foreach (var (k, p) in new[] { (5, 1.0), (0, 0.9), (8, 0.8) })
        {
            var first = Sample(11, k, p).SelectMany(x => x).ToArray();
            CollectionAssert.AreEqual(first, Sample(11, k, p).SelectMany(x => x).ToArray(), $"top-k {k}, top-p {p}: same seed, same tokens");
            CollectionAssert.AreNotEqual(first, Sample(12, k, p).SelectMany(x => x).ToArray(), $"top-k {k}, top-p {p}: another seed, other tokens");
        }
    }

    [TestMethod]
    public void ChatTemplateTrainsGeneratesAndPersistsWithGlobalSteps()
    {
        var ml = new MLContext(seed: 0);
        var rows = PreferenceTuningEstimatorTests.Rows();
        var data = ml.Data.LoadFromEnumerable(rows);
        var options = PreferenceTuningEstimatorTests.TinyOptions();
        options.PromptTemplate = PromptTemplate.Chat;
        options.Model.MaxTextLength = 24;
        options.TopK = 3;
        options.TopP = 0.9;
        using var model = ml.Alignment().PreferenceTuning(options).Fit(data);

        // Steps count on across phases: 6 SFT steps, then the preference steps 7..9 (TRL's global step), with the phase named.
        CollectionAssert.AreEqual(Enumerable.Range(1, 9).Select(i => (long)i).ToArray(),
            model.History.Sft.Concat(model.History.Preference).Select(m => m.GlobalStep).ToArray());
        Assert.IsTrue(model.History.Sft.All(m => m.Phase == "sft") && model.History.Preference.All(m => m.Phase == "mixed_simpo"));
        Assert.AreEqual(1, model.History.Preference[0].Step, "Step stays the phase's own count");

        // The roles are single tokens, and generation formats the prompt as training did.
        var tok = model.Model.Tokenizer;
        Assert.IsTrue(PromptTemplate.Chat.SpecialTokens.All(tok.IsSingleToken));
        using var image = tensor(rows[0].Features, new long[] { 1, 3, 16, 16 });
        var expected = model.Model.GenerateText(image, new[] { rows[0].Prompt }, 6, template: PromptTemplate.Chat)[0];
        var responses = model.Transform(data).GetColumn<string>("Response").ToArray();
        Assert.AreEqual(expected, responses[0]);

        using var stream = new MemoryStream();
        model.Save(stream);
        stream.Position = 0;
        using var loaded = PreferenceTuningTransformer.Load(stream);
        Assert.AreEqual(PromptTemplate.Chat.Format, loaded.PromptTemplate.Format);
        Assert.AreEqual(3, loaded.TopK);
        Assert.AreEqual(0.9, loaded.TopP);
        CollectionAssert.AreEqual(responses, loaded.Transform(data).GetColumn<string>("Response").ToArray());
    }

    [TestMethod]
    public void ValidationSetIsScoredAfterEveryEpochWithEvalNames()
    {
        var ml = new MLContext(seed: 0);
        var rows = PreferenceTuningEstimatorTests.Rows();
        var options = PreferenceTuningEstimatorTests.TinyOptions();
        options.ValidationSet = ml.Data.LoadFromEnumerable(rows.Take(8));
        var reported = new List<PreferenceStepMetrics>();
        options.Progress = new SyncProgress<PreferenceStepMetrics>(reported.Add);
        using var model = ml.Alignment().PreferenceTuning(options).Fit(ml.Data.LoadFromEnumerable(rows));

        // 2 SFT epochs + 1 mixed-SimPO epoch: three evaluations, at the global steps that end each epoch.
        var evaluations = model.History.Evaluations;
        CollectionAssert.AreEqual(new long[] { 3, 6, 9 }, evaluations.Select(e => e.GlobalStep).ToArray());
        CollectionAssert.AreEqual(new[] { "sft", "sft", "mixed_simpo" }, evaluations.Select(e => e.Phase).ToArray());
        Assert.IsTrue(evaluations.All(e => e.IsEvaluation && double.IsFinite(e.Loss)));
        Assert.AreEqual(12, reported.Count, "9 steps and 3 evaluations reach Progress");
        var names = evaluations[^1].ToDictionary();
        Assert.IsTrue(names.Keys.All(k => k.StartsWith("eval_", StringComparison.Ordinal)));
        Assert.IsTrue(double.IsFinite(names["eval_rewards/margins"]) && double.IsNaN(evaluations[0].RewardsMargins));
        // The SFT evaluation is the CE of the validation answers, not of the training ones.
        Assert.AreNotEqual(model.History.Sft[^1].SftLoss, evaluations[1].SftLoss);
    }
}
