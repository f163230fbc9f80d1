using MergeMix.ML.Alignment;
using TorchSharp;
using static TorchSharp.torch;

namespace MergeMix.ML.Tests.Alignment;

[TestClass]
public sealed class SequenceLogProbsTests
{
    private const double Tol = 1e-5;

    // TV4: vocab 3, ids [0, 2, 1, 2], labels [−100, −100, 1, 2]; the last logit row is unused after the shift.
    private static readonly float[] Tv4Logits = { 2, 1, 0, 0.5f, 0.5f, 2, 1, 3, 0, 0, 0, 0 };
    private static readonly long[] Tv4Labels = { -100, -100, 1, 2 };

    [TestMethod]
    public void Tv4SumAverageAndCount()
    {
        using var scope = NewDisposeScope();
        var logits = tensor(Tv4Logits, new long[] { 1, 4, 3 });
        var labels = tensor(Tv4Labels, new long[] { 1, 4 });
        using var lp = SequenceLogProbs.Compute(logits, labels);
        Assert.AreEqual(-5.038827, lp.Sum.item<float>(), Tol);
        Assert.AreEqual(2.0, lp.TokenCount.item<float>(), 0.0);
        Assert.AreEqual(-2.519414, lp.Average().item<float>(), Tol);
        // MergeMix divides by the 4 text positions instead.
        Assert.AreEqual(-1.259707, (lp.Sum / logits.shape[1]).item<float>(), Tol);
    }

    [TestMethod]
    public void PaddedBatchScoresEachRowOnItsOwnTokens()
    {
        using var scope = NewDisposeScope();
        // Row 1: ids [1, 0, pad, pad], labels [−100, 0, −100, −100]: only position 0 → token 0 is scored,
        // with uniform logits (−ln 3); the other rows hold large junk that must not leak in.
        var row1 = new float[] { 0, 0, 0, 9, -9, 9, 9, 9, -9, 5, 5, 5 };
        var logits = tensor(Tv4Logits.Concat(row1).ToArray(), new long[] { 2, 4, 3 });
        var labels = tensor(Tv4Labels.Concat(new long[] { -100, 0, -100, -100 }).ToArray(), new long[] { 2, 4 });
        using var lp = SequenceLogProbs.Compute(logits, labels);
        CollectionAssert.AreEqual(new long[] { 2 }, lp.Sum.shape);
        Assert.AreEqual(-5.038827, lp.Sum[0].item<float>(), Tol);
        Assert.AreEqual(-1.098612, lp.Sum[1].item<float>(), Tol);
        CollectionAssert.AreEqual(new float[] { 2, 1 }, lp.TokenCount.data<float>().ToArray());
        var avg = lp.Average();
        Assert.AreEqual(-2.519414, avg[0].item<float>(), Tol);
        Assert.AreEqual(-1.098612, avg[1].item<float>(), Tol);
    }

    [TestMethod]
    public void RowWithoutScoredTokensAveragesToZeroNotNaN()
    {
        using var scope = NewDisposeScope();
        var logits = tensor(Tv4Logits, new long[] { 1, 4, 3 });
        var labels = full(new long[] { 1, 4 }, SequenceLogProbs.IgnoreIndex, ScalarType.Int64);
        using var lp = SequenceLogProbs.Compute(logits, labels);
        Assert.AreEqual(0.0, lp.TokenCount.item<float>(), 0.0);
        Assert.AreEqual(0.0, lp.Average().item<float>(), 0.0);
    }

    [TestMethod]
    public void GradientFlowsOnlyIntoScoredRows()
    {
        using var scope = NewDisposeScope();
        var logits = tensor(Tv4Logits, new long[] { 1, 4, 3 }, requires_grad: true);
        using var lp = SequenceLogProbs.Compute(logits, tensor(Tv4Labels, new long[] { 1, 4 }));
        lp.Sum.sum().backward();
        var g = logits.grad!.data<float>().ToArray();
        // Rows 0 (predicts a prompt token) and 3 (nothing to predict) get no gradient.
        CollectionAssert.AreEqual(new float[] { 0, 0, 0 }, g[0..3]);
        CollectionAssert.AreEqual(new float[] { 0, 0, 0 }, g[9..12]);
        // Row 1 → token 1: ∂/∂z = onehot(1) − softmax(z) = −e^{0.5−2.368981}.
        Assert.AreEqual(-Math.Exp(0.5 - 2.368981), g[3], Tol);
        Assert.AreEqual(1 - Math.Exp(0.5 - 2.368981), g[4], Tol);
    }

    [TestMethod]
    public void BadShapesAndIdsAreRejected()
    {
        using var scope = NewDisposeScope();
        var logits = tensor(Tv4Logits, new long[] { 1, 4, 3 });
        Assert.AreEqual("labels", Assert.ThrowsExactly<ArgumentException>(
            () => SequenceLogProbs.Compute(logits, tensor(new long[] { -100, 1, 2 }, new long[] { 1, 3 }))).ParamName);
        Assert.AreEqual("labels", Assert.ThrowsExactly<ArgumentException>(
            () => SequenceLogProbs.Compute(logits, tensor(new long[] { -100, -100, 3, 2 }, new long[] { 1, 4 }))).ParamName);
        Assert.AreEqual("labels", Assert.ThrowsExactly<ArgumentException>(
            () => SequenceLogProbs.Compute(logits, tensor(new int[] { -100, -100, 1, 2 }, new long[] { 1, 4 }))).ParamName);
        Assert.AreEqual("logits", Assert.ThrowsExactly<ArgumentException>(
            () => SequenceLogProbs.Compute(logits.reshape(4, 3), tensor(Tv4Labels, new long[] { 1, 4 }))).ParamName);
    }
}
