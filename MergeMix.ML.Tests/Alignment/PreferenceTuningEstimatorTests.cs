using MergeMix.ML.Alignment;
using MergeMix.ML.Data;
using MergeMix.ML.Mixing;
using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace MergeMix.ML.Tests.Alignment;

/// <summary>Test mixing policy returning a fixed (possibly invalid) λ and blending with the next row.</summary>
internal sealed class FixedLambdaPolicy(float lambda) : IMixPolicy
{
    public string Name => "fixed-lambda";
    public bool NeedsAttention => false;

    public MixResult Mix(Tensor images, Tensor labels, int classCount, Generator generator, IAttentionSource? attention = null)
    {
        long b = images.shape[0];
        var partner = (arange(b, dtype: ScalarType.Int64) + 1).remainder(b);
        var mixed = 0.5f * (images + images.index_select(0, partner));
        var soft = full(b, classCount, 1f / classCount);
        return new MixResult(mixed, partner, full(b, lambda, ScalarType.Float32), soft, null);
    }
}

[TestClass]
public sealed class PreferenceTuningEstimatorTests
{
    internal sealed class Row
    {
        [VectorType(3, 16, 16)] public float[] Features { get; set; } = Array.Empty<float>();
        public string Prompt { get; set; } = "";
        public string Answer { get; set; } = "";
        public string Rejected { get; set; } = "";
    }

    private sealed class Output
    {
        public string Response { get; set; } = "";
        public float ResponseLogProb { get; set; }
    }

    // 6 synthetic 16×16 scenes, two rows each (caption and colour question): 12 rows.
    internal static Row[] Rows()
    {
        var (images, scenes) = SyntheticShapes.Generate(6, seed: 3, new SyntheticShapesOptions { Width = 16, Height = 16, MaxObjects = 1 });
        var rows = new List<Row>();
        for (int i = 0; i < scenes.Count; i++)
        {
            var q = scenes[i].Questions()[0];
            string wrong = SyntheticShapes.ColourNames.First(c => c != scenes[i].Colour);
            rows.Add(new Row { Features = images.Image(i).ToArray(), Prompt = "describe the image", Answer = scenes[i].Caption, Rejected = scenes[i].Caption.Replace(scenes[i].Colour, wrong) });
            rows.Add(new Row { Features = images.Image(i).ToArray(), Prompt = q.Question, Answer = q.Answer, Rejected = wrong });
        }
        return rows.ToArray();
    }

    internal static PreferenceTuningEstimator.Options TinyOptions()
    {
        var options = PreferenceFixtures.TinyEstimator(sftEpochs: 2, preferenceEpochs: 1, maxNewTokens: 6);
        options.MixGroupSize = 4;
        return options;
    }

    private static (MLContext Ml, List<LogMessage> Log) Context()
    {
        var ml = new MLContext(seed: 0);
        var log = new List<LogMessage>();
        ml.Log += (_, e) => { if (e.Source.StartsWith("PreferenceTuning", StringComparison.Ordinal)) lock (log) log.Add(new LogMessage(e.Kind, e.RawMessage)); };
        return (ml, log);
    }

    private sealed record LogMessage(ChannelMessageKind Kind, string Text);

    private static float[] Weights(nn.Module model) => model.parameters().SelectMany(p => p.detach().cpu().data<float>().ToArray()).ToArray();

    [TestMethod]
    public void FitTrainsBothPhasesAndTransformAddsGeneratedAndScoredColumns()
    {
        var (ml, log) = Context();
        var rows = Rows();
        var data = ml.Data.LoadFromEnumerable(rows);
        var options = TinyOptions();
        options.ScoreResponseColumnName = "Answer";
        var steps = new List<PreferenceStepMetrics>();
        options.Progress = new SyncProgress<PreferenceStepMetrics>(steps.Add);
        using var model = ml.Alignment().PreferenceTuning(options).Fit(data);

        // 12 rows in batches of 4: 3 steps per epoch; 2 SFT epochs then 1 mixed-SimPO epoch.
        Assert.AreEqual(6, model.History.Sft.Count);
        Assert.AreEqual(3, model.History.Preference.Count);
        Assert.AreEqual(9, steps.Count);
        Assert.AreEqual(PreferenceObjective.MixedSimPo, model.History.Objective);
        var names = model.History.Preference[0].ToDictionary().Keys.ToArray();
        CollectionAssert.IsSubsetOf(new[] { "loss", "rewards/chosen", "rewards/rejected", "rewards/margins", "rewards/accuracies", "logps/chosen", "logps/rejected" }, names);
        Assert.IsTrue(model.History.Preference.All(m => double.IsFinite(m.RewardsMargins) && double.IsFinite(m.Loss)));
        Assert.IsTrue(double.IsNaN(model.History.Sft[0].RewardsMargins), "SFT steps have no rewards");
        Assert.AreEqual(2, log.Count(m => m.Kind == ChannelMessageKind.Info && m.Text.StartsWith("SFT epoch", StringComparison.Ordinal)));
        var preferenceLine = log.Single(m => m.Text.StartsWith("MixedSimPo epoch 1/1", StringComparison.Ordinal)).Text;
        StringAssert.Contains(preferenceLine, "rewards/margins");

        var output = model.Transform(data);
        var responses = output.GetColumn<string>("Response").ToArray();
        var logProbs = output.GetColumn<float>("ResponseLogProb").ToArray();
        Assert.AreEqual(rows.Length, responses.Length);
        using var scope = NewDisposeScope();
        for (int i = 0; i < rows.Length; i += 5)
        {
            var image = tensor(rows[i].Features, new long[] { 1, 3, 16, 16 });
            Assert.AreEqual(model.Model.GenerateText(image, new[] { rows[i].Prompt }, 6)[0], responses[i], $"row {i}");
            using var texts = TextBatch.Build(model.Model.Tokenizer, new[] { rows[i].Prompt }, new[] { rows[i].Answer }, 20);
            float expected = SequenceLogProbs.Compute(model.Model.forward(image, texts.InputIds), texts.Labels).Average().item<float>();
            Assert.AreEqual(expected, logProbs[i], 1e-4, $"row {i}");
        }

        var engine = ml.Model.CreatePredictionEngine<Row, Output>(model);
        for (int i = 0; i < rows.Length; i += 5)
        {
            var p = engine.Predict(rows[i]);
            Assert.AreEqual(responses[i], p.Response, $"row {i}");
            Assert.AreEqual(logProbs[i], p.ResponseLogProb, 1e-4, $"row {i}");
        }
    }

    [TestMethod]
    public void SaveLoadKeepsResponsesAndModelSaveIsRefused()
    {
        var (ml, _) = Context();
        var data = ml.Data.LoadFromEnumerable(Rows());
        var options = TinyOptions();
        options.PreferenceEpochs = 0;
        using var model = ml.Alignment().PreferenceTuning(options).Fit(data);
        var before = model.Transform(data).GetColumn<string>("Response").ToArray();
        using var stream = new MemoryStream();
        model.Save(stream);
        stream.Position = 0;
        using var loaded = PreferenceTuningTransformer.Load(stream);
        CollectionAssert.AreEqual(before, loaded.Transform(data).GetColumn<string>("Response").ToArray());
        Assert.AreEqual(6, loaded.History.Sft.Count);
        Assert.AreEqual(6, loaded.MaxNewTokens);
        // Sampling is seeded: the same Seed gives the same responses on every Transform.
        loaded.Temperature = 1.5;
        var sampled = loaded.Transform(data).GetColumn<string>("Response").ToArray();
        CollectionAssert.AreEqual(sampled, loaded.Transform(data).GetColumn<string>("Response").ToArray());
        Assert.AreEqual("Temperature", Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => loaded.Temperature = -1).ParamName);
        StringAssert.Contains(Assert.ThrowsExactly<NotSupportedException>(() => ml.Model.Save(model, data.Schema, new MemoryStream())).Message,
            "transformer.Save(path)");
    }

    [TestMethod]
    public void ExplicitPairsTrainWithDpoAndWarnAboutIdenticalSides()
    {
        var (ml, log) = Context();
        var rows = Rows();
        rows[3].Rejected = rows[3].Answer;
        var options = TinyOptions();
        options.ChosenColumnName = "Answer";
        options.RejectedColumnName = "Rejected";
        options.SftEpochs = 1;
        options.Trainer.Objective = PreferenceObjective.Dpo;
        options.Trainer.Beta = 0.1;
        using var model = ml.Alignment().PreferenceTuning(options).Fit(ml.Data.LoadFromEnumerable(rows));
        Assert.AreEqual(3, model.History.Preference.Count);
        // DPO's first step compares the policy with its own copy: every reward is 0 and the loss is ln 2 (+ SFT term).
        Assert.AreEqual(0.0, model.History.Preference[0].RewardsMargins, 1e-6);
        var warning = log.Single(m => m.Kind == ChannelMessageKind.Warning);
        StringAssert.Contains(warning.Text, "Row 3");
        StringAssert.Contains(warning.Text, "no preference signal");
    }

    [TestMethod]
    public void MissingOrMistypedColumnsAreNamed()
    {
        var (ml, _) = Context();
        var data = ml.Data.LoadFromEnumerable(Rows());
        var noPrompt = TinyOptions();
        noPrompt.PromptColumnName = "Question";
        var e = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => ml.Alignment().PreferenceTuning(noPrompt).Fit(data));
        Assert.AreEqual("PromptColumnName", e.ParamName);
        StringAssert.Contains(e.Message, "'Question'");
        // In a chain the schema check (GetOutputSchema on the SchemaShape) fails before anything is fitted.
        var chain = ml.Transforms.CopyColumns("Copy", "Features").Append(ml.Alignment().PreferenceTuning(noPrompt));
        StringAssert.Contains(Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => chain.Fit(data)).StackTrace, "GetOutputSchema(SchemaShape");
        var imageAsAnswer = TinyOptions();
        imageAsAnswer.AnswerColumnName = "Features";
        StringAssert.Contains(Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => ml.Alignment().PreferenceTuning(imageAsAnswer).Fit(data)).Message,
            "must be a scalar Text column");
        var noImage = TinyOptions();
        noImage.ImageColumnName = "Pixels";
        StringAssert.Contains(Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => ml.Alignment().PreferenceTuning(noImage).Fit(data)).Message,
            "'Pixels' not found");
        var halfPair = TinyOptions();
        halfPair.ChosenColumnName = "Answer";
        Assert.AreEqual("RejectedColumnName", Assert.ThrowsExactly<ArgumentException>(() => ml.Alignment().PreferenceTuning(halfPair)).ParamName);
        var mixedWithPairs = TinyOptions();
        mixedWithPairs.ChosenColumnName = "Answer";
        mixedWithPairs.RejectedColumnName = "Rejected";
        Assert.AreEqual("Trainer", Assert.ThrowsExactly<ArgumentException>(() => ml.Alignment().PreferenceTuning(mixedWithPairs)).ParamName);
    }

    [TestMethod]
    public void BadRowsGiveErrorsNamingColumnAndRow()
    {
        var (ml, _) = Context();
        var empty = Rows();
        empty[2].Answer = " ";
        var e = Assert.ThrowsExactly<ArgumentException>(() => ml.Alignment().PreferenceTuning(TinyOptions()).Fit(ml.Data.LoadFromEnumerable(empty)));
        Assert.AreEqual("AnswerColumnName", e.ParamName);
        StringAssert.Contains(e.Message, "row 2: the answer is empty");

        var longPrompt = Rows();
        longPrompt[1].Prompt = string.Join(" ", Enumerable.Repeat("what colour is the shape", 6));
        e = Assert.ThrowsExactly<ArgumentException>(() => ml.Alignment().PreferenceTuning(TinyOptions()).Fit(ml.Data.LoadFromEnumerable(longPrompt)));
        Assert.AreEqual("MaxTextLength", e.ParamName);
        StringAssert.Contains(e.Message, "row 1: the prompt needs");

        var unknown = Rows();
        unknown[4].Answer = "a zebra";
        var withTokenizer = TinyOptions();
        withTokenizer.Tokenizer = MultimodalTokenizer.CreateFromCorpus(Rows().SelectMany(r => new[] { r.Prompt, r.Answer }));
        e = Assert.ThrowsExactly<ArgumentException>(() => ml.Alignment().PreferenceTuning(withTokenizer).Fit(ml.Data.LoadFromEnumerable(unknown)));
        Assert.AreEqual("AnswerColumnName", e.ParamName);
        StringAssert.Contains(e.Message, "Column 'Answer' (AnswerColumnName), row 4");
        StringAssert.Contains(e.Message, "cannot encode");
    }

    [TestMethod]
    public void LambdaOutsideTheUnitIntervalIsRejected()
    {
        var (ml, _) = Context();
        var options = TinyOptions();
        options.SftEpochs = 0;
        options.Mixing = new FixedLambdaPolicy(1.5f);
        var e = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => ml.Alignment().PreferenceTuning(options).Fit(ml.Data.LoadFromEnumerable(Rows())));
        Assert.AreEqual("Mixing", e.ParamName);
        StringAssert.Contains(e.Message, "Lambda = 1.5");
    }

    [TestMethod]
    public void CancellationStopsFitBetweenSteps()
    {
        var (ml, _) = Context();
        using var cts = new CancellationTokenSource();
        var options = TinyOptions();
        int seen = 0;
        options.CancellationToken = cts.Token;
        options.Progress = new SyncProgress<PreferenceStepMetrics>(_ => { if (++seen == 2) cts.Cancel(); });
        Assert.ThrowsExactly<OperationCanceledException>(() => ml.Alignment().PreferenceTuning(options).Fit(ml.Data.LoadFromEnumerable(Rows())));
        Assert.AreEqual(2, seen);
    }

    [TestMethod]
    public void ResumingFromCheckpointsMatchesAnUninterruptedRun()
    {
        var (ml, _) = Context();
        var data = ml.Data.LoadFromEnumerable(Rows());
        using var reference = ml.Alignment().PreferenceTuning(TinyOptions()).Fit(data);

        string folder = Path.Combine(Path.GetTempPath(), $"align-ckpt-{Guid.NewGuid():N}");
        try
        {
            using var cts = new CancellationTokenSource();
            var interrupted = TinyOptions();
            interrupted.CheckpointFolder = folder;
            interrupted.CancellationToken = cts.Token;
            // Stop in the middle of the second SFT epoch: the first epoch's checkpoint is on disk.
            interrupted.Progress = new SyncProgress<PreferenceStepMetrics>(m => { if (m.Step == 4) cts.Cancel(); });
            Assert.ThrowsExactly<OperationCanceledException>(() => ml.Alignment().PreferenceTuning(interrupted).Fit(data));
            Assert.IsTrue(File.Exists(Path.Combine(folder, "sft.checkpoint.zip")));
            Assert.IsFalse(File.Exists(Path.Combine(folder, "preference.checkpoint.zip")));

            var resumed = TinyOptions();
            resumed.CheckpointFolder = folder;
            var steps = new List<long>();
            resumed.Progress = new SyncProgress<PreferenceStepMetrics>(m => steps.Add(m.Step));
            using var model = ml.Alignment().PreferenceTuning(resumed).Fit(data);
            CollectionAssert.AreEqual(new long[] { 4, 5, 6, 1, 2, 3 }, steps, "SFT steps 4–6 are redone, then the preference phase");
            Assert.AreEqual(6, model.History.Sft.Count);
            CollectionAssert.AreEqual(Weights(reference.Model), Weights(model.Model));
        }
        finally
        {
            if (Directory.Exists(folder)) Directory.Delete(folder, recursive: true);
        }
    }
}
