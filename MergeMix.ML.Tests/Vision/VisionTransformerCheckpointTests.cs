using MergeMix.ML.Vision;
using TorchSharp;
using TorchSharp.PyBridge;
using static TorchSharp.torch;

namespace MergeMix.ML.Tests.Vision;

[TestClass]
public sealed class VisionTransformerCheckpointTests
{
    private const int Image = 16, Patch = 4, Width = 32, Depth = 2, Heads = 4, Hidden = 64, Classes = 5;
    private static readonly int Tokens = (Image / Patch) * (Image / Patch) + 1;

    private string folder = "";

    [TestInitialize]
    public void CreateFolder() => folder = Directory.CreateTempSubdirectory("vit-checkpoint-").FullName;

    [TestCleanup]
    public void DeleteFolder() => Directory.Delete(folder, recursive: true);

    /// <summary>A random ViT checkpoint in timm's names, as timm's state_dict() holds it.</summary>
    private static Dictionary<string, Tensor> RandomTimm(long seed, int depth = Depth, int classes = Classes)
    {
        var g = new Generator((ulong)seed);
        // normal_ takes doubles, not Scalars: no implicit Scalar for TorchSharp 0.107's finalizer race.
        Tensor R(params long[] shape) => empty(shape).normal_(0.0, 0.2, g);
        Tensor One(long width) => empty(width).normal_(1.0, 0.2, g);
        var w = new Dictionary<string, Tensor>
        {
            ["cls_token"] = R(1, 1, Width),
            ["pos_embed"] = R(1, Tokens, Width),
            ["patch_embed.proj.weight"] = R(Width, 3, Patch, Patch),
            ["patch_embed.proj.bias"] = R(Width),
            ["norm.weight"] = One(Width),
            ["norm.bias"] = R(Width),
            ["head.weight"] = R(classes, Width),
            ["head.bias"] = R(classes),
        };
        for (int i = 0; i < depth; i++)
        {
            string b = $"blocks.{i}.";
            w[b + "norm1.weight"] = One(Width); w[b + "norm1.bias"] = R(Width);
            w[b + "attn.qkv.weight"] = R(3 * Width, Width); w[b + "attn.qkv.bias"] = R(3 * Width);
            w[b + "attn.proj.weight"] = R(Width, Width); w[b + "attn.proj.bias"] = R(Width);
            w[b + "norm2.weight"] = One(Width); w[b + "norm2.bias"] = R(Width);
            w[b + "mlp.fc1.weight"] = R(Hidden, Width); w[b + "mlp.fc1.bias"] = R(Hidden);
            w[b + "mlp.fc2.weight"] = R(Width, Hidden); w[b + "mlp.fc2.bias"] = R(Width);
        }
        return w;
    }

    /// <summary>The same weights in Hugging Face ViTForImageClassification's names (q, k, v split).</summary>
    private static Dictionary<string, Tensor> ToHuggingFace(Dictionary<string, Tensor> timm, string prefix = "vit.", int depth = Depth)
    {
        var w = new Dictionary<string, Tensor>
        {
            [prefix + "embeddings.cls_token"] = timm["cls_token"],
            [prefix + "embeddings.position_embeddings"] = timm["pos_embed"],
            [prefix + "embeddings.patch_embeddings.projection.weight"] = timm["patch_embed.proj.weight"],
            [prefix + "embeddings.patch_embeddings.projection.bias"] = timm["patch_embed.proj.bias"],
            [prefix + "layernorm.weight"] = timm["norm.weight"],
            [prefix + "layernorm.bias"] = timm["norm.bias"],
            ["classifier.weight"] = timm["head.weight"],
            ["classifier.bias"] = timm["head.bias"],
        };
        for (int i = 0; i < depth; i++)
        {
            string t = $"blocks.{i}.", h = $"{prefix}encoder.layer.{i}.";
            var qkvWeight = timm[t + "attn.qkv.weight"].chunk(3, 0);
            var qkvBias = timm[t + "attn.qkv.bias"].chunk(3, 0);
            string[] parts = { "query", "key", "value" };
            for (int p = 0; p < 3; p++)
            {
                // Clones: PyBridge's pickler writes a view's own bytes but its offset into the shared storage.
                w[h + $"attention.attention.{parts[p]}.weight"] = qkvWeight[p].clone();
                w[h + $"attention.attention.{parts[p]}.bias"] = qkvBias[p].clone();
            }
            w[h + "layernorm_before.weight"] = timm[t + "norm1.weight"]; w[h + "layernorm_before.bias"] = timm[t + "norm1.bias"];
            w[h + "attention.output.dense.weight"] = timm[t + "attn.proj.weight"]; w[h + "attention.output.dense.bias"] = timm[t + "attn.proj.bias"];
            w[h + "layernorm_after.weight"] = timm[t + "norm2.weight"]; w[h + "layernorm_after.bias"] = timm[t + "norm2.bias"];
            w[h + "intermediate.dense.weight"] = timm[t + "mlp.fc1.weight"]; w[h + "intermediate.dense.bias"] = timm[t + "mlp.fc1.bias"];
            w[h + "output.dense.weight"] = timm[t + "mlp.fc2.weight"]; w[h + "output.dense.bias"] = timm[t + "mlp.fc2.bias"];
        }
        return w;
    }

    /// <summary>
    /// timm's VisionTransformer.forward written out on the state dict (class token first, pre-norm blocks, softmax
    /// attention, exact GELU, final norm, head on the CLS token): the reference a loaded model must reproduce.
    /// </summary>
    private static Tensor TimmForward(Dictionary<string, Tensor> w, Tensor images, double eps, int heads = Heads, int depth = Depth)
    {
        using var scope = NewDisposeScope();
        long b = images.shape[0];
        var x = nn.functional.conv2d(images, w["patch_embed.proj.weight"], w["patch_embed.proj.bias"], strides: new long[] { Patch, Patch });
        x = x.flatten(2).transpose(1, 2);
        x = cat(new[] { w["cls_token"].expand(b, -1, -1), x }, 1) + w["pos_embed"];
        long n = x.shape[1], d = Width / heads;
        Tensor Ln(Tensor t, string name) => nn.functional.layer_norm(t, new long[] { Width }, w[name + ".weight"], w[name + ".bias"], eps);
        for (int i = 0; i < depth; i++)
        {
            string p = $"blocks.{i}.";
            var qkv = nn.functional.linear(Ln(x, p + "norm1"), w[p + "attn.qkv.weight"], w[p + "attn.qkv.bias"]).reshape(b, n, 3, heads, d).permute(2, 0, 3, 1, 4);
            var attention = qkv[0].matmul(qkv[1].transpose(-2, -1)).mul(tensor(1 / Math.Sqrt(d), ScalarType.Float32)).softmax(-1);
            var mixed = attention.matmul(qkv[2]).transpose(1, 2).reshape(b, n, Width);
            x = x + nn.functional.linear(mixed, w[p + "attn.proj.weight"], w[p + "attn.proj.bias"]);
            var h = nn.functional.gelu(nn.functional.linear(Ln(x, p + "norm2"), w[p + "mlp.fc1.weight"], w[p + "mlp.fc1.bias"]));
            x = x + nn.functional.linear(h, w[p + "mlp.fc2.weight"], w[p + "mlp.fc2.bias"]);
        }
        var logits = nn.functional.linear(Ln(x, "norm").select(1, 0), w["head.weight"], w["head.bias"]);
        return logits.MoveToOuterDisposeScope();
    }

    private static void Save(string path, Dictionary<string, Tensor> weights)
    {
        if (path.EndsWith(".safetensors")) Safetensors.SaveStateDict(path, weights);
        else PyTorchPickler.PickleStateDict(path, weights);
    }

    private static Tensor Images(long seed, int size = Image) => randn(new long[] { 3, 3, size, size }, generator: new Generator((ulong)seed));

    private static bool Same(Tensor a, Tensor b) => a.shape.SequenceEqual(b.shape) && a.eq(b).all().item<bool>();

    private static float MaxDifference(Tensor a, Tensor b) => (a - b).abs().max().item<float>();

    [TestMethod]
    [DataRow("timm", "model.safetensors")]
    [DataRow("timm", "model.pth")]
    [DataRow("hf", "model.safetensors")]
    [DataRow("hf", "pytorch_model.bin")]
    [DataRow("hf-bare", "model.safetensors")]
    public void LoadedCheckpointComputesWhatTimmComputes(string layout, string fileName)
    {
        var timm = RandomTimm(1);
        string path = Path.Combine(folder, fileName);
        Save(path, layout switch { "timm" => timm, "hf" => ToHuggingFace(timm), _ => ToHuggingFace(timm, prefix: "") });

        using var checkpoint = VisionTransformerCheckpoint.Read(path, heads: Heads);
        Assert.AreEqual(layout == "timm" ? CheckpointLayout.Timm : CheckpointLayout.HuggingFace, checkpoint.Layout);
        var o = checkpoint.Options;
        Assert.AreEqual((Image, Patch, 3, Width, Depth, Heads, Hidden, Classes, 0),
            (o.ImageSize, o.PatchSize, o.Channels, o.Width, o.Depth, o.Heads, o.MlpHidden, o.ClassCount, o.EffectiveMergeCount));
        double eps = layout == "timm" ? 1e-6 : 1e-12;
        Assert.AreEqual(eps, o.LayerNormEpsilon, "timm trains with LayerNorm ε 1e-6, Hugging Face with 1e-12");

        using var model = checkpoint.CreateModel();
        model.eval();
        using var images = Images(2);
        using var expected = TimmForward(timm, images, eps);
        using var actual = model.call(images);
        Assert.IsTrue(MaxDifference(expected, actual) < 1e-5f, $"max |Δ| {MaxDifference(expected, actual)}");
    }

    [TestMethod]
    public void HalfPrecisionAndWrappedCheckpointsLoad()
    {
        // bf16 safetensors (as many hub files are): read as float32 of the same values.
        var timm = RandomTimm(14);
        var bf16 = timm.ToDictionary(kv => kv.Key, kv => kv.Value.to(ScalarType.BFloat16));
        string half = Path.Combine(folder, "bf16.safetensors");
        Save(half, bf16);
        using (var checkpoint = VisionTransformerCheckpoint.Read(half, Heads))
        using (var model = checkpoint.CreateModel())
        {
            model.eval();
            using var images = Images(15);
            var widened = bf16.ToDictionary(kv => kv.Key, kv => kv.Value.to(ScalarType.Float32));
            Assert.IsTrue(MaxDifference(TimmForward(widened, images, 1e-6), model.call(images)) < 1e-5f);
        }

        // A training script's checkpoint: {"model": state_dict of a DataParallel model ("module." names), "epoch": 299}.
        var wrapped = new Dictionary<string, object>
        {
            ["model"] = timm.ToDictionary(kv => "module." + kv.Key, kv => kv.Value),
            ["epoch"] = 299L,
        };
        string script = Path.Combine(folder, "checkpoint.pth");
        PyTorchPickler.PickleStateDict(script, wrapped);
        using (var checkpoint = VisionTransformerCheckpoint.Read(script, Heads))
        using (var model = checkpoint.CreateModel())
        {
            model.eval();
            using var images = Images(16);
            Assert.IsTrue(MaxDifference(TimmForward(timm, images, 1e-6), model.call(images)) < 1e-5f);
        }
    }

    [TestMethod]
    public void ExportedTimmSafetensorsReloadIdentically()
    {
        using var model = new VisionTransformer(new VisionTransformerOptions
        {
            ImageSize = Image, PatchSize = Patch, Width = Width, Depth = Depth, Heads = Heads, MlpRatio = Hidden / (double)Width, ClassCount = Classes, MergeCount = 0,
        }, new Generator(3));
        model.eval();
        string path = Path.Combine(folder, "export", "vit.safetensors");
        VisionTransformerCheckpoint.SaveTimm(model, path);

        // The file speaks timm: exactly timm's names and shapes, so timm's load_state_dict takes it.
        var written = Safetensors.LoadStateDict(path);
        var timmNames = RandomTimm(0).ToDictionary(kv => kv.Key, kv => kv.Value.shape);
        CollectionAssert.AreEquivalent(timmNames.Keys.ToList(), written.Keys.ToList());
        foreach (var (name, shape) in timmNames) CollectionAssert.AreEqual(shape, written[name].shape, name);

        using var checkpoint = VisionTransformerCheckpoint.Read(path, heads: Heads);
        using var reloaded = checkpoint.CreateModel();
        reloaded.eval();
        var original = model.state_dict();
        foreach (var (name, value) in reloaded.state_dict())
            Assert.IsTrue(Same(value, original[name]), $"{name} differs after the round trip");
        using var images = Images(4);
        CollectionAssert.AreEqual(model.call(images).data<float>().ToArray(), reloaded.call(images).data<float>().ToArray());
        // timm's reference forward on the exported file gives the model's outputs.
        Assert.IsTrue(MaxDifference(TimmForward(written, images, 1e-6), model.call(images)) < 1e-5f);

        // Overwriting a file with a smaller checkpoint leaves no stale tail.
        using var small = new VisionTransformer(new VisionTransformerOptions { ImageSize = 8, PatchSize = 4, Width = 8, Depth = 1, Heads = 2, ClassCount = 2 });
        VisionTransformerCheckpoint.SaveTimm(small, path);
        Assert.AreEqual(8, VisionTransformerCheckpoint.Read(path, heads: 2).Options.Width);
    }

    [TestMethod]
    public void PositionEmbeddingIsResampledForAnotherImageSize()
    {
        var timm = RandomTimm(5);
        string path = Path.Combine(folder, "vit.safetensors");
        Save(path, timm);
        using var checkpoint = VisionTransformerCheckpoint.Read(path, heads: Heads);

        // Same grid: returned as it is, bit for bit.
        var same = VisionTransformerCheckpoint.ResamplePositionEmbedding(timm["pos_embed"], Image / Patch);
        Assert.IsTrue(Same(same, timm["pos_embed"]));

        // 24-pixel images: a 6×6 grid. The CLS row is kept; a constant grid stays constant (bicubic weights sum to 1).
        var resized = VisionTransformerCheckpoint.ResamplePositionEmbedding(timm["pos_embed"], 6);
        CollectionAssert.AreEqual(new long[] { 1, 37, Width }, resized.shape);
        Assert.IsTrue(Same(resized.slice(1, 0, 1, 1), timm["pos_embed"].slice(1, 0, 1, 1)));
        Tensor Constant(long tokens) => tensor(Enumerable.Repeat(0.25f, (int)tokens * Width).ToArray(), new long[] { 1, tokens, Width });
        Assert.IsTrue(MaxDifference(VisionTransformerCheckpoint.ResamplePositionEmbedding(Constant(Tokens), 6), Constant(37)) < 1e-6f);
        // The grid goes through torch's bicubic with align_corners false and antialias true: the call timm's
        // resample_abs_pos_embed makes. Antialiasing changes the values (other cubic coefficient, border weights),
        // so the switch is checked to be live, growing and shrinking.
        var grid = timm["pos_embed"].slice(1, 1, Tokens, 1).reshape(1, 4, 4, Width).permute(0, 3, 1, 2);
        Tensor Bicubic(int side, bool antialias) =>
            nn.functional.interpolate(grid, new long[] { side, side }, mode: InterpolationMode.Bicubic, align_corners: false, antialias: antialias)
                .permute(0, 2, 3, 1).reshape(1, side * side, Width);
        Assert.IsTrue(Same(resized.slice(1, 1, 37, 1), Bicubic(6, antialias: true)));
        Assert.IsTrue(MaxDifference(resized.slice(1, 1, 37, 1), Bicubic(6, antialias: false)) > 1e-3f);
        var shrunk = VisionTransformerCheckpoint.ResamplePositionEmbedding(timm["pos_embed"], 2);
        Assert.IsTrue(Same(shrunk.slice(1, 1, 5, 1), Bicubic(2, antialias: true)));
        Assert.IsTrue(MaxDifference(shrunk.slice(1, 1, 5, 1), Bicubic(2, antialias: false)) > 1e-3f);

        using var model = checkpoint.CreateModel(imageSize: 24);
        Assert.AreEqual(24, model.Options.ImageSize);
        Assert.IsTrue(Same(model.state_dict()["posEmbed"], resized));
        model.eval();
        CollectionAssert.AreEqual(new long[] { 3, Classes }, model.call(Images(6, 24)).shape);

        var error = Assert.ThrowsExactly<ArgumentException>(() => checkpoint.ModelOptions(imageSize: 18));
        StringAssert.Contains(error.Message, "patch size is 4");
    }

    [TestMethod]
    public void AnotherClassCountStartsAFreshHeadAndKeepsTheRest()
    {
        var timm = RandomTimm(7);
        string path = Path.Combine(folder, "vit.safetensors");
        Save(path, timm);
        using var checkpoint = VisionTransformerCheckpoint.Read(path, heads: Heads);
        using var model = checkpoint.CreateModel(classCount: 3, generator: new Generator(1));
        var state = model.state_dict();
        CollectionAssert.AreEqual(new long[] { 3, Width }, state["head.weight"].shape);
        Assert.IsTrue(Same(state["blocks.1.fc2.weight"], timm["blocks.1.mlp.fc2.weight"]));
        Assert.IsTrue(Same(state["norm.bias"], timm["norm.bias"]));
        // Same class count but LoadHead off: a fresh head too.
        using var fresh = checkpoint.CreateModel(generator: new Generator(1), loadHead: false);
        Assert.IsFalse(Same(fresh.state_dict()["head.weight"], timm["head.weight"]));
        using var loaded = checkpoint.CreateModel();
        Assert.IsTrue(Same(loaded.state_dict()["head.weight"], timm["head.weight"]));
    }

    [TestMethod]
    public void ErrorsNameTheKey()
    {
        string Fails(Dictionary<string, Tensor> weights, string file = "bad.safetensors", int? heads = Heads)
        {
            string path = Path.Combine(folder, file);
            Save(path, weights);
            var e = Assert.Throws<Exception>(() => VisionTransformerCheckpoint.Read(path, heads).Dispose());
            return e.Message;
        }

        var missing = RandomTimm(1);
        missing.Remove("blocks.1.mlp.fc2.bias");
        StringAssert.Contains(Fails(missing), "'blocks.1.mlp.fc2.bias' is missing");

        var misShaped = RandomTimm(1);
        misShaped["blocks.0.attn.proj.weight"] = zeros(Width, Width + 1);
        var message = Fails(misShaped, "shape.pth");
        StringAssert.Contains(message, "'blocks.0.attn.proj.weight' is [32, 33], expected [32, 32]");

        var hf = ToHuggingFace(RandomTimm(1));
        hf.Remove("vit.encoder.layer.1.attention.attention.value.weight");
        StringAssert.Contains(Fails(hf), "'vit.encoder.layer.1.attention.attention.value.weight' is missing");

        var hfNorm = ToHuggingFace(RandomTimm(1));
        hfNorm.Remove("vit.encoder.layer.0.layernorm_after.bias");
        StringAssert.Contains(Fails(hfNorm), "'vit.encoder.layer.0.layernorm_after.bias' is missing");

        var layerScale = RandomTimm(1);
        layerScale["blocks.0.ls1.gamma"] = ones(Width);
        StringAssert.Contains(Fails(layerScale), "'blocks.0.ls1.gamma' shows LayerScale");

        var extra = RandomTimm(1);
        extra["blocks.0.attn.rel_pos"] = ones(3);
        StringAssert.Contains(Fails(extra), "unexpected key 'blocks.0.attn.rel_pos'");

        StringAssert.Contains(Fails(RandomTimm(1), heads: null), "PretrainedWeights.Heads");
        StringAssert.Contains(Fails(RandomTimm(1), heads: 5), "width 32 is not a multiple of Heads = 5");

        var notVit = new Dictionary<string, Tensor> { ["conv1.weight"] = ones(2, 3, 3, 3) };
        StringAssert.Contains(Fails(notVit), "not a ViT");

        string legacy = Path.Combine(folder, "legacy.pth");
        File.WriteAllBytes(legacy, new byte[] { 0x80, 0x02, 0x8a, 0x0a, 0x6c });
        StringAssert.Contains(Assert.Throws<Exception>(() => VisionTransformerCheckpoint.Read(legacy, Heads)).Message, "torch.save's zip format");
        Assert.ThrowsExactly<FileNotFoundException>(() => VisionTransformerCheckpoint.Read(Path.Combine(folder, "none.safetensors"), Heads));

        // A model whose architecture is not the checkpoint's: the first key that does not fit, with both shapes.
        string good = Path.Combine(folder, "good.safetensors");
        Save(good, RandomTimm(1));
        using var checkpoint = VisionTransformerCheckpoint.Read(good, Heads);
        using var other = new VisionTransformer(new VisionTransformerOptions { ImageSize = Image, PatchSize = Patch, Width = Width, Depth = Depth, Heads = Heads, MlpRatio = 3.0 });
        var mismatch = Assert.ThrowsExactly<InvalidDataException>(() => checkpoint.LoadInto(other));
        StringAssert.Contains(mismatch.Message, "'blocks.0.mlp.fc1.weight' is [64, 32] but the model expects [96, 32]");
    }

    [TestMethod]
    public void DistilledDeitIsRejectedUnlessItsTokenIsDropped()
    {
        var timm = RandomTimm(9);
        var g = new Generator(10);
        var distilled = new Dictionary<string, Tensor>(timm)
        {
            ["dist_token"] = randn(new long[] { 1, 1, Width }, generator: g),
            ["pos_embed"] = cat(new[] { timm["pos_embed"].slice(1, 0, 1, 1), randn(new long[] { 1, 1, Width }, generator: g), timm["pos_embed"].slice(1, 1, Tokens, 1) }, 1),
            ["head_dist.weight"] = randn(new long[] { Classes, Width }, generator: g),
            ["head_dist.bias"] = randn(new long[] { Classes }, generator: g),
        };
        string path = Path.Combine(folder, "deit_distilled.pth");
        Save(path, distilled);
        var error = Assert.ThrowsExactly<InvalidDataException>(() => VisionTransformerCheckpoint.Read(path, Heads));
        StringAssert.Contains(error.Message, "distilled DeiT ('dist_token')");
        StringAssert.Contains(error.Message, "DropDistillationToken");

        using var checkpoint = VisionTransformerCheckpoint.Read(new PretrainedWeights { Path = path, Heads = Heads, DropDistillationToken = true });
        Assert.IsTrue(checkpoint.Notes.Any(n => n.Contains("dist_token")), string.Join("; ", checkpoint.Notes));
        using var model = checkpoint.CreateModel();
        model.eval();
        // Without the token it is the plain ViT holding the remaining weights.
        using var images = Images(11);
        Assert.IsTrue(MaxDifference(TimmForward(timm, images, 1e-6), model.call(images)) < 1e-5f);

        // Hugging Face's DeiTForImageClassificationWithTeacher names the same parts distillation_token / cls_classifier.
        var hf = ToHuggingFace(distilled, prefix: "deit.");
        hf.Remove("classifier.weight"); hf.Remove("classifier.bias");
        hf["cls_classifier.weight"] = timm["head.weight"]; hf["cls_classifier.bias"] = timm["head.bias"];
        hf["deit.embeddings.distillation_token"] = distilled["dist_token"];
        hf["distillation_classifier.weight"] = distilled["head_dist.weight"]; hf["distillation_classifier.bias"] = distilled["head_dist.bias"];
        string hfPath = Path.Combine(folder, "hf_deit.safetensors");
        Save(hfPath, hf);
        StringAssert.Contains(Assert.ThrowsExactly<InvalidDataException>(() => VisionTransformerCheckpoint.Read(hfPath, Heads)).Message,
            "'deit.embeddings.distillation_token'");
        using var hfCheckpoint = VisionTransformerCheckpoint.Read(new PretrainedWeights { Path = hfPath, Heads = Heads, DropDistillationToken = true });
        using var hfModel = hfCheckpoint.CreateModel();
        hfModel.eval();
        Assert.IsTrue(MaxDifference(TimmForward(timm, images, 1e-12), hfModel.call(images)) < 1e-5f);
    }

    [TestMethod]
    public void HuggingFaceFolderSuppliesHeadsAndEpsilonFromConfig()
    {
        var timm = RandomTimm(12);
        var hf = ToHuggingFace(timm);
        hf["vit.pooler.dense.weight"] = zeros(Width, Width);
        hf["vit.pooler.dense.bias"] = zeros(Width);
        Save(Path.Combine(folder, "model.safetensors"), hf);
        File.WriteAllText(Path.Combine(folder, "config.json"),
            """{ "model_type": "vit", "num_attention_heads": 8, "layer_norm_eps": 1e-05, "hidden_act": "gelu", "qkv_bias": true }""");
        using var checkpoint = VisionTransformerCheckpoint.Read(folder);
        Assert.AreEqual(8, checkpoint.Options.Heads);
        Assert.AreEqual(1e-5, checkpoint.Options.LayerNormEpsilon);
        Assert.IsTrue(checkpoint.Notes.Any(n => n.Contains("pooler")));
        using var model = checkpoint.CreateModel();
        model.eval();
        using var images = Images(13);
        Assert.IsTrue(MaxDifference(TimmForward(timm, images, 1e-5, heads: 8), model.call(images)) < 1e-5f);

        File.WriteAllText(Path.Combine(folder, "config.json"), """{ "num_attention_heads": 8, "hidden_act": "gelu_new" }""");
        StringAssert.Contains(Assert.ThrowsExactly<InvalidDataException>(() => VisionTransformerCheckpoint.Read(folder)).Message, "hidden_act is 'gelu_new'");
    }
}
