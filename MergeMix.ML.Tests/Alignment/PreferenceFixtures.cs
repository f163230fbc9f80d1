using MergeMix.ML.Alignment;
using MergeMix.ML.Vision;
using static TorchSharp.torch;

namespace MergeMix.ML.Tests.Alignment;

/// <summary>Set-ups shared by the preference-tuning test classes.</summary>
internal static class PreferenceFixtures
{
    /// <summary>
    /// An estimator small enough to fit the 16×16 synthetic scenes in seconds; each test class sets the epochs and the
    /// generation length it exercises.
    /// </summary>
    public static PreferenceTuningEstimator.Options TinyEstimator(int sftEpochs, int preferenceEpochs, int maxNewTokens) => new()
    {
        Encoder = TinyEncoder(),
        Model = new MultimodalLmOptions { ModelDim = 32, Layers = 1, Heads = 2, MaxTextLength = 20, InitSeed = 5 },
        Trainer = new PreferenceTrainerOptions { BatchSize = 4, LearningRate = 1e-3 },
        SftEpochs = sftEpochs,
        PreferenceEpochs = preferenceEpochs,
        MaxNewTokens = maxNewTokens,
        Seed = 7,
    };

    public static VisionTransformerEncoderOptions TinyEncoder() => new()
    {
        Vision = new VisionTransformerOptions { PatchSize = 4, Width = 16, Depth = 2, Heads = 2, ClassCount = 1, DropPathRate = 0 },
        FeatureLayer = -1,
        InitSeed = 2,
    };

    public static readonly string[] Colors = { "red", "green", "blue" };

    public const string ColorPrompt = "what color is the shape?";

    /// <summary>A tokenizer of the colour captions and prompt, and of the one more sentence a test class answers with.</summary>
    public static MultimodalTokenizer ColorTokenizer(string otherSentence) => MultimodalTokenizer.CreateFromCorpus(
        Colors.Select(c => $"a {c} shape.").Append(ColorPrompt).Append(otherSentence));

    public static MultimodalLm ColorModel(MultimodalTokenizer tokenizer, int maxTextLength = 16) =>
        new(new TinyPatchEncoder(), tokenizer, new MultimodalLmOptions { ModelDim = 32, Layers = 2, Heads = 2, MaxTextLength = maxTextLength, InitSeed = 11 });

    // n images of solid colours cycling red, green, blue, with a small per-row brightness change.
    public static Tensor ColorImages(int n)
    {
        var data = new float[n * 3 * 8 * 8];
        for (int i = 0; i < n; i++)
            for (int c = 0; c < 3; c++)
                Array.Fill(data, c == i % 3 ? 0.8f + 0.01f * i : 0.1f, (i * 3 + c) * 64, 64);
        return tensor(data, new long[] { n, 3, 8, 8 });
    }

    public static string ColorCaption(int i) => $"a {Colors[i % 3]} shape.";

    /// <summary>n pairs of <see cref="ColorImages"/> asked <see cref="ColorPrompt"/>: row i's caption preferred to row i + 1's.</summary>
    public static PreferenceDataset ColorPairs(int n, Func<int, string> caption) => PreferenceDataset.FromPairs(
        ColorImages(n), Enumerable.Repeat(ColorPrompt, n).ToArray(),
        Enumerable.Range(0, n).Select(caption).ToArray(),
        Enumerable.Range(0, n).Select(i => caption(i + 1)).ToArray());
}
