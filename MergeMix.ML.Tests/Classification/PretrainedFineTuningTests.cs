using MergeMix.ML.Classification;
using MergeMix.ML.Vision;
using Microsoft.ML;
using TorchSharp;
using static MergeMix.ML.Tests.Classification.TinyClassifier;
using static TorchSharp.torch;

namespace MergeMix.ML.Tests.Classification;

[TestClass]
public sealed class PretrainedFineTuningTests
{
    private string folder = "";

    [TestInitialize]
    public void CreateFolder() => folder = Directory.CreateTempSubdirectory("vit-finetune-").FullName;

    [TestCleanup]
    public void DeleteFolder() => Directory.Delete(folder, recursive: true);

    /// <summary>A "pretrained" ViT written as a timm safetensors file: 32-pixel images (8×8 grid), width 16, 2 blocks, 2 heads.</summary>
    private (VisionTransformer Source, string Path) Pretrained(int classes)
    {
        var source = new VisionTransformer(new VisionTransformerOptions
        {
            ImageSize = 32, PatchSize = 4, Width = 16, Depth = 2, Heads = 2, MlpRatio = 2.0, ClassCount = classes,
        }, new Generator(21));
        string path = Path.Combine(folder, "pretrained.safetensors");
        VisionTransformerCheckpoint.SaveTimm(source, path);
        return (source, path);
    }

    private static bool Same(Tensor a, Tensor b) => a.shape.SequenceEqual(b.shape) && a.eq(b).all().item<bool>();

    [TestMethod]
    public void TrainerStartsFromACheckpointWithFrozenBlocksAndAFreshHead()
    {
        var (source, path) = Pretrained(classes: 10);
        var ml = new MLContext(1);
        var options = Options();
        options.Model = new VisionTransformerOptions { Width = 192, Depth = 6, Heads = 3, DropPathRate = 0.0 }; // replaced by the checkpoint's
        options.InitialWeights = new PretrainedWeights { Path = path, Heads = 2 };
        options.FrozenBlocks = 1;
        options.ChannelMean = PretrainedWeights.HalfMean;
        options.ChannelStd = PretrainedWeights.HalfStd;
        using var classifier = ml.MulticlassClassification.Trainers.VisionTransformer(options).Fit(Shapes(32, 1).ToDataView(ml));

        var o = classifier.Model.Options;
        Assert.AreEqual((16, 16, 2, 2, 4, 32, 6), (o.ImageSize, o.Width, o.Depth, o.Heads, o.PatchSize, o.MlpHidden, o.ClassCount));
        var trained = classifier.Model.Backbone.state_dict();
        var original = source.state_dict();
        // Frozen: the embedding (its position grid resampled from 8×8 to 4×4) and block 0.
        Assert.IsTrue(Same(trained["posEmbed"], VisionTransformerCheckpoint.ResamplePositionEmbedding(original["posEmbed"], 4)));
        foreach (var name in new[] { "patchEmbed.weight", "clsToken", "blocks.0.attn.qkv.weight", "blocks.0.fc2.bias", "blocks.0.norm1.weight" })
            Assert.IsTrue(Same(trained[name], original[name]), $"{name} was trained although frozen");
        // Trained: block 1 and the final norm, starting from the checkpoint's values.
        foreach (var name in new[] { "blocks.1.attn.qkv.weight", "blocks.1.fc1.weight", "norm.bias" })
        {
            Assert.IsFalse(Same(trained[name], original[name]), $"{name} was not trained");
            Assert.IsTrue((trained[name] - original[name]).abs().max().item<float>() < 0.05f, $"{name} did not start from the checkpoint");
        }
        CollectionAssert.AreEqual(new long[] { 6, 16 }, trained["head.weight"].shape);

        // What the checkpoint does not fit is refused before training, naming the option.
        var frozenTooMany = Options();
        frozenTooMany.InitialWeights = new PretrainedWeights { Path = path, Heads = 2 };
        frozenTooMany.FrozenBlocks = 3;
        var error = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => ml.MulticlassClassification.Trainers.VisionTransformer(frozenTooMany).Fit(Shapes(32, 1).ToDataView(ml)));
        StringAssert.Contains(error.Message, "FrozenBlocks (3) must be at most the depth");
        var noHeads = Options();
        noHeads.InitialWeights = new PretrainedWeights { Path = path };
        StringAssert.Contains(Assert.ThrowsExactly<ArgumentException>(() => ml.MulticlassClassification.Trainers.VisionTransformer(noHeads).Fit(Shapes(32, 1).ToDataView(ml))).Message,
            "PretrainedWeights.Heads");
    }

    [TestMethod]
    public void HeadLearningRateMultiplierScalesTheHeadsSteps()
    {
        // One AdamW step moves every parameter by about its learning rate (m̂/√v̂ = ±1 on the first step), so after one
        // step the head's biases move 10× as far as the final norm's when the multiplier is 10.
        var (source, path) = Pretrained(classes: 6);
        var ml = new MLContext(1);
        var options = Options();
        options.Epochs = 1;
        options.BatchSize = 16;
        options.WarmupEpochs = 0;
        options.LearningRate = 1e-3;
        options.MinLearningRate = 1e-3;
        options.InitialWeights = new PretrainedWeights { Path = path, Heads = 2 };
        options.HeadLearningRateMultiplier = 10;
        using var classifier = ml.MulticlassClassification.Trainers.VisionTransformer(options).Fit(Shapes(16, 3).ToDataView(ml));
        var trained = classifier.Model.Backbone.state_dict();
        var original = source.state_dict();
        float Step(string name) => (trained[name] - original[name]).abs().max().item<float>();
        Assert.AreEqual(1e-2, Step("head.bias"), 1e-4, "head bias step");
        Assert.AreEqual(1e-3, Step("norm.bias"), 1e-5, "norm bias step");
    }
}
