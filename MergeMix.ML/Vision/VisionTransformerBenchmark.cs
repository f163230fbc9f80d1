using System.Diagnostics;
using TorchSharp;
using static TorchSharp.torch;

namespace MergeMix.ML.Vision;

/// <summary>Throughput measurements for <see cref="VisionTransformer"/> (used by the <c>bench</c> command).</summary>
public static class VisionTransformerBenchmark
{
    /// <summary>
    /// Inference throughput in images per second: eval mode, no gradient, random images of the model's size on the
    /// model's device, two untimed warm-up passes, then <paramref name="iterations"/> timed forward passes of
    /// <paramref name="batch"/> images. The model's training flag is restored afterwards.
    /// </summary>
    /// <param name="model">The model to time.</param>
    /// <param name="batch">Images per forward pass (≥ 1).</param>
    /// <param name="merge">Whether blocks merge tokens.</param>
    /// <param name="iterations">Timed passes (≥ 1).</param>
    /// <param name="seed">Seed of the random images.</param>
    public static double ForwardImagesPerSecond(VisionTransformer model, int batch, bool merge, int iterations, ulong seed = 0)
    {
        ArgumentNullException.ThrowIfNull(model);
        if (batch < 1) throw new ArgumentOutOfRangeException(nameof(batch), batch, "batch must be ≥ 1.");
        if (iterations < 1) throw new ArgumentOutOfRangeException(nameof(iterations), iterations, "iterations must be ≥ 1.");

        var options = model.Options;
        var device = model.parameters().First().device;
        bool wasTraining = model.training;
        model.eval();
        try
        {
            using var scope = NewDisposeScope();
            using var noGrad = no_grad();
            var images = randn(new long[] { batch, options.Channels, options.ImageSize, options.ImageSize },
                generator: new Generator(seed)).to(device);
            for (int i = 0; i < 2; i++) Pass(model, images, merge);
            var watch = Stopwatch.StartNew();
            for (int i = 0; i < iterations; i++) Pass(model, images, merge);
            watch.Stop();
            return (double)batch * iterations / watch.Elapsed.TotalSeconds;
        }
        finally
        {
            if (wasTraining) model.train();
        }
    }

    private static void Pass(VisionTransformer model, Tensor images, bool merge)
    {
        using var scope = NewDisposeScope();
        using var result = model.Forward(images, merge);
        // Reading one value waits for asynchronous devices, so the timing covers the whole pass.
        _ = result.Logits[0, 0].item<float>();
    }
}
