using MergeMix.ML.Data;

namespace MergeMix.ML.Samples.Bench;

/// <summary>The three splits of a benchmark: validation is carved from train; test is only used for the final numbers.</summary>
/// <param name="Source">Where the images come from, for the report.</param>
/// <param name="Train">Training images.</param>
/// <param name="Validation">Held-out training images for model selection.</param>
/// <param name="Test">Test images.</param>
public sealed record BenchData(string Source, LabeledImageSet Train, LabeledImageSet Validation, LabeledImageSet Test)
{
    /// <summary>
    /// Loads the preset's images: the CIFAR-10 binary batches of <paramref name="cifarFolder"/>, or the embedded
    /// synthetic shapes when it is null.
    /// </summary>
    public static BenchData Load(BenchPreset preset, string? cifarFolder)
    {
        ArgumentNullException.ThrowIfNull(preset);
        LabeledImageSet pool, test;
        string source;
        if (cifarFolder is null)
        {
            pool = SyntheticShapes.Generate(preset.SyntheticTrain, seed: 1).Images;
            test = SyntheticShapes.Generate(preset.SyntheticTest, seed: 2).Images;
            source = "embedded synthetic shapes (6 classes, 32×32)";
        }
        else
        {
            if (!Directory.Exists(cifarFolder))
                throw new ArgumentException($"--data: folder '{Path.GetFullPath(cifarFolder)}' does not exist; give a folder with the CIFAR-10 binary batches.");
            // The full train pool is only needed to draw the subset; drop it right after.
            pool = Cifar10Reader.StratifiedSubset(Cifar10Reader.ReadTrain(cifarFolder, preset.CifarTrainPool), preset.CifarTrainPerClass, preset.DataSeed);
            test = Cifar10Reader.ReadTest(cifarFolder, preset.CifarTest);
            source = $"CIFAR-10 from {Path.GetFullPath(cifarFolder)}: {preset.CifarTrainPerClass} per class from the first {preset.CifarTrainPool} train images (seed {preset.DataSeed}), "
                + (preset.CifarTest is { } n ? $"the first {n} test images" : "all test images");
        }
        var (train, validation) = pool.StratifiedSplit(preset.ValidationFraction, preset.DataSeed);
        return new BenchData(source, train, validation, test);
    }
}
