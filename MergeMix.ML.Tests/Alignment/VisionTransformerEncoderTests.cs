using MergeMix.ML.Alignment;
using MergeMix.ML.Vision;
using TorchSharp;
using static TorchSharp.torch;

namespace MergeMix.ML.Tests.Alignment;

[TestClass]
public sealed class VisionTransformerEncoderTests
{
    // 16×16 images, 4-pixel patches: 16 patch tokens; 3 blocks, so the default feature layer −2 is block 1.
    internal static VisionTransformerEncoderOptions Small(bool merge = false, int featureLayer = -2) => new()
    {
        Vision = new VisionTransformerOptions { ImageSize = 16, PatchSize = 4, Width = 16, Depth = 3, Heads = 2, ClassCount = 1, DropPathRate = 0, MergeCount = 8 },
        FeatureLayer = featureLayer,
        MergeTokens = merge,
        InitSeed = 4,
    };

    private static Tensor RawImages(int batch, long seed)
    {
        using var g = new Generator((ulong)seed);
        return (rand(new long[] { batch, 3, 16, 16 }, generator: g) * 255).floor();
    }

    private static float[] Data(Tensor t) => t.contiguous().data<float>().ToArray();

    [TestMethod]
    public void FeaturesArePatchTokensOfThePenultimateBlockOnNormalisedPixels()
    {
        using var scope = NewDisposeScope();
        using var encoder = new VisionTransformerEncoder(Small());
        encoder.eval();
        Assert.AreEqual(1, encoder.FeatureLayer);
        Assert.AreEqual(16, encoder.TokenCount);
        Assert.AreEqual(16, encoder.FeatureDim);
        var images = RawImages(2, 1);
        var features = encoder.forward(images);
        CollectionAssert.AreEqual(new long[] { 2, 16, 16 }, features.shape);
        // Same as the ViT's block-1 tokens (CLS dropped) on (x − 127.5) / 64.
        var expected = encoder.Backbone.Encode((images - 127.5f) / 64f, 1, merge: false);
        CollectionAssert.AreEqual(Data(expected), Data(features));
        Assert.AreEqual(2, new VisionTransformerEncoder(Small(featureLayer: -1)).FeatureLayer);
        Assert.AreEqual(0, new VisionTransformerEncoder(Small(featureLayer: 0)).FeatureLayer);
    }

    [TestMethod]
    public void MergingShrinksTheTokenCountByTheScheduleUpToTheFeatureLayer()
    {
        using var scope = NewDisposeScope();
        // MergeSchedule.ForModel(3 blocks, 8 merges, 16 patches) = [3, 3, 2]: blocks 0 and 1 merge 6 of 16 tokens.
        CollectionAssert.AreEqual(new[] { 3, 3, 2 }, new VisionTransformer(Small().Vision).Schedule);
        using var merged = new VisionTransformerEncoder(Small(merge: true));
        Assert.AreEqual(10, merged.TokenCount);
        CollectionAssert.AreEqual(new long[] { 2, 10, 16 }, merged.forward(RawImages(2, 2)).shape);
        using var last = new VisionTransformerEncoder(Small(merge: true, featureLayer: -1));
        Assert.AreEqual(8, last.TokenCount);
        CollectionAssert.AreEqual(new long[] { 1, 8, 16 }, last.forward(RawImages(1, 3)).shape);
    }

    [TestMethod]
    public void AttentionSourceScoresEveryPatchOfRawImages()
    {
        using var scope = NewDisposeScope();
        using var encoder = new VisionTransformerEncoder(Small());
        var source = encoder.AttentionSource();
        Assert.AreEqual(4, source.PatchSize);
        var images = RawImages(3, 4);
        var scores = source.PatchAttention(images);
        CollectionAssert.AreEqual(new long[] { 3, 16 }, scores.shape);
        // Default attention layer min(2·3/3, feature layer 1) = 1, on normalised pixels.
        var expected = new VisionTransformerAttentionSource(encoder.Backbone).PatchAttention((images - 127.5f) / 64f);
        CollectionAssert.AreEqual(Data(expected), Data(scores));
        Assert.AreEqual(1, encoder.Backbone.AttentionLayer);
    }

    [TestMethod]
    public void InvalidOptionsNameTheField()
    {
        Assert.AreEqual("FeatureLayer", Assert.ThrowsExactly<ArgumentOutOfRangeException>(
            () => new VisionTransformerEncoder(Small(featureLayer: 3))).ParamName);
        Assert.AreEqual("FeatureLayer", Assert.ThrowsExactly<ArgumentOutOfRangeException>(
            () => new VisionTransformerEncoder(Small(featureLayer: -4))).ParamName);
        var late = Small();
        late.Vision.AttentionLayer = 2;
        Assert.AreEqual("AttentionLayer", Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => new VisionTransformerEncoder(late)).ParamName);
        var badStd = Small();
        badStd.ChannelStd = new[] { 1f, 0f, 1f };
        Assert.AreEqual("ChannelStd", Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => new VisionTransformerEncoder(badStd)).ParamName);
        var badMean = Small();
        badMean.ChannelMean = new[] { 1f, 2f };
        Assert.AreEqual("ChannelMean", Assert.ThrowsExactly<ArgumentException>(() => new VisionTransformerEncoder(badMean)).ParamName);
    }

    [TestMethod]
    public void LanguageModelOnTheEncoderRoundTripsThroughSaveAndLoad()
    {
        using var scope = NewDisposeScope();
        var tokenizer = MultimodalTokenizer.CreateFromCorpus(MultimodalTokenizerTests.TaskSentences);
        var options = Small(merge: true);
        options.ChannelMean = new[] { 100f };
        using var model = new MultimodalLm(new VisionTransformerEncoder(options), tokenizer, MultimodalLmTests.TinyOptions);
        using (no_grad()) foreach (var p in model.parameters()) p.add_(0.01);
        var images = RawImages(2, 5);
        var ids = tensor(new long[] { 2, 5, 6, 7, 2, 8, 9, 0 }, new long[] { 2, 4 });
        var before = model.forward(images, ids);

        using var stream = new MemoryStream();
        model.Save(stream);
        stream.Position = 0;
        var fresh = options.Clone();
        fresh.InitSeed = 77;
        using var loaded = MultimodalLm.Load(stream, new VisionTransformerEncoder(fresh));
        Assert.AreEqual(10, loaded.ImageTokenCount);
        CollectionAssert.AreEqual(Data(before), Data(loaded.forward(images, ids)));
    }

    [TestMethod]
    public void TrainingUpdatesTheBlocksUpToTheFeatureLayerOnly()
    {
        using var scope = NewDisposeScope();
        var tokenizer = MultimodalTokenizer.CreateFromCorpus(MultimodalTokenizerTests.TaskSentences);
        using var model = new MultimodalLm(new VisionTransformerEncoder(Small()), tokenizer, MultimodalLmTests.TinyOptions);
        var encoder = (VisionTransformerEncoder)model.Vision;
        var before = encoder.named_parameters().ToDictionary(p => p.name, p => Data(p.parameter));
        using var data = PreferenceDataset.FromPairs(RawImages(2, 6), new[] { "what color is the shape?", "what is in the image?" },
            new[] { "a red circle.", "a blue square, on the left." }, new[] { "a red circle.", "a red circle." });
        using var trainer = new PreferenceTrainer(model, new PreferenceTrainerOptions { Objective = PreferenceObjective.Sft, BatchSize = 2 });
        trainer.Train(data);
        var after = encoder.named_parameters().ToDictionary(p => p.name, p => Data(p.parameter));
        var unchanged = before.Keys.Where(k => before[k].SequenceEqual(after[k])).OrderBy(k => k).ToArray();
        // Blocks after the feature layer (block 2), the final norm and the head are never run.
        var expected = before.Keys.Where(k => k.StartsWith("vit.blocks.2.") || k.StartsWith("vit.norm.") || k.StartsWith("vit.head."))
            .OrderBy(k => k).ToArray();
        Assert.AreEqual(16, expected.Length, string.Join(", ", before.Keys));
        CollectionAssert.AreEqual(expected, unchanged);
    }
}
