using MergeMix.ML.Classification;
using MergeMix.ML.Data;
using MergeMix.ML.Mixing;
using MergeMix.ML.Transforms;

namespace MergeMix.ML.Samples;

/// <summary>
/// `grids`: one PNG per mixer on the synthetic set, or on CIFAR-10 test images with --data. MergeMix and TransMix
/// take attention from --model (a saved VisionTransformerClassifier) or from a small ViT trained here.
/// </summary>
internal static class GridsCommand
{
    public static void Run(Options options)
    {
        var output = options.OutputFolder();
        LabeledImageSet train, show;
        string prefix;
        if (options.Get("data") is { } folder)
        {
            train = Cifar10Reader.StratifiedSubset(Cifar10Reader.ReadTrain(folder), perClass: 800, seed: 0);
            show = Cifar10Reader.ReadTest(folder, maxImages: 8);
            prefix = "cifar10";
        }
        else
        {
            train = SyntheticShapes.Generate(8000, seed: 1).Images;
            show = SyntheticShapes.Generate(8, seed: 2).Images;
            prefix = "synthetic";
        }

        IAttentionSource attention;
        if (options.Get("model") is { } modelPath)
        {
            var classifier = VisionTransformerClassifier.Load(modelPath);
            classifier.Model.Backbone.MergeEnabled = classifier.Model.Options.EffectiveMergeCount > 0;
            attention = classifier.Model.AttentionSource();
        }
        else
        {
            Console.WriteLine($"Training a small ToMe ViT on {train.Count} images for attention (pass --model to use a saved classifier) ...");
            attention = AttentionModelTrainer.Train(train, new AttentionModelOptions
            {
                Progress = new Progress<EpochReport>(r => Console.WriteLine($"  epoch {r.Epoch}/{r.Epochs}: loss {r.TrainLoss:F3}, {r.Seconds:F1} s")),
            }, "cpu", seed: 0, environment: null);
        }
        var paths = Grids.WriteAll(show, attention, output, prefix);
        Console.WriteLine($"Wrote {paths.Count} grids to {output}: {string.Join(", ", paths.Select(Path.GetFileName))}");
    }
}
