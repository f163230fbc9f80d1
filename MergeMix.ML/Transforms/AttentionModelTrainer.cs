using MergeMix.ML.Classification;
using MergeMix.ML.Data;
using MergeMix.ML.Mixing;
using MergeMix.ML.Vision;
using Microsoft.ML.Runtime;

namespace MergeMix.ML.Transforms;

/// <summary>
/// How <see cref="MixingEstimator"/> trains its attention model when the user gives none. The defaults train a
/// 4-layer, 96-wide ToMe ViT for 5 epochs — enough for attention that follows the objects, a minute or two on a
/// CPU for a few thousand 32×32 images.
/// </summary>
public sealed class AttentionModelOptions
{
    /// <summary>Epochs of training.</summary>
    public int Epochs = 5;

    /// <summary>Images per step.</summary>
    public int BatchSize = 128;

    /// <summary>Peak learning rate.</summary>
    public double LearningRate = 1e-3;

    /// <summary>The architecture (image size, channels and classes come from the data).</summary>
    public VisionTransformerOptions Model = new() { Width = 96, Depth = 4, Heads = 3, DropPathRate = 0.0 };

    /// <summary>Called after every epoch of the attention model's training.</summary>
    public IProgress<EpochReport>? Progress;

    internal void Validate()
    {
        if (Epochs < 1) throw new ArgumentOutOfRangeException(nameof(Epochs), $"AttentionTraining.Epochs must be ≥ 1, got {Epochs}.");
        if (BatchSize < 2) throw new ArgumentOutOfRangeException(nameof(BatchSize), $"AttentionTraining.BatchSize must be ≥ 2, got {BatchSize}.");
        if (!(LearningRate > 0)) throw new ArgumentOutOfRangeException(nameof(LearningRate), $"AttentionTraining.LearningRate must be > 0, got {LearningRate}.");
        ArgumentNullException.ThrowIfNull(Model, nameof(Model));
    }
}

internal static class AttentionModelTrainer
{
    public static IAttentionSource Train(LabeledImageSet data, AttentionModelOptions options, string device, int seed, IHostEnvironment? environment)
    {
        using var channel = environment?.Start("MergeMix attention model");
        channel?.Info(MessageSensitivity.None, "No attention source given: training a ToMe ViT for {0} epochs on {1} images.", options.Epochs, data.Count);
        var (model, _) = ClassifierTraining.Train(data, null, null, new VisionTransformerTrainerOptions
        {
            Model = options.Model,
            Epochs = options.Epochs,
            BatchSize = options.BatchSize,
            LearningRate = options.LearningRate,
            WarmupEpochs = Math.Min(1, options.Epochs / 2.0),
            Seed = seed,
            Device = device,
            Progress = options.Progress,
        }, channel);
        // Attention recovery is what MergeMix needs, so the attention pass merges tokens as the paper's does.
        model.Backbone.MergeEnabled = model.Options.EffectiveMergeCount > 0;
        return model.AttentionSource();
    }
}
