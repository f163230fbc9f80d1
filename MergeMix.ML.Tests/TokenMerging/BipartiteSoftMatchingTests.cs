using MergeMix.ML.TokenMerging;
using TorchSharp;
using static TorchSharp.torch;

namespace MergeMix.ML.Tests.TokenMerging;

[TestClass]
public sealed class BipartiteSoftMatchingTests
{
    // Seven tokens (CLS + 6), C = 2. Set a = tokens 0,2,4,6 (a0..a3), set b = tokens 1,3,5 (b0..b2).
    // Sample 0: CLS (1,0) equals b0's direction (cos 1); a1 (0,1)→b1 (0.1,3) cos 0.99945; a2 (1,1)→b2 (1,1.2) cos 0.99589;
    //           a3 (1,−1)→b0 (2,0) cos 0.70711.
    // Sample 1: a1 (1,1)→b0 (0,1) cos 0.70711; a2 (−1,0.2)→b2 (−1,0) cos 0.98058; a3 (1,−1.01)→b1 (1,−1) cos 0.99998.
    private static readonly float[,] Metric0 = { { 1, 0 }, { 2, 0 }, { 0, 1 }, { 0.1f, 3 }, { 1, 1 }, { 1, 1.2f }, { 1, -1 } };
    private static readonly float[,] Metric1 = { { 1, 0 }, { 0, 1 }, { 1, 1 }, { 1, -1 }, { -1, 0.2f }, { -1, 0 }, { 1, -1.01f } };
    private static readonly float[] Sizes = { 1, 2, 1, 3, 2, 1, 1 };

    private static Tensor MetricBatch(params float[][,] samples)
    {
        var data = new List<float>();
        foreach (var s in samples) foreach (var v in s) data.Add(v);
        return tensor(data.ToArray(), new long[] { samples.Length, 7, 2 });
    }

    // x_t = (t, 10t): easy to read back which tokens were averaged.
    private static Tensor Values(int batch) =>
        tensor(Enumerable.Range(0, batch).SelectMany(_ => Enumerable.Range(0, 7).SelectMany(t => new float[] { t, 10 * t })).ToArray(),
            new long[] { batch, 7, 2 });

    private static Tensor SizeBatch(int batch) =>
        tensor(Enumerable.Range(0, batch).SelectMany(_ => Sizes).ToArray(), new long[] { batch, 7, 1 });

    private static long[] Longs(Tensor t) => t.data<long>().ToArray();
    private static float[] Floats(Tensor t) => t.data<float>().ToArray();

    [TestMethod]
    public void MatchesTheMostSimilarPairsAndKeepsOriginalOrder()
    {
        using var scope = NewDisposeScope();
        using var plan = BipartiteSoftMatching.Match(MetricBatch(Metric0, Metric1), 2);
        Assert.AreEqual(7, plan.TokenCount);
        Assert.AreEqual(2, plan.MergeCount);
        Assert.AreEqual(5, plan.OutputCount);
        // Sample 0 merges a1→b1 and a2→b2; sample 1 merges a3→b1 and a2→b2. Kept a-tokens stay in original order.
        CollectionAssert.AreEqual(new long[] { 1, 2, 3, 2 }, Longs(plan.MergedA));
        CollectionAssert.AreEqual(new long[] { 1, 2, 1, 2 }, Longs(plan.Destination));
        CollectionAssert.AreEqual(new long[] { 0, 3, 0, 1 }, Longs(plan.UnmergedA));
        // New order: sample 0 = [tok0, tok6, tok1, tok3+tok2, tok5+tok4]; sample 1 = [tok0, tok2, tok1, tok3+tok6, tok5+tok4].
        CollectionAssert.AreEqual(new long[] { 0, 2, 3, 3, 4, 4, 1, 0, 2, 1, 3, 4, 4, 3 }, Longs(plan.TokenMap));
    }

    [TestMethod]
    public void MergeWeightedAveragesBySize()
    {
        using var scope = NewDisposeScope();
        using var plan = BipartiteSoftMatching.Match(MetricBatch(Metric0, Metric1), 2);
        var (x, size) = BipartiteSoftMatching.MergeWeighted(plan, Values(2), SizeBatch(2));
        CollectionAssert.AreEqual(new long[] { 2, 5, 2 }, x.shape);
        // Sample 0: tok3+tok2 = (3·3 + 1·2)/4 = 2.75; tok5+tok4 = (1·5 + 2·4)/3 = 13/3.
        // Sample 1: tok3+tok6 = (3·3 + 1·6)/4 = 3.75; tok5+tok4 = 13/3.
        float third = 13f / 3f;
        var expected = new float[]
        {
            0, 0, 6, 60, 1, 10, 2.75f, 27.5f, third, 10 * third,
            0, 0, 2, 20, 1, 10, 3.75f, 37.5f, third, 10 * third,
        };
        var actual = Floats(x);
        for (int i = 0; i < expected.Length; i++) Assert.AreEqual(expected[i], actual[i], 1e-5f, $"x[{i}]");
        CollectionAssert.AreEqual(new float[] { 1, 1, 2, 4, 3, 1, 1, 2, 4, 3 }, Floats(size));
    }

    [TestMethod]
    public void MergeWeightedGradientIsTheSizeShare()
    {
        using var scope = NewDisposeScope();
        using var plan = BipartiteSoftMatching.Match(MetricBatch(Metric0), 2);
        var x = Values(1).requires_grad_(true);
        var (merged, _) = BipartiteSoftMatching.MergeWeighted(plan, x, SizeBatch(1));
        merged.sum().backward();
        // d/dx_t of Σ outputs = size_t / (size of the group t joins): tok2 1/4, tok3 3/4, tok4 2/3, tok5 1/3, others 1.
        var grad = Floats(x.grad!);
        float[] perToken = { 1, 1, 0.25f, 0.75f, 2f / 3f, 1f / 3f, 1 };
        for (int t = 0; t < 7; t++)
            for (int c = 0; c < 2; c++)
                Assert.AreEqual(perToken[t], grad[2 * t + c], 1e-6f, $"grad[{t},{c}]");
    }

    [TestMethod]
    public void SourceMapFollowsTheTokens()
    {
        using var scope = NewDisposeScope();
        using var plan = BipartiteSoftMatching.Match(MetricBatch(Metric0), 2);
        var initial = BipartiteSoftMatching.InitialSourceMap(1, 6);
        CollectionAssert.AreEqual(new long[] { 1, 2, 3, 4, 5, 6 }, Longs(initial));
        CollectionAssert.AreEqual(new long[] { 2, 3, 3, 4, 4, 1 }, Longs(BipartiteSoftMatching.MergeSourceMap(plan, initial)));
        // A map that already went through an earlier merge is composed, not replaced.
        var earlier = tensor(new long[] { 6, 5, 4, 3, 2, 1 }, new long[] { 1, 6 });
        CollectionAssert.AreEqual(new long[] { 1, 4, 4, 3, 3, 2 }, Longs(BipartiteSoftMatching.MergeSourceMap(plan, earlier)));
    }

    [TestMethod]
    public void UnmergeCopiesTheHoldingTokensValue()
    {
        using var scope = NewDisposeScope();
        var scores = tensor(new float[] { 0.5f, 0.1f, 0.2f, 0.15f, 0.05f }, new long[] { 1, 5 });
        var map = tensor(new long[] { 2, 3, 3, 4, 4, 1 }, new long[] { 1, 6 });
        CollectionAssert.AreEqual(new float[] { 0.2f, 0.15f, 0.15f, 0.05f, 0.05f, 0.1f }, Floats(BipartiteSoftMatching.Unmerge(scores, map)));
    }

    [TestMethod]
    public void RIsClampedToHalfOfTheUnprotectedTokens()
    {
        using var scope = NewDisposeScope();
        // (7 − 1)/2 = 3: every a-token but CLS is merged: a1→b1, a2→b2, a3→b0.
        using var plan = BipartiteSoftMatching.Match(MetricBatch(Metric0), 10);
        Assert.AreEqual(3, plan.MergeCount);
        CollectionAssert.AreEqual(new long[] { 0 }, Longs(plan.UnmergedA));
        CollectionAssert.AreEqual(new long[] { 0, 1, 2, 2, 3, 3, 1 }, Longs(plan.TokenMap));
        var (x, size) = BipartiteSoftMatching.MergeWeighted(plan, Values(1), SizeBatch(1));
        // tok1+tok6 = (2·1 + 1·6)/3 = 8/3.
        Assert.AreEqual(8f / 3f, Floats(x)[2], 1e-5f);
        CollectionAssert.AreEqual(new float[] { 1, 3, 4, 3 }, Floats(size));

        // Without protection the bound is 7/2 = 3 as well, and an even count of 6 allows 3.
        using var open = BipartiteSoftMatching.Match(MetricBatch(Metric0), 10, protectClassToken: false);
        Assert.AreEqual(3, open.MergeCount);
        using var six = BipartiteSoftMatching.Match(MetricBatch(Metric0).slice(1, 0, 6, 1), 10);
        Assert.AreEqual(2, six.MergeCount);
    }

    [TestMethod]
    public void ClassTokenIsNeverMergedEvenWhenMostSimilar()
    {
        using var scope = NewDisposeScope();
        // CLS·b0 = 1 beats every other pair, yet with protection the single merge is a1→b1.
        using var plan = BipartiteSoftMatching.Match(MetricBatch(Metric0), 1);
        CollectionAssert.AreEqual(new long[] { 1 }, Longs(plan.MergedA));
        CollectionAssert.AreEqual(new long[] { 0, 3, 4, 4, 1, 5, 2 }, Longs(plan.TokenMap));

        // Without protection CLS is the one merged (into b0), and the sequence no longer starts with it.
        using var open = BipartiteSoftMatching.Match(MetricBatch(Metric0), 1, protectClassToken: false);
        CollectionAssert.AreEqual(new long[] { 0 }, Longs(open.MergedA));
        CollectionAssert.AreEqual(new long[] { 3, 3, 0, 4, 1, 5, 2 }, Longs(open.TokenMap));
    }

    [TestMethod]
    public void ZeroMergesIsTheIdentity()
    {
        using var scope = NewDisposeScope();
        using var plan = BipartiteSoftMatching.Match(MetricBatch(Metric0), 0);
        Assert.AreEqual(0, plan.MergeCount);
        CollectionAssert.AreEqual(new long[] { 0, 1, 2, 3, 4, 5, 6 }, Longs(plan.TokenMap));
        var values = Values(1);
        var (x, size) = BipartiteSoftMatching.MergeWeighted(plan, values, SizeBatch(1));
        CollectionAssert.AreEqual(Floats(values), Floats(x));
        CollectionAssert.AreEqual(Sizes, Floats(size));
    }

    [TestMethod]
    public void BadArgumentsNameTheArgument()
    {
        using var scope = NewDisposeScope();
        Assert.AreEqual("r", Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => BipartiteSoftMatching.Match(MetricBatch(Metric0), -1)).ParamName);
        Assert.AreEqual("metric", Assert.ThrowsExactly<ArgumentException>(() => BipartiteSoftMatching.Match(zeros(7, 2), 1)).ParamName);
        using var plan = BipartiteSoftMatching.Match(MetricBatch(Metric0), 1);
        Assert.AreEqual("x", Assert.ThrowsExactly<ArgumentException>(() => BipartiteSoftMatching.MergeWeighted(plan, zeros(1, 6, 2), ones(1, 7, 1))).ParamName);
    }
}
