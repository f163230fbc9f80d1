using System.Diagnostics;
using MergeMix.ML.Classification;
using MergeMix.ML.Data;
using MergeMix.ML.Persistence;
using MergeMix.ML.Transforms;
using MergeMix.ML.Vision;
using Microsoft.ML;
using Microsoft.ML.Data;

namespace MergeMix.ML.Samples;

/// <summary>
/// The main job: MergeMix as a training-only transform in front of the ViT trainer, on the embedded synthetic shapes.
/// </summary>
internal static class DemoCommand
{
    // 24-pixel scenes: the generator's 3×3 grid cells (8 px) then cover exactly 2×2 ViT patches, which a small ViT
    // learns in a couple of epochs; at 32 px the cells straddle patches and learning is several times slower.
    private const int Side = 24;

    private static readonly SyntheticShapesOptions Scenes = new() { Width = Side, Height = Side, MinObjectSize = 0.8f, MaxObjectSize = 1f };

    private sealed class ImageInput
    {
        [VectorType(3, Side, Side)] public float[] Features { get; set; } = Array.Empty<float>();
    }

    private sealed class ImagePrediction
    {
        public float[] Score { get; set; } = Array.Empty<float>();
        public uint PredictedLabel { get; set; }
    }

    public static void Run(Options options)
    {
        var output = options.OutputFolder();
        int epochs = options.GetInt("epochs", 4);
        var watch = Stopwatch.StartNew();
        var (train, _) = SyntheticShapes.Generate(options.GetInt("train", 6000), seed: 1, Scenes);
        var (test, _) = SyntheticShapes.Generate(options.GetInt("test", 600), seed: 2, Scenes);
        Console.WriteLine($"Synthetic shapes: {train.Count} train / {test.Count} test images, {Side}×{Side}, classes: {string.Join(", ", train.ClassNames)}");

        var ml = new MLContext(seed: 0);
        ml.Log += (_, e) =>
        {
            if (e.Kind == Microsoft.ML.Runtime.ChannelMessageKind.Info && (e.Source.StartsWith("VisionTransformerTrainer") || e.Source.StartsWith("MergeMix")))
                Console.WriteLine($"  [{e.Source}] {e.RawMessage}");
        };
        var trainData = train.ToDataView(ml);
        var testData = test.ToDataView(ml);

        var mixer = ml.Transforms.Mix(new MixingEstimator.Options
        {
            Policy = MixingPolicy.MergeMix,
            Seed = 1,
            AttentionTraining = new AttentionModelOptions { Epochs = 2, BatchSize = 32 },
        });
        var trainer = ml.MulticlassClassification.Trainers.VisionTransformer(new VisionTransformerTrainerOptions
        {
            SoftLabelColumnName = "SoftLabel",
            Epochs = epochs,
            Model = new VisionTransformerOptions { Width = 64, Depth = 3, Heads = 4, DropPathRate = 0.0 },
            BatchSize = 32,
            LearningRate = 2e-3,
            WarmupEpochs = 0.1,
            LabelSmoothing = 0,
            HorizontalFlip = false,
            MinLearningRate = 1e-4,
            RandomCropPadding = 0,
            ValidationSet = testData,
            Seed = 1,
        });
        var pipeline = new EstimatorChain<ITransformer>()
            .Append(mixer, TransformerScope.Training)
            .Append(trainer);

        Console.WriteLine("Fitting: MergeMix (training scope) → VisionTransformer trainer on the soft labels ...");
        var model = pipeline.Fit(trainData);
        var metrics = ml.MulticlassClassification.Evaluate(model.Transform(testData));
        Console.WriteLine($"Test: micro-accuracy {metrics.MicroAccuracy:P2}, macro-accuracy {metrics.MacroAccuracy:P2}, log-loss {metrics.LogLoss:F4}");

        var engine = ml.Model.CreatePredictionEngine<ImageInput, ImagePrediction>(model);
        Console.WriteLine("PredictionEngine on the first five test images:");
        for (int i = 0; i < 5; i++)
        {
            var p = engine.Predict(new ImageInput { Features = test.Image(i).ToArray() });
            Console.WriteLine($"  image {i}: predicted {test.ClassNames[(int)p.PredictedLabel - 1],-8} (p = {p.Score.Max():F3}), true {test.ClassNames[test.Labels[i]]}");
        }

        var classifier = (VisionTransformerClassifier)model.LastTransformer;
        var modelPath = Path.Combine(output, "classifier.zip");
        classifier.Save(modelPath);
        using var loaded = VisionTransformerClassifier.Load(modelPath);
        var reloaded = ml.MulticlassClassification.Evaluate(loaded.Transform(testData));
        Console.WriteLine($"Saved to {modelPath}; reloaded accuracy {reloaded.MicroAccuracy:P2} (identical: {reloaded.MicroAccuracy == metrics.MicroAccuracy})");

        // The whole chain as one ML.NET model file: the mixer becomes an identity, the ViT an ONNX graph, so loading it
        // needs only Microsoft.ML, Microsoft.ML.OnnxTransformer and ONNX Runtime (no TorchSharp).
        var chainPath = Path.Combine(output, "model.zip");
        ml.Model.SaveAtomically(model, trainData.Schema, chainPath);
        var deployment = new MLContext(seed: 0);
        var fromFile = deployment.Model.Load(chainPath, out _).Transform(testData);
        var onnxMetrics = deployment.MulticlassClassification.Evaluate(fromFile);
        var torchWatch = Stopwatch.StartNew();
        var torchLabels = model.Transform(testData).GetColumn<uint>("PredictedLabel").ToArray();
        torchWatch.Stop();
        var onnxWatch = Stopwatch.StartNew();
        var onnxLabels = fromFile.GetColumn<uint>("PredictedLabel").ToArray();
        onnxWatch.Stop();
        int agree = torchLabels.Zip(onnxLabels).Count(p => p.First == p.Second);
        Console.WriteLine($"mlContext.Model.Save of the chain to {chainPath} ({new FileInfo(chainPath).Length / 1024} KB); Model.Load runs it on ONNX Runtime: " +
            $"accuracy {onnxMetrics.MicroAccuracy:P2}, log-loss {onnxMetrics.LogLoss:F4}, {agree}/{test.Count} predictions equal to TorchSharp's; " +
            $"scoring the {test.Count} test images took {onnxWatch.ElapsedMilliseconds} ms on ONNX Runtime (one row at a time), {torchWatch.ElapsedMilliseconds} ms on TorchSharp (batched)");

        var mixerTransformer = (MixingTransformer)model.First();
        var grids = Grids.WriteAll(test, mixerTransformer.AttentionSource!, output, "synthetic");
        Console.WriteLine($"Mixed-image grids: {string.Join(", ", grids.Select(Path.GetFileName))} in {output}");
        Console.WriteLine($"Done in {watch.Elapsed.TotalSeconds:F0} s.");
    }
}
