using MergeMix.ML.TokenMerging;
using MergeMix.ML.Vision;
using TorchSharp;
using static TorchSharp.torch;

namespace MergeMix.ML.Tests.Vision;

[TestClass]
public sealed class VisionTransformerTests
{
    // 16×16 images, 4-pixel patches: 16 patches; 3 blocks merging [3, 3, 2]; attention captured at block 2.
    private static VisionTransformerOptions Tiny(Action<VisionTransformerOptions>? change = null)
    {
        var o = new VisionTransformerOptions
        {
            ImageSize = 16, PatchSize = 4, Channels = 3, Width = 16, Depth = 3, Heads = 2, ClassCount = 5, MergeCount = 8,
        };
        change?.Invoke(o);
        return o;
    }

    private static VisionTransformer Model(VisionTransformerOptions o, ulong seed = 1)
    {
        var m = new VisionTransformer(o, new Generator(seed));
        m.eval();
        return m;
    }

    private static Tensor Images(long batch, int size, ulong seed = 7) =>
        randn(new long[] { batch, 3, size, size }, generator: new Generator(seed));

    private static float[] Floats(Tensor t) => t.contiguous().data<float>().ToArray();
    private static long[] Longs(Tensor t) => t.contiguous().data<long>().ToArray();

    [TestMethod]
    public void OptionDefaultsAndDerivedValues()
    {
        var o = new VisionTransformerOptions();
        Assert.AreEqual(8, o.GridSize);
        Assert.AreEqual(64, o.PatchCount);
        Assert.AreEqual(32, o.EffectiveMergeCount);
        Assert.AreEqual(4, o.EffectiveAttentionLayer);
        Assert.AreEqual(8, new VisionTransformerOptions { Depth = 12 }.EffectiveAttentionLayer);
        Assert.AreEqual(768, o.MlpHidden);
    }

    [TestMethod]
    public void ValidateNamesTheField()
    {
        (Action<VisionTransformerOptions> change, string field)[] cases =
        {
            (o => o.ImageSize = 30, "ImageSize"),
            (o => o.Width = 100, "Width"),
            (o => o.MergeCount = 64, "MergeCount"),
            (o => o.MergeCount = -1, "MergeCount"),
            (o => o.AttentionLayer = 6, "AttentionLayer"),
            (o => o.Depth = 0, "Depth"),
            (o => o.PatchSize = 0, "PatchSize"),
            (o => o.DropPathRate = 1.0, "DropPathRate"),
            (o => o.MergeInflection = 2, "MergeInflection"),
        };
        foreach (var (change, field) in cases)
        {
            var o = new VisionTransformerOptions();
            change(o);
            var e = Assert.ThrowsExactly<ArgumentException>(o.Validate, field);
            Assert.AreEqual(field, e.ParamName);
            StringAssert.Contains(e.Message, field);
        }
    }

    [TestMethod]
    public void BFloat16LinearIsCloseToFp32AndItsGradientsReachTheFp32Weights()
    {
        using var model = Model(Tiny(o => o.MergeCount = 0));
        model.train();
        using var images = Images(4, 16);

        (float[] Logits, float[] Gradient) Pass(bool bf16)
        {
            model.BFloat16Linear = bf16;
            model.zero_grad();
            using var scope = NewDisposeScope();
            torch.manual_seed(3);
            var logits = model.Forward(images, merge: false).Logits;
            logits.square().sum().backward();
            var grad = model.named_parameters().Single(p => p.name == "blocks.0.fc1.weight").parameter.grad!;
            Assert.AreEqual(ScalarType.Float32, grad.dtype);
            return (Floats(logits), Floats(grad));
        }

        var fp32 = Pass(false);
        var bf16 = Pass(true);
        var again = Pass(false);
        CollectionAssert.AreEqual(fp32.Logits, again.Logits, "switching back gives the fp32 pass bit for bit");
        CollectionAssert.AreNotEqual(fp32.Logits, bf16.Logits, "the switch reaches the blocks");
        double scale = fp32.Logits.Max(Math.Abs);
        for (int i = 0; i < fp32.Logits.Length; i++)
            Assert.AreEqual(fp32.Logits[i], bf16.Logits[i], 0.03 * scale, $"logit {i}");
        double dot = 0, x2 = 0, y2 = 0;
        for (int i = 0; i < fp32.Gradient.Length; i++)
        {
            dot += fp32.Gradient[i] * bf16.Gradient[i];
            x2 += fp32.Gradient[i] * fp32.Gradient[i];
            y2 += bf16.Gradient[i] * bf16.Gradient[i];
        }
        Assert.IsTrue(x2 > 0, "the fc1 weight has a gradient");
        Assert.IsTrue(dot / Math.Sqrt(x2 * y2) > 0.99, $"gradient cosine {dot / Math.Sqrt(x2 * y2)}");
    }

    [TestMethod]
    public void OutputShapes()
    {
        using var model = Model(Tiny());
        using var scope = NewDisposeScope();
        using var f = model.Forward(Images(2, 16), merge: true, captureAttention: true, featureLayer: 1);
        CollectionAssert.AreEqual(new long[] { 2, 5 }, f.Logits.shape);
        CollectionAssert.AreEqual(new long[] { 2, 16 }, f.PatchAttention!.shape);
        // Block 1 enters with 14 tokens and merges 3: 11 tokens, 10 without CLS.
        CollectionAssert.AreEqual(new long[] { 2, 10, 16 }, f.Features!.shape);
        CollectionAssert.AreEqual(new[] { 17, 14, 11 }, f.TokenCounts);
        CollectionAssert.AreEqual(new long[] { 2, 11 }, f.TokenAttention!.shape);
        CollectionAssert.AreEqual(new long[] { 2, 16 }, f.SourceMap!.shape);
        CollectionAssert.AreEqual(new long[] { 2, 5 }, model.call(Images(2, 16)).shape);

        using var plain = model.Forward(Images(2, 16), merge: false);
        Assert.IsNull(plain.PatchAttention);
        Assert.IsNull(plain.Features);
    }

    [TestMethod]
    public void TokenCountsFollowTheScheduleInTheDefaultModel()
    {
        using var model = Model(new VisionTransformerOptions());
        using var scope = NewDisposeScope();
        int[] schedule = MergeSchedule.ForModel(6, 32, 64);
        CollectionAssert.AreEqual(new[] { 7, 7, 6, 5, 4, 3 }, schedule);
        CollectionAssert.AreEqual(schedule, model.Schedule);
        var expected = new int[6];
        int tokens = 65;
        for (int i = 0; i < 6; i++) { expected[i] = tokens; tokens -= schedule[i]; }
        CollectionAssert.AreEqual(new[] { 65, 58, 51, 45, 40, 36 }, expected);

        var images = Images(1, 32);
        using var merged = model.Forward(images, merge: true, featureLayer: 5);
        CollectionAssert.AreEqual(expected, merged.TokenCounts);
        Assert.AreEqual(65 - 32 - 1, (int)merged.Features!.shape[1]);

        using var full = model.Forward(images, merge: false, featureLayer: 5);
        CollectionAssert.AreEqual(Enumerable.Repeat(65, 6).ToArray(), full.TokenCounts);
        Assert.AreEqual(64, (int)full.Features!.shape[1]);
        Assert.IsTrue(model.MergeEnabled);
    }

    [TestMethod]
    public void RecoveredAttentionIsConsistentWithTheLayersTokens()
    {
        using var model = Model(Tiny());
        using var scope = NewDisposeScope();
        using var f = model.Forward(Images(3, 16), merge: true, captureAttention: true);
        int n = f.TokenCounts[2]; // 11 tokens entering the captured block
        Assert.AreEqual(11, n);
        var map = Longs(f.SourceMap!);
        var tokenAttention = Floats(f.TokenAttention!);
        var recovered = Floats(f.PatchAttention!);
        for (int b = 0; b < 3; b++)
        {
            var row = tokenAttention.Skip(b * n).Take(n).ToArray();
            Assert.AreEqual(1.0, row.Sum(), 1e-5, "softmax row");
            var holders = map.Skip(b * 16).Take(16).ToArray();
            // Every patch is held by exactly one non-CLS token of that block, and every such token holds ≥ 1 patch.
            Assert.IsTrue(holders.All(t => t >= 1 && t < n));
            CollectionAssert.AreEquivalent(Enumerable.Range(1, n - 1).Select(i => (long)i).ToArray(), holders.Distinct().ToArray());
            var counts = holders.GroupBy(t => t).ToDictionary(g => g.Key, g => g.Count());
            Assert.AreEqual(16, counts.Values.Sum());
            Assert.AreEqual(6, counts.Values.Sum(c => c - 1), "six merges happened before block 2");
            double shared = 0;
            for (int p = 0; p < 16; p++)
            {
                // Each patch gets its holder's score; dividing by the holder's patch count gives back the row.
                Assert.AreEqual(row[holders[p]], recovered[b * 16 + p]);
                shared += recovered[b * 16 + p] / counts[holders[p]];
            }
            Assert.AreEqual(1.0 - row[0], shared, 1e-5);
        }
    }

    [TestMethod]
    public void AttentionOfBlockZeroUsesTheUnmergedMap()
    {
        // Block 0 merges, but its attention is computed before that merge: the map must still be the identity.
        using var model = Model(Tiny(o => o.AttentionLayer = 0));
        using var scope = NewDisposeScope();
        using var f = model.Forward(Images(2, 16), merge: true, captureAttention: true);
        CollectionAssert.AreEqual(Enumerable.Range(0, 2).SelectMany(_ => Enumerable.Range(1, 16).Select(i => (long)i)).ToArray(), Longs(f.SourceMap!));
        CollectionAssert.AreEqual(Floats(f.TokenAttention!.slice(1, 1, 17, 1)), Floats(f.PatchAttention!));
        CollectionAssert.AreEqual(new[] { 17, 14, 11 }, f.TokenCounts);
    }

    [TestMethod]
    public void WithoutMergingRecoveredAttentionIsTheRawRow()
    {
        using var model = Model(Tiny(o => o.MergeCount = 0));
        Assert.IsFalse(model.MergeEnabled);
        using var scope = NewDisposeScope();
        using var f = model.Forward(Images(2, 16), merge: true, captureAttention: true);
        CollectionAssert.AreEqual(new[] { 17, 17, 17 }, f.TokenCounts);
        CollectionAssert.AreEqual(Floats(f.TokenAttention!.slice(1, 1, 17, 1)), Floats(f.PatchAttention!));
    }

    [TestMethod]
    public void AttentionDirectionPicksTheClsRowOrTheClsColumnAveragedOverHeads()
    {
        // Two heads over 3 tokens (rows: queries, columns: keys; every row sums to 1), dyadic values so that the
        // head means are exact in float32.
        float[] values =
        {
            0.5f, 0.25f, 0.25f,   0.125f, 0.625f, 0.25f,   0.375f, 0.375f, 0.25f,
            0.25f, 0.25f, 0.5f,   0.5f, 0.25f, 0.25f,      0f, 0.5f, 0.5f,
        };
        using var attention = tensor(values, new long[] { 1, 2, 3, 3 });
        using var query = AttentionScores.FromAttention(attention, AttentionDirection.ClsQuery);
        using var key = AttentionScores.FromAttention(attention, AttentionDirection.ClsKey);
        CollectionAssert.AreEqual(new[] { 0.375f, 0.25f, 0.375f }, Floats(query), "(A0[0, j] + A1[0, j]) / 2");
        CollectionAssert.AreEqual(new[] { 0.375f, 0.3125f, 0.1875f }, Floats(key), "(A0[j, 0] + A1[j, 0]) / 2");
        Assert.ThrowsExactly<ArgumentException>(() => AttentionScores.FromAttention(zeros(2, 3, 3), AttentionDirection.ClsKey));
    }

    [TestMethod]
    public void AttentionDirectionChangesTheScoresButNotTheLogits()
    {
        using var byQuery = Model(Tiny());
        using var byKey = Model(Tiny(o => o.AttentionDirection = AttentionDirection.ClsKey));
        using var scope = NewDisposeScope();
        var images = Images(2, 16);
        using var q = byQuery.Forward(images, merge: true, captureAttention: true);
        using var k = byKey.Forward(images, merge: true, captureAttention: true);
        CollectionAssert.AreEqual(Floats(q.Logits), Floats(k.Logits), "same weights, same output");
        CollectionAssert.AreEqual(Floats(q.SourceMap!.to(ScalarType.Float32)), Floats(k.SourceMap!.to(ScalarType.Float32)), "same merges");
        // A[CLS, CLS] is the one entry both directions read.
        CollectionAssert.AreEqual(Floats(q.TokenAttention!.select(1, 0)), Floats(k.TokenAttention!.select(1, 0)));
        var rowSums = Floats(q.TokenAttention!.sum(1));
        foreach (var sum in rowSums) Assert.AreEqual(1f, sum, 1e-5f, "a CLS query row sums to 1");
        CollectionAssert.AreNotEqual(Floats(q.PatchAttention!), Floats(k.PatchAttention!));
        Assert.AreEqual("AttentionDirection", Assert.ThrowsExactly<ArgumentException>(() => Tiny(o => o.AttentionDirection = (AttentionDirection)7).Validate()).ParamName);
    }

    [TestMethod]
    public void CapturedBlockMatchesTheFusedAttention()
    {
        // The captured block uses explicit softmax attention, the others the fused kernel (with the log-size mask).
        using var model = Model(Tiny(o => o.AttentionLayer = 2));
        using var scope = NewDisposeScope();
        var images = Images(2, 16);
        var fused = Floats(model.Forward(images, merge: true).Logits);
        var explicitly = Floats(model.Forward(images, merge: true, captureAttention: true).Logits);
        for (int i = 0; i < fused.Length; i++) Assert.AreEqual(fused[i], explicitly[i], 1e-5f);
    }

    [TestMethod]
    public void EarlyStoppingShortcutsMatchTheFullForward()
    {
        using var model = Model(Tiny());
        using var scope = NewDisposeScope();
        var images = Images(2, 16);
        using var f = model.Forward(images, merge: true, captureAttention: true, featureLayer: 0);
        CollectionAssert.AreEqual(Floats(f.PatchAttention!), Floats(model.PatchAttention(images, merge: true)));
        CollectionAssert.AreEqual(Floats(f.Features!), Floats(model.Encode(images, 0, merge: true)));
        Assert.AreEqual("featureLayer", Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => model.Encode(images, 3, true)).ParamName);
        Assert.AreEqual("images", Assert.ThrowsExactly<ArgumentException>(() => model.call(Images(1, 32))).ParamName);
    }

    [TestMethod]
    public void EvalIsDeterministic()
    {
        using var model = Model(Tiny(o => { o.DropoutRate = 0.2; o.DropPathRate = 0.5; }));
        using var scope = NewDisposeScope();
        var images = Images(2, 16);
        CollectionAssert.AreEqual(Floats(model.call(images)), Floats(model.call(images)));
        // Same seed, same weights.
        using var twin = Model(Tiny(o => { o.DropoutRate = 0.2; o.DropPathRate = 0.5; }));
        CollectionAssert.AreEqual(Floats(model.call(images)), Floats(twin.call(images)));
    }

    [TestMethod]
    public void InitialisationFollowsTheGenerator()
    {
        using var a = Model(Tiny(), seed: 11);
        using var b = Model(Tiny(), seed: 11);
        using var c = Model(Tiny(), seed: 12);
        var pa = a.named_parameters().ToList();
        var pb = b.named_parameters().ToList();
        var pc = c.named_parameters().ToList();
        for (int i = 0; i < pa.Count; i++)
        {
            CollectionAssert.AreEqual(Floats(pa[i].parameter), Floats(pb[i].parameter), pa[i].name);
            bool constant = pa[i].name.Contains("norm") || pa[i].name.EndsWith("bias") && !pa[i].name.StartsWith("patchEmbed");
            if (!constant) CollectionAssert.AreNotEqual(Floats(pa[i].parameter), Floats(pc[i].parameter), pa[i].name);
        }
        // DeiT init: std ≈ 0.02 for the position embedding (17·16 = 272 draws), LayerNorm 1/0, Linear bias 0.
        var pos = pa.Single(p => p.name == "posEmbed").parameter;
        Assert.AreEqual(0.02, pos.std().item<float>(), 0.003);
        Assert.IsTrue(Floats(pa.Single(p => p.name == "norm.weight").parameter).All(v => v == 1f));
        Assert.IsTrue(Floats(pa.Single(p => p.name == "head.bias").parameter).All(v => v == 0f));
    }

    [TestMethod]
    public void DropPathIsIdentityInEvalAndPerSampleInTraining()
    {
        using var drop = new DropPath(0.5);
        using var scope = NewDisposeScope();
        var x = ones(64, 3);
        drop.eval();
        CollectionAssert.AreEqual(Floats(x), Floats(drop.call(x)));
        drop.train();
        var y = Floats(drop.call(x));
        for (int row = 0; row < 64; row++)
        {
            var values = y.Skip(3 * row).Take(3).Distinct().ToArray();
            Assert.AreEqual(1, values.Length, $"row {row} mixes kept and dropped entries");
            Assert.IsTrue(values[0] == 0f || values[0] == 2f, $"row {row}: {values[0]}");
        }
    }

    [TestMethod]
    public void ProportionalAttentionMattersOnlyAfterAMerge()
    {
        using var on = Model(Tiny(o => o.ProportionalAttention = true));
        using var off = Model(Tiny(o => o.ProportionalAttention = false));
        using var scope = NewDisposeScope();
        var images = Images(2, 16);
        CollectionAssert.AreEqual(Floats(off.Forward(images, merge: false).Logits), Floats(on.Forward(images, merge: false).Logits));
        var a = Floats(on.Forward(images, merge: true).Logits);
        var b = Floats(off.Forward(images, merge: true).Logits);
        Assert.IsTrue(a.Zip(b).Max(p => Math.Abs(p.First - p.Second)) > 1e-4, "log-size bias had no effect after merging");
    }

    [TestMethod]
    public void SaveLoadRoundTripGivesIdenticalLogits()
    {
        using var model = Model(Tiny(), seed: 1);
        using var copy = Model(Tiny(), seed: 2);
        using var scope = NewDisposeScope();
        var images = Images(2, 16);
        var before = Floats(model.call(images));
        Assert.AreNotEqual(before[0], Floats(copy.call(images))[0]);
        var stream = new MemoryStream();
        model.save(stream); // closes the stream; ToArray still works
        copy.load(new MemoryStream(stream.ToArray()));
        copy.eval();
        CollectionAssert.AreEqual(before, Floats(copy.call(images)));
    }

    [TestMethod]
    public void TrainingStepWithMergingReachesEveryParameter()
    {
        using var model = new VisionTransformer(Tiny(), new Generator(3));
        model.train();
        using var scope = NewDisposeScope();
        var loss = nn.functional.cross_entropy(model.call(Images(4, 16)), tensor(new long[] { 0, 1, 2, 3 }));
        loss.backward();
        foreach (var (name, p) in model.named_parameters())
        {
            Assert.IsNotNull(p.grad, name);
            Assert.IsTrue(p.grad!.isfinite().all().item<bool>(), name);
            Assert.IsTrue(p.grad.abs().sum().item<float>() > 0, $"{name} got no gradient");
        }
    }
}
