using MergeMix.ML.Mixing;
using TorchSharp;
using static TorchSharp.torch;
using static MergeMix.ML.Tests.Mixing.MixTestData;

namespace MergeMix.ML.Tests.Mixing;

[TestClass]
public sealed class MergeMixPolicyTests
{
    private const int Batch = 4, Channels = 2, Side = 8, Patch = 2, Grid = Side / Patch, Length = Grid * Grid;

    // Row b ranks patch l by (l·(7 + 2b)) mod 16: an odd multiplier permutes 0..15, so all scores are distinct.
    private static float[][] Scores() =>
        Enumerable.Range(0, Batch).Select(b => Enumerable.Range(0, Length).Select(l => (float)(l * (7 + 2 * b) % Length)).ToArray()).ToArray();

    /// <summary>Reads the patch mask back from the pixel mask, checking it is constant over every patch.</summary>
    private static float[][] PatchMask(Tensor mask)
    {
        float[] m = Floats(mask);
        var rows = new float[Batch][];
        for (int b = 0; b < Batch; b++)
        {
            rows[b] = new float[Length];
            for (int y = 0; y < Side; y++)
                for (int x = 0; x < Side; x++)
                {
                    int l = y / Patch * Grid + x / Patch;
                    float v = m[b * Side * Side + y * Side + x];
                    if (y % Patch == 0 && x % Patch == 0) rows[b][l] = v;
                    else Assert.AreEqual(rows[b][l], v, $"row {b}: patch {l} is not uniform");
                }
        }
        return rows;
    }

    [TestMethod]
    public void KeepsExactlyTheTopAttentionPatchesAndMixesPixelExactly()
    {
        float[][] scores = Scores();
        var attention = FakeAttention.Fixed(Patch, scores);
        using var images = DistinctImages(Batch, Channels, Side, Side);
        long[] labels = { 0, 1, 2, 1 };
        using var y = Labels(labels);
        var policy = new MergeMixPolicy();
        var keeps = new HashSet<int>();
        for (ulong seed = 0; seed < 8; seed++)
        {
            using var g = new torch.Generator(seed);
            using var result = policy.Mix(images, y, 3, g, attention);
            using var replay = new torch.Generator(seed);
            int keep = (int)Math.Floor(MixRandom.Beta(1.0, replay) * Length);
            keeps.Add(keep);
            float[][] kept = PatchMask(result.Mask!);
            for (int b = 0; b < Batch; b++)
            {
                var expected = Enumerable.Range(0, Length).OrderByDescending(l => scores[b][l]).Take(keep).ToHashSet();
                var actual = Enumerable.Range(0, Length).Where(l => kept[b][l] == 1f).ToHashSet();
                Assert.IsTrue(expected.SetEquals(actual), $"seed {seed}, row {b}: kept [{string.Join(",", actual)}], expected the top {keep}");
            }
            CollectionAssert.AreEqual(Enumerable.Repeat((float)keep / Length, Batch).ToArray(), Floats(result.Lambda));
            AssertMaskSelects(images, result);
            AssertSoftLabels(result, labels, 3);
            CollectionAssert.AreEqual(labels, Longs(result.Labels!));
        }
        Assert.IsTrue(keeps.Count >= 4, "the seeds should give different λ");
        Assert.AreEqual(8, attention.Calls);
    }

    [TestMethod]
    public void TiedScoresKeepTheLowerPatchIndices()
    {
        var attention = FakeAttention.Fixed(Patch, Enumerable.Range(0, Batch).Select(_ => new float[Length]).ToArray());
        using var images = DistinctImages(Batch, 1, Side, Side);
        using var y = Labels(0, 0, 1, 1);
        using var g = new torch.Generator(3);
        using var result = new MergeMixPolicy().Mix(images, y, 2, g, attention);
        using var replay = new torch.Generator(3);
        int keep = (int)Math.Floor(MixRandom.Beta(1.0, replay) * Length);
        float[][] kept = PatchMask(result.Mask!);
        for (int b = 0; b < Batch; b++)
            CollectionAssert.AreEqual(Enumerable.Range(0, Length).Select(l => l < keep ? 1f : 0f).ToArray(), kept[b]);
    }

    [TestMethod]
    public void NeedsAnAttentionSourceWithAMatchingGrid()
    {
        using var images = DistinctImages(Batch, 1, Side, Side);
        using var y = Labels(0, 1, 0, 1);
        using var g = new torch.Generator(1);
        var policy = new MergeMixPolicy();
        Assert.IsTrue(policy.NeedsAttention);
        var missing = Assert.ThrowsExactly<InvalidOperationException>(() => policy.Mix(images, y, 2, g));
        StringAssert.Contains(missing.Message, "attention source");

        var coarse = FakeAttention.Fixed(3, Scores());   // 8 is not a multiple of 3
        var grid = Assert.ThrowsExactly<ArgumentException>(() => policy.Mix(images, y, 2, g, coarse));
        Assert.AreEqual("images", grid.ParamName);
        StringAssert.Contains(grid.Message, "attention.PatchSize");

        var shortRows = FakeAttention.Fixed(Patch, Scores().Select(r => r.Take(Length - 1).ToArray()).ToArray());
        var shape = Assert.ThrowsExactly<InvalidOperationException>(() => policy.Mix(images, y, 2, g, shortRows));
        StringAssert.Contains(shape.Message, "[4, 16]");
    }

    [TestMethod]
    public void RandomVariantKeepsTheSameCountOnRandomPatches()
    {
        using var images = DistinctImages(Batch, Channels, Side, Side);
        long[] labels = { 2, 0, 1, 2 };
        using var y = Labels(labels);
        var policy = new MergeMixRandomPolicy { PatchSize = Patch };
        Assert.IsFalse(policy.NeedsAttention);
        bool rowsDiffer = false;
        for (ulong seed = 10; seed < 14; seed++)
        {
            using var g = new torch.Generator(seed);
            using var result = policy.Mix(images, y, 3, g);
            using var replay = new torch.Generator(seed);
            int keep = (int)Math.Floor(MixRandom.Beta(1.0, replay) * Length);
            float[][] kept = PatchMask(result.Mask!);
            foreach (var row in kept) Assert.AreEqual(keep, (int)row.Sum());
            if (keep > 0 && keep < Length) rowsDiffer |= kept.Any(r => !r.SequenceEqual(kept[0]));
            CollectionAssert.AreEqual(Enumerable.Repeat((float)keep / Length, Batch).ToArray(), Floats(result.Lambda));
            AssertMaskSelects(images, result);
            AssertSoftLabels(result, labels, 3);
        }
        Assert.IsTrue(rowsDiffer, "each row should draw its own random patches");
        var bad = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => new MergeMixRandomPolicy { PatchSize = 0 });
        Assert.AreEqual("PatchSize", bad.ParamName);
    }
}
