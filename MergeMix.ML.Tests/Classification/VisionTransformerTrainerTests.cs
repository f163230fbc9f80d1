using MergeMix.ML.Classification;
using MergeMix.ML.Data;
using MergeMix.ML.Mixing;
using MergeMix.ML.Transforms;
using MergeMix.ML.Vision;
using Microsoft.ML;
using Microsoft.ML.Data;
using static MergeMix.ML.Tests.Classification.TinyClassifier;
using static TorchSharp.torch;

namespace MergeMix.ML.Tests.Classification;

[TestClass]
public sealed class VisionTransformerTrainerTests
{
    private static VisionTransformerClassifier Train(MLContext ml, IDataView data, VisionTransformerTrainerOptions options) =>
        ml.MulticlassClassification.Trainers.VisionTransformer(options).Fit(data);

    private static string TempPath(string name) => Path.Combine(Path.GetTempPath(), $"mergemix-{name}-{Guid.NewGuid():N}");

    [TestMethod]
    public void EvaluateAndPredictionEngineWorkOnTheClassifierOutput()
    {
        var ml = new MLContext(1);
        var test = Shapes(12, 2);
        var testData = test.ToDataView(ml);
        var options = Options();
        options.ValidationSet = testData;
        using var classifier = Train(ml, Shapes(48, 1).ToDataView(ml), options);
        var scored = classifier.Transform(testData);

        var score = scored.Schema["Score"];
        Assert.AreEqual(new VectorDataViewType(NumberDataViewType.Single, 6), score.Type);
        var slotNames = default(VBuffer<ReadOnlyMemory<char>>);
        score.GetSlotNames(ref slotNames);
        CollectionAssert.AreEqual(SyntheticShapes.ClassNames.ToArray(), slotNames.DenseValues().Select(s => s.ToString()).ToArray());
        var predicted = scored.Schema["PredictedLabel"];
        Assert.AreEqual(new KeyDataViewType(typeof(uint), 6), predicted.Type);
        CollectionAssert.AreEqual(SyntheticShapes.ClassNames.ToArray(), ImageColumns.ClassNamesOf(predicted).ToArray());

        // ML.NET's evaluator reads the same probabilities our metrics do.
        var scores = scored.GetColumn<float[]>("Score").ToArray();
        var ours = ClassificationMetrics.Compute(scores.SelectMany(s => s).ToArray(), test.Labels, 6);
        var metrics = ml.MulticlassClassification.Evaluate(scored);
        Assert.AreEqual(ours.Accuracy, metrics.MicroAccuracy, 1e-12);
        Assert.AreEqual(ours.LogLoss, metrics.LogLoss, 1e-5);
        Assert.AreEqual(test.Count, metrics.ConfusionMatrix.Counts.Sum(row => row.Sum()));
        // The last epoch's validation report scored the same data with the same (final) weights.
        var validation = classifier.History.Single().Validation!;
        Assert.AreEqual(ours.Accuracy, validation.Accuracy, 1e-12);
        Assert.AreEqual(ours.LogLoss, validation.LogLoss, 1e-5);
        Assert.AreEqual(test.Count, validation.Count);

        // The predicted key maps back to the class names, in a batch and in a prediction engine alike.
        var chain = new TransformerChain<ITransformer>(classifier, ml.Transforms.Conversion.MapKeyToValue("PredictedClass", "PredictedLabel").Fit(scored));
        var batch = chain.Transform(testData);
        var batchScores = batch.GetColumn<float[]>("Score").ToArray();
        var batchKeys = batch.GetColumn<uint>("PredictedLabel").ToArray();
        var batchClasses = batch.GetColumn<string>("PredictedClass").ToArray();
        var engine = ml.Model.CreatePredictionEngine<ImageInput, ImagePrediction>(chain);
        for (int i = 0; i < test.Count; i++)
        {
            int argmax = Array.IndexOf(batchScores[i], batchScores[i].Max());
            Assert.AreEqual((uint)argmax + 1, batchKeys[i]);
            Assert.AreEqual(SyntheticShapes.ClassNames[argmax], batchClasses[i]);

            var prediction = engine.Predict(new ImageInput { Features = test.Image(i).ToArray() });
            Assert.AreEqual(batchKeys[i], prediction.PredictedLabel, $"row {i}");
            Assert.AreEqual(batchClasses[i], prediction.PredictedClass, $"row {i}");
            Assert.AreEqual(6, prediction.Score.Length);
            for (int k = 0; k < 6; k++) Assert.AreEqual(batchScores[i][k], prediction.Score[k], 1e-6f, $"row {i}, class {k}");
        }
    }

    [TestMethod]
    public void SaveAndLoadRoundTripGivesIdenticalScores()
    {
        var ml = new MLContext(1);
        var options = Options();
        options.FeatureColumnName = "Pixels";
        options.ScoreColumnName = "Probabilities";
        options.MergeAtInference = true;
        options.Model.MergeCount = 4;
        var trainData = Shapes(32, 1).ToDataView(ml, imageColumnName: "Pixels");
        using var classifier = Train(ml, trainData, options);
        var path = TempPath("classifier") + ".zip";
        try
        {
            classifier.Save(path);
            using var loaded = VisionTransformerClassifier.Load(path);
            AssertIdentical(classifier.Model, loaded.Model);
            CollectionAssert.AreEqual(classifier.ClassNames.ToArray(), loaded.ClassNames.ToArray());
            Assert.AreEqual("Pixels", loaded.FeatureColumnName);
            Assert.AreEqual("Probabilities", loaded.ScoreColumnName);
            Assert.AreEqual("PredictedLabel", loaded.PredictedLabelColumnName);
            Assert.IsTrue(loaded.MergeAtInference);
            Assert.AreEqual(4, loaded.Model.Options.MergeCount);

            var data = Shapes(12, 2).ToDataView(ml, imageColumnName: "Pixels");
            var before = classifier.Transform(data).GetColumn<float[]>("Probabilities").ToArray();
            var after = loaded.Transform(data).GetColumn<float[]>("Probabilities").ToArray();
            for (int i = 0; i < before.Length; i++) CollectionAssert.AreEqual(before[i], after[i], $"row {i}");
        }
        finally
        {
            File.Delete(path);
        }
    }

    [TestMethod]
    public void OneHotSoftLabelsTrainExactlyLikeTheKeyLabel()
    {
        var ml = new MLContext(1);
        var data = Shapes(48, 1).ToDataView(ml);
        var withOneHot = ml.Transforms.Conversion.MapKeyToVector("SoftLabel", "Label").Fit(data).Transform(data);
        var oneHot = withOneHot.GetColumn<float[]>("SoftLabel").First();
        Assert.AreEqual(1f, oneHot.Sum());

        using var byKey = Train(ml, withOneHot, Options(epochs: 2));
        var softOptions = Options(epochs: 2);
        softOptions.SoftLabelColumnName = "SoftLabel";
        using var bySoft = Train(ml, withOneHot, softOptions);

        AssertIdentical(byKey.Model, bySoft.Model);
        CollectionAssert.AreEqual(byKey.History.Select(h => h.TrainLoss).ToArray(), bySoft.History.Select(h => h.TrainLoss).ToArray());
    }

    [TestMethod]
    public void BFloat16LinearTrainsInMixedPrecisionAndEvaluatesInFp32()
    {
        var ml = new MLContext(1);
        var data = Shapes(48, 1).ToDataView(ml);
        var mixed = Options(epochs: 2);
        mixed.BFloat16Linear = true;
        mixed.OnlineMixing = new MergeMixPolicy();
        var fp32 = Options(epochs: 2);
        fp32.OnlineMixing = new MergeMixPolicy();

        using var a = Train(ml, data, mixed);
        using var b = Train(ml, data, mixed);
        using var full = Train(ml, data, fp32);

        AssertIdentical(a.Model, b.Model, "mixed-precision training is deterministic");
        AssertDifferent(a.Model, full.Model, "the option must reach the training steps");
        Assert.IsFalse(a.Model.Backbone.BFloat16Linear, "the trained model scores in fp32");
        Assert.IsTrue(a.Model.parameters().All(p => p.dtype == ScalarType.Float32), "parameters stay fp32");
        // bf16 products with fp32 accumulation and fp32 parameters: the loss follows the fp32 run closely.
        for (int e = 0; e < 2; e++)
            Assert.AreEqual(full.History[e].TrainLoss, a.History[e].TrainLoss, 0.02 * full.History[e].TrainLoss, $"epoch {e + 1} loss");
    }

    [TestMethod]
    public void ResumingFromACheckpointReproducesTheUninterruptedRun()
    {
        var ml = new MLContext(1);
        var data = Shapes(48, 1).ToDataView(ml);
        using var uninterrupted = Train(ml, data, Options(epochs: 2));

        var folder = TempPath("checkpoint");
        try
        {
            using var cancel = new CancellationTokenSource();
            var interrupted = Options(epochs: 2);
            interrupted.CheckpointFolder = folder;
            interrupted.CancellationToken = cancel.Token;
            interrupted.Progress = new SyncProgress<EpochReport>(report => { if (report.Epoch == 1) cancel.Cancel(); });
            Assert.ThrowsExactly<OperationCanceledException>(() => Train(ml, data, interrupted));
            Assert.IsTrue(File.Exists(Path.Combine(folder, "state.json")));

            var resumed = Options(epochs: 2);
            resumed.CheckpointFolder = folder;
            var epochs = new List<int>();
            resumed.Progress = new SyncProgress<EpochReport>(report => epochs.Add(report.Epoch));
            using var classifier = Train(ml, data, resumed);

            CollectionAssert.AreEqual(new[] { 2 }, epochs, "only the second epoch runs again");
            AssertIdentical(uninterrupted.Model, classifier.Model);
            CollectionAssert.AreEqual(uninterrupted.History.Select(h => h.TrainLoss).ToArray(), classifier.History.Select(h => h.TrainLoss).ToArray());
        }
        finally
        {
            if (Directory.Exists(folder)) Directory.Delete(folder, recursive: true);
        }
    }

    [TestMethod]
    public void ThreadsOptionAppliesDuringTrainingOnly()
    {
        var ml = new MLContext(1);
        var options = Options();
        options.Threads = 1;
        var during = new List<int>();
        options.Progress = new SyncProgress<EpochReport>(_ => during.Add(get_num_threads()));
        try
        {
            set_num_threads(2);
            using var classifier = Train(ml, Shapes(32, 1).ToDataView(ml), options);
            CollectionAssert.AreEqual(new[] { 1 }, during);
            Assert.AreEqual(2, get_num_threads(), "the caller's setting is restored");
        }
        finally
        {
            set_num_threads(1);
        }
    }

    private sealed class NamedImage
    {
        public float[] Features { get; set; } = Array.Empty<float>();
        public string Name { get; set; } = "";
        public float[] Soft { get; set; } = Array.Empty<float>();
    }

    private sealed class NameRow
    {
        public string Name { get; set; } = "";
    }

    /// <summary>Images with a key label built from <paramref name="names"/> (names outside the classes become missing keys) and a soft-label column.</summary>
    private static IDataView LabelledView(MLContext ml, LabeledImageSet set, string[] names, float[][] soft)
    {
        var definition = SchemaDefinition.Create(typeof(NamedImage));
        definition[nameof(NamedImage.Features)].ColumnType = new VectorDataViewType(NumberDataViewType.Single, set.Channels, set.Height, set.Width);
        definition[nameof(NamedImage.Soft)].ColumnType = new VectorDataViewType(NumberDataViewType.Single, soft[0].Length);
        var rows = Enumerable.Range(0, set.Count).Select(i => new NamedImage { Features = set.Image(i).ToArray(), Name = names[i], Soft = soft[i] }).ToArray();
        var view = ml.Data.LoadFromEnumerable(rows, definition);
        var keys = ml.Data.LoadFromEnumerable(set.ClassNames.Select(n => new NameRow { Name = n }).ToArray());
        return ml.Transforms.Conversion.MapValueToKey("Label", "Name", keyData: keys).Fit(view).Transform(view);
    }

    private static float[][] OneHot(LabeledImageSet set, int classes) =>
        set.Labels.Select(l => Enumerable.Range(0, classes).Select(k => k == l ? 1f : 0f).ToArray()).ToArray();

    [TestMethod]
    public void BadInputsGetErrorsNamingTheColumnOrOption()
    {
        var ml = new MLContext(1);
        var set = Shapes(8, 1);
        var names = set.Labels.Select(l => set.ClassNames[l]).ToArray();

        // A name outside the key's classes becomes a missing key value.
        var unknown = names.ToArray();
        unknown[3] = "hexagon";
        var missing = Assert.ThrowsExactly<InvalidOperationException>(() => Train(ml, LabelledView(ml, set, unknown, OneHot(set, 6)), Options()));
        StringAssert.Contains(missing.Message, "Row 3");
        StringAssert.Contains(missing.Message, "'Label'");
        StringAssert.Contains(missing.Message, "missing");

        var soft = OneHot(set, 6);
        soft[5] = new[] { 0.5f, 0, 0, 0, 0, 0 };
        var softOptions = Options();
        softOptions.SoftLabelColumnName = "Soft";
        var notSummingToOne = Assert.ThrowsExactly<InvalidOperationException>(() => Train(ml, LabelledView(ml, set, names, soft), softOptions));
        StringAssert.Contains(notSummingToOne.Message, "Row 5");
        StringAssert.Contains(notSummingToOne.Message, "'Soft'");
        StringAssert.Contains(notSummingToOne.Message, "sum to 1");

        var wrongK = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => Train(ml, LabelledView(ml, set, names, OneHot(set, 4)), softOptions));
        Assert.AreEqual(nameof(VisionTransformerTrainerOptions.SoftLabelColumnName), wrongK.ParamName);
        StringAssert.Contains(wrongK.Message, "'Soft'");
        StringAssert.Contains(wrongK.Message, "vector of 6 Single");
        StringAssert.Contains(wrongK.Message, "label column 'Label'");

        var data = set.ToDataView(ml);
        var empty = Assert.ThrowsExactly<InvalidOperationException>(() => Train(ml, ml.Data.SkipRows(data, 100), Options()));
        StringAssert.Contains(empty.Message, "no rows");
        StringAssert.Contains(empty.Message, "'Features'");

        if (!cuda.is_available())
        {
            var cudaOptions = Options();
            cudaOptions.Device = "cuda";
            var noCuda = Assert.ThrowsExactly<InvalidOperationException>(() => Train(ml, data, cudaOptions));
            StringAssert.Contains(noCuda.Message, "Device = \"cuda\"");
        }

        var wide = SyntheticShapes.Generate(8, 1, new SyntheticShapesOptions { Width = 20, Height = 16 }).Images.ToDataView(ml);
        var notSquare = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => Train(ml, wide, Options()));
        Assert.AreEqual(nameof(VisionTransformerTrainerOptions.FeatureColumnName), notSquare.ParamName);
        StringAssert.Contains(notSquare.Message, "'Features'");
        StringAssert.Contains(notSquare.Message, "3×16×20");
        StringAssert.Contains(notSquare.Message, "square");

        var odd = SyntheticShapes.Generate(8, 1, new SyntheticShapesOptions { Width = 18, Height = 18 }).Images.ToDataView(ml);
        var notDivisible = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => Train(ml, odd, Options()));
        Assert.AreEqual(nameof(VisionTransformerTrainerOptions.FeatureColumnName), notDivisible.ParamName);
        StringAssert.Contains(notDivisible.Message, "Model.PatchSize = 4");

        foreach (double rate in new[] { 0.0, -1e-3, double.NaN })
        {
            var lr = Options();
            lr.LearningRate = rate;
            var error = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => ml.MulticlassClassification.Trainers.VisionTransformer(lr));
            Assert.AreEqual(nameof(VisionTransformerTrainerOptions.LearningRate), error.ParamName);
            StringAssert.Contains(error.Message, "LearningRate must be > 0");
        }
    }

    [TestMethod]
    public void OnlineMixingTrainsWithEachPolicyAndAddsMergeMixsBaseLoss()
    {
        var ml = new MLContext(1);
        var data = Shapes(32, 1).ToDataView(ml);
        VisionTransformerClassifier Run(IMixPolicy? policy, MergeMixBaseLoss baseLoss = MergeMixBaseLoss.Clean)
        {
            var options = Options();
            // A tiny rate keeps the logits near 0, so every cross-entropy term stays close to ln 6.
            options.LearningRate = options.MinLearningRate = 1e-5;
            options.OnlineMixing = policy;
            options.MergeMixBaseLoss = baseLoss;
            return Train(ml, data, options);
        }

        using var plain = Run(null);
        using var clean = Run(new MergeMixPolicy(), MergeMixBaseLoss.Clean);
        using var mixup = Run(new MergeMixPolicy(), MergeMixBaseLoss.Mixup);
        using var mixedOnly = Run(new MergeMixPolicy(), MergeMixBaseLoss.None);
        using var transMix = Run(new TransMixPolicy());
        using var cleanAgain = Run(new MergeMixPolicy(), MergeMixBaseLoss.Clean);

        double ln6 = Math.Log(6);
        Assert.AreEqual(ln6, plain.History.Single().TrainLoss, 0.05);
        Assert.AreEqual(2 * ln6, clean.History.Single().TrainLoss, 0.1, "mixed + clean cross-entropy");
        Assert.AreEqual(2 * ln6, mixup.History.Single().TrainLoss, 0.1, "mixed + Mixup cross-entropy");
        Assert.AreEqual(ln6, mixedOnly.History.Single().TrainLoss, 0.05);
        Assert.AreEqual(ln6, transMix.History.Single().TrainLoss, 0.05, "TransMix has no base term");

        var runs = new[] { plain, clean, mixup, mixedOnly, transMix };
        for (int i = 0; i < runs.Length; i++)
            for (int j = i + 1; j < runs.Length; j++)
                AssertDifferent(runs[i].Model, runs[j].Model, $"runs {i} and {j} must train differently");
        AssertIdentical(clean.Model, cleanAgain.Model, "online mixing is seeded");
    }

    [TestMethod]
    public void MergeMixAttentionFromTheCleanPassEqualsTheSeparatePassWhenBothSeeTheSameModel()
    {
        var data = Shapes(32, 1);
        ImageClassifierModel Run(MergeMixAttentionPass pass, double dropPath, bool mergeDuringTraining, bool lambdaScale = false)
        {
            var options = Options();
            options.Model.DropPathRate = dropPath;
            options.OnlineMixing = new MergeMixPolicy();
            options.MergeMixAttentionPass = pass;
            options.MergeDuringTraining = mergeDuringTraining;
            options.MergeMixLambdaScale = lambdaScale;
            return ClassifierTraining.Train(data, null, null, options).Model;
        }

        // Without drop-path, training mode computes what eval mode does, and with merging in training the clean
        // pass merges like the separate attention pass: the same attention, masks and weights, one pass fewer.
        using (var single = Run(MergeMixAttentionPass.CleanPass, 0, mergeDuringTraining: true))
        using (var separate = Run(MergeMixAttentionPass.Separate, 0, mergeDuringTraining: true))
            AssertIdentical(separate, single);
        // Without merging in training the clean pass ranks unmerged tokens, the separate pass merged ones.
        using (var single = Run(MergeMixAttentionPass.CleanPass, 0, mergeDuringTraining: false))
        using (var separate = Run(MergeMixAttentionPass.Separate, 0, mergeDuringTraining: false))
            AssertDifferent(separate, single);
        // Drop-path makes the clean pass's attention (training mode) differ from the eval-mode one.
        using (var single = Run(MergeMixAttentionPass.CleanPass, 0.5, mergeDuringTraining: true))
        using (var separate = Run(MergeMixAttentionPass.Separate, 0.5, mergeDuringTraining: true))
            AssertDifferent(separate, single);
        // λ̂ re-scaling changes the labels, and with them the weights.
        using (var plain = Run(MergeMixAttentionPass.CleanPass, 0, mergeDuringTraining: true))
        using (var rescaled = Run(MergeMixAttentionPass.CleanPass, 0, mergeDuringTraining: true, lambdaScale: true))
            AssertDifferent(plain, rescaled);
    }

    [TestMethod]
    public void StepBenchmarkCountsPassesAndTimesEveryPhase()
    {
        VisionTransformerTrainerOptions With(IMixPolicy? policy, MergeMixBaseLoss baseLoss = MergeMixBaseLoss.Clean,
            MergeMixAttentionPass pass = MergeMixAttentionPass.CleanPass)
        {
            var o = Options();
            o.OnlineMixing = policy;
            o.MergeMixBaseLoss = baseLoss;
            o.MergeMixAttentionPass = pass;
            return o;
        }
        var costs = TrainingStepBenchmark.Measure(new[]
        {
            new TrainingStepVariant("plain", With(null)),
            new TrainingStepVariant("mixup", With(new MixupPolicy())),
            new TrainingStepVariant("mergemix", With(new MergeMixPolicy())),
            new TrainingStepVariant("mergemix-separate", With(new MergeMixPolicy(), pass: MergeMixAttentionPass.Separate)),
            new TrainingStepVariant("mergemix-nobase", With(new MergeMixPolicy(), MergeMixBaseLoss.None)),
        }, imageSize: 16, classes: 4, batch: 8, rounds: 3, steps: 1);
        CollectionAssert.AreEqual(new[] { "plain", "mixup", "mergemix", "mergemix-separate", "mergemix-nobase" }, costs.Select(c => c.Name).ToArray());
        CollectionAssert.AreEqual(new[] { 1, 1, 2, 2, 1 }, costs.Select(c => c.Passes).ToArray());
        foreach (var c in costs)
        {
            Assert.IsTrue(c.SecondsPerStep > 0 && Math.Abs(c.ImagesPerSecond * c.SecondsPerStep - 8) < 1e-9, c.Name);
            Assert.IsTrue(c.PhaseSecondsPerStep[StepPhase.Forward] > 0 && c.PhaseSecondsPerStep[StepPhase.Backward] > 0, c.Name);
            Assert.IsTrue(c.CpuSecondsPerStep > 0 && c.CpuPhaseSecondsPerStep[StepPhase.Forward] > 0, c.Name);
        }
        Assert.AreEqual(0, costs[0].PhaseSecondsPerStep[StepPhase.Mix], "no mixing in a plain step");
        Assert.AreEqual(0, costs[2].PhaseSecondsPerStep[StepPhase.AttentionPass], "the clean pass gives the attention");
        Assert.IsTrue(costs[3].PhaseSecondsPerStep[StepPhase.AttentionPass] > 0, "a separate attention pass is timed");
        Assert.IsTrue(costs[4].PhaseSecondsPerStep[StepPhase.AttentionPass] > 0, "no clean pass, so a separate one");

        // A variant's own thread count holds during its steps only.
        int threadsBefore = get_num_threads();
        var twoThreads = With(null);
        twoThreads.Threads = threadsBefore + 1;
        var threaded = TrainingStepBenchmark.Measure(new[] { new TrainingStepVariant("plain", With(null)), new TrainingStepVariant("plain@more", twoThreads) },
            imageSize: 16, classes: 4, batch: 8, rounds: 1, steps: 1);
        Assert.AreEqual(2, threaded.Count);
        Assert.AreEqual(threadsBefore, get_num_threads(), "the thread count is restored");

        // 8×8 images, 4-pixel patches (4 + CLS = 5 tokens), width 8, 1 block, MLP 32, 3 classes, by hand:
        // embed 2·4·48·8 = 3 072; qkv 2·5·8·24 = 1 920; QKᵀ and AV 2·25·8 = 400 each; proj 2·5·8·8 = 640;
        // MLP 2 × 2·5·8·32 = 5 120; head 2·8·3 = 48.
        var tiny = new VisionTransformerOptions { ImageSize = 8, PatchSize = 4, Width = 8, Depth = 1, Heads = 2, ClassCount = 3, MergeCount = 0 };
        Assert.AreEqual(3072 + 1920 + 400 + 400 + 640 + 5120 + 48, TrainingStepBenchmark.ForwardFlops(tiny));
        // One token merged after the attention: the MLP runs on 4 tokens, 2 × 2·4·8·32 = 4 096.
        var merging = tiny.Clone();
        merging.MergeCount = 1;
        Assert.AreEqual(3072 + 1920 + 400 + 400 + 640 + 5120 + 48, TrainingStepBenchmark.ForwardFlops(merging), "merge: false counts every token");
        Assert.AreEqual(3072 + 1920 + 400 + 400 + 640 + 4096 + 48, TrainingStepBenchmark.ForwardFlops(merging, merge: true));
        Assert.IsTrue(TrainingStepBenchmark.MatmulGflops(64, 1) > 0);
        Assert.IsTrue(TrainingStepBenchmark.MatmulGflops(64, 1, cpuTime: true) > 0);
    }

    [TestMethod]
    public void MergeMixPipelineFeedsSoftLabelsToTheTrainerAndScoresUnmixedImages()
    {
        var ml = new MLContext(1);
        var data = Shapes(32, 1).ToDataView(ml);
        var test = Shapes(12, 2);
        var testData = test.ToDataView(ml);
        var mixer = ml.Transforms.Mix(new MixingEstimator.Options
        {
            Policy = MixingPolicy.MergeMix,
            BatchSize = 16,
            Seed = 3,
            AttentionTraining = new AttentionModelOptions { Epochs = 1, BatchSize = 16, Model = new VisionTransformerOptions { PatchSize = 4, Width = 16, Depth = 2, Heads = 2 } },
        });
        var options = Options();
        options.SoftLabelColumnName = "SoftLabel";
        var model = new EstimatorChain<ITransformer>()
            .Append(mixer, TransformerScope.Training)
            .Append(ml.MulticlassClassification.Trainers.VisionTransformer(options))
            .Fit(data);
        using var classifier = (VisionTransformerClassifier)model.LastTransformer;

        // The trainer learned from exactly the mixed images and their soft labels: training on the mixer's output
        // with the soft labels reproduces it, with the hard labels or on the clean rows it does not.
        var mixed = model.First().Transform(data);
        using var onSoft = Train(ml, mixed, options);
        using var onHard = Train(ml, mixed, Options());
        using var onClean = Train(ml, data, Options());
        AssertIdentical(onSoft.Model, classifier.Model);
        AssertDifferent(onHard.Model, classifier.Model);
        AssertDifferent(onClean.Model, classifier.Model);
        Assert.AreEqual(1, classifier.History.Count);

        var scored = model.Transform(testData);
        var features = scored.GetColumn<float[]>("Features").ToArray();
        for (int i = 0; i < test.Count; i++) CollectionAssert.AreEqual(test.Image(i).ToArray(), features[i], $"row {i} is scored unmixed");
        var metrics = ml.MulticlassClassification.Evaluate(scored);
        var ours = ClassificationMetrics.Compute(scored.GetColumn<float[]>("Score").SelectMany(s => s).ToArray(), test.Labels, 6);
        Assert.AreEqual(ours.Accuracy, metrics.MicroAccuracy, 1e-12);
        Assert.AreEqual(ours.LogLoss, metrics.LogLoss, 1e-5);
    }
}
