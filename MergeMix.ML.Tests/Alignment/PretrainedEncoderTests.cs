using MergeMix.ML.Alignment;
using MergeMix.ML.Data;
using MergeMix.ML.Vision;
using Microsoft.ML;
using Microsoft.ML.Data;
using TorchSharp;
using static TorchSharp.torch;

namespace MergeMix.ML.Tests.Alignment;

/// <summary>The MLLM's vision tower started from a timm checkpoint the test writes (random weights).</summary>
[TestClass]
public sealed class PretrainedEncoderTests
{
    private string folder = "";

    [TestInitialize]
    public void CreateFolder() => folder = Directory.CreateTempSubdirectory("vit-encoder-").FullName;

    [TestCleanup]
    public void DeleteFolder() => Directory.Delete(folder, recursive: true);

    /// <summary>A 3-block, 24-wide, 2-head ViT for 32-pixel images (4×4 grid of 8-pixel patches), saved in timm's layout.</summary>
    private (VisionTransformer Source, string Path) Checkpoint()
    {
        var source = new VisionTransformer(new VisionTransformerOptions
        {
            ImageSize = 32, PatchSize = 8, Width = 24, Depth = 3, Heads = 2, MlpRatio = 2.0, ClassCount = 7,
        }, new Generator(31));
        string path = Path.Combine(folder, "tower.safetensors");
        VisionTransformerCheckpoint.SaveTimm(source, path);
        return (source, path);
    }

    private static bool Same(Tensor a, Tensor b) => a.shape.SequenceEqual(b.shape) && a.eq(b).all().item<bool>();

    [TestMethod]
    public void EncoderTakesTheCheckpointsArchitectureAndWeights()
    {
        var (source, path) = Checkpoint();
        using var encoder = new VisionTransformerEncoder(new VisionTransformerEncoderOptions
        {
            Vision = new VisionTransformerOptions { ImageSize = 16, PatchSize = 4, Width = 64, Depth = 4, Heads = 4, ClassCount = 1, DropPathRate = 0 },
            InitialWeights = new PretrainedWeights { Path = path, Heads = 2 },
            FrozenBlocks = 1,
            FeatureLayer = -1,
        });

        var o = encoder.Options;
        Assert.IsNull(o.InitialWeights, "the resolved options must not need the file again");
        Assert.AreEqual((16, 8, 24, 3, 2, 1), (o.Vision.ImageSize, o.Vision.PatchSize, o.Vision.Width, o.Vision.Depth, o.Vision.Heads, o.Vision.ClassCount));
        Assert.AreEqual(24, encoder.FeatureDim);
        Assert.AreEqual(4, encoder.TokenCount);

        var loaded = encoder.Backbone.named_parameters().ToDictionary(p => p.name, p => p.parameter);
        var original = source.state_dict();
        Assert.IsTrue(Same(loaded["blocks.2.fc1.weight"], original["blocks.2.fc1.weight"]));
        Assert.IsTrue(Same(loaded["posEmbed"], VisionTransformerCheckpoint.ResamplePositionEmbedding(original["posEmbed"], 2)));
        CollectionAssert.AreEqual(new long[] { 1, 24 }, loaded["head.weight"].shape);
        foreach (var name in new[] { "patchEmbed.weight", "clsToken", "posEmbed", "blocks.0.attn.qkv.weight", "blocks.0.norm2.bias" })
            Assert.IsFalse(loaded[name].requires_grad, $"{name} should be frozen");
        foreach (var name in new[] { "blocks.1.attn.qkv.weight", "blocks.2.fc2.bias", "norm.weight" })
            Assert.IsTrue(loaded[name].requires_grad, $"{name} should train");

        // The tower's features are the checkpoint's ViT run on the normalised images.
        using var reference = VisionTransformerCheckpoint.Read(path, heads: 2).CreateModel(imageSize: 16);
        using var images = rand(new long[] { 2, 3, 16, 16 }, generator: new Generator(4)).mul(tensor(255f));
        encoder.eval();
        reference.eval();
        using var expected = reference.Encode(encoder.Normalize(images), 2, merge: false);
        Assert.IsTrue(Same(expected, encoder.call(images)));

        var tooMany = new VisionTransformerEncoderOptions { InitialWeights = new PretrainedWeights { Path = path, Heads = 2 }, FrozenBlocks = 4 };
        tooMany.Vision.ImageSize = 16;
        var error = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => new VisionTransformerEncoder(tooMany));
        StringAssert.Contains(error.Message, "FrozenBlocks must be in [0, 3]");
    }

    private sealed class Row
    {
        [VectorType(3, 16, 16)] public float[] Features { get; set; } = Array.Empty<float>();
        public string Prompt { get; set; } = "";
        public string Answer { get; set; } = "";
    }

    [TestMethod]
    public void PreferenceTuningStartsItsTowerFromTheCheckpointAndKeepsFrozenBlocks()
    {
        var (source, path) = Checkpoint();
        var (images, scenes) = SyntheticShapes.Generate(4, seed: 3, new SyntheticShapesOptions { Width = 16, Height = 16, MaxObjects = 1 });
        var rows = Enumerable.Range(0, scenes.Count)
            .Select(i => new Row { Features = images.Image(i).ToArray(), Prompt = "describe the image", Answer = scenes[i].Caption }).ToArray();
        var ml = new MLContext(seed: 0);
        var options = new PreferenceTuningEstimator.Options
        {
            Encoder = new VisionTransformerEncoderOptions
            {
                InitialWeights = new PretrainedWeights { Path = path, Heads = 2 },
                FrozenBlocks = 2,
                FeatureLayer = -1,
                ChannelMean = PretrainedWeights.HalfMean,
                ChannelStd = PretrainedWeights.HalfStd,
            },
            Model = new MultimodalLmOptions { ModelDim = 32, Layers = 1, Heads = 2, MaxTextLength = 20, InitSeed = 5 },
            Trainer = new PreferenceTrainerOptions { BatchSize = 4, LearningRate = 1e-2 },
            SftEpochs = 1,
            PreferenceEpochs = 0,
            Seed = 7,
        };
        using var model = ml.Alignment().PreferenceTuning(options).Fit(ml.Data.LoadFromEnumerable(rows));

        Assert.IsNull(model.EncoderOptions.InitialWeights);
        Assert.AreEqual(24, model.EncoderOptions.Vision.Width);
        var tower = ((VisionTransformerEncoder)model.Model.Vision).Backbone.state_dict();
        var original = source.state_dict();
        Assert.IsTrue(Same(tower["blocks.1.attn.proj.weight"], original["blocks.1.attn.proj.weight"]), "a frozen block was trained");
        Assert.IsTrue(Same(tower["patchEmbed.weight"], original["patchEmbed.weight"]), "the frozen embedding was trained");
        Assert.IsFalse(Same(tower["blocks.2.attn.proj.weight"], original["blocks.2.attn.proj.weight"]), "the last block was not trained");

        // The saved model rebuilds its tower from its own header, without the checkpoint file.
        string saved = Path.Combine(folder, "mllm.zip");
        model.Save(saved);
        File.Delete(path);
        using var loaded = PreferenceTuningTransformer.Load(saved);
        var reloaded = ((VisionTransformerEncoder)loaded.Model.Vision).Backbone.state_dict();
        Assert.IsTrue(Same(tower["blocks.2.fc1.weight"], reloaded["blocks.2.fc1.weight"]));
    }
}
