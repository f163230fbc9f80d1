using System.Diagnostics;
using System.Globalization;
using MergeMix.ML.Augmentation;
using MergeMix.ML.Mixing;
using MergeMix.ML.Vision;
using static TorchSharp.torch;

namespace MergeMix.ML.Samples;

/// <summary>
/// `speed`: images/s of MergeMix mixing (ToMe attention pass + mask + mix) against Mixup, and the ToMe forward
/// speed-up of the default ViT, and the cost of the trainer's RandAugment option, measured in one run on random
/// 32×32 images.
/// </summary>
internal static class SpeedCommand
{
    private static readonly TorchSharp.Scalar PixelRange = 255;

    public static void Run(Options options)
    {
        int batch = options.GetInt("batch", 128);
        int iterations = options.GetInt("iterations", 10);
        var output = options.OutputFolder();
        var vitOptions = new VisionTransformerOptions();
        using var generator = new Generator(0);
        var model = new VisionTransformer(vitOptions, generator);
        model.eval();
        using var unit = rand(new long[] { batch, 3, 32, 32 }, generator: generator);
        using var images = unit.mul(PixelRange);
        using var labels = randint(0, 10, new long[] { batch }, generator: generator);
        var attention = new VisionTransformerAttentionSource(model);

        double MixRate(IMixPolicy policy)
        {
            using var mixGenerator = new Generator(1);
            for (int i = 0; i < 2; i++) policy.Mix(images, labels, 10, mixGenerator, attention).Dispose();
            var watch = Stopwatch.StartNew();
            for (int i = 0; i < iterations; i++) policy.Mix(images, labels, 10, mixGenerator, attention).Dispose();
            return batch * iterations / watch.Elapsed.TotalSeconds;
        }

        double mergeMix = MixRate(new MergeMixPolicy());
        double mixup = MixRate(new MixupPolicy());
        double randAugment;
        {
            using var augmentGenerator = new Generator(2);
            var augmentation = new RandAugmentation(new RandAugmentOptions(), augmentGenerator);
            augmentation.Apply(images).Dispose();
            var watch = Stopwatch.StartNew();
            for (int i = 0; i < iterations; i++) augmentation.Apply(images).Dispose();
            randAugment = batch * iterations / watch.Elapsed.TotalSeconds;
        }
        double withoutToMe = VisionTransformerBenchmark.ForwardImagesPerSecond(model, batch, merge: false, iterations);
        double withToMe = VisionTransformerBenchmark.ForwardImagesPerSecond(model, batch, merge: true, iterations);

        string I(double v) => v.ToString("F0", CultureInfo.InvariantCulture);
        string R(double v) => v.ToString("F2", CultureInfo.InvariantCulture);
        var table = $"""
            | measurement (batch {batch}, 32×32, ViT {vitOptions.Width}w/{vitOptions.Depth}d/{vitOptions.Heads}h, patch {vitOptions.PatchSize}, MergeCount {vitOptions.EffectiveMergeCount} of {vitOptions.PatchCount}, {get_num_threads()} threads) | images/s |
            |---|---|
            | Mixup mixing | {I(mixup)} |
            | MergeMix mixing (ToMe attention pass + top-k mask + mix) | {I(mergeMix)} |
            | ratio MergeMix / Mixup | {R(mergeMix / mixup)} |
            | ViT forward, no merging | {I(withoutToMe)} |
            | ViT forward, ToMe merging | {I(withToMe)} |
            | ToMe forward speed-up | {R(withToMe / withoutToMe)}× |
            | RandAugment, trainer option (TorchVision, 2 ops, magnitude 7 of 10, per image) | {I(randAugment)} ({R(batch * 1000.0 / randAugment)} ms per batch) |
            | ratio RandAugment / ViT forward (no merging) | {R(randAugment / withoutToMe)} |
            """;
        Console.WriteLine(table);
        File.WriteAllText(Path.Combine(output, "speed.md"), table + Environment.NewLine);
    }
}
