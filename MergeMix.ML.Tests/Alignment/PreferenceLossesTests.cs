using MergeMix.ML.Alignment;
using TorchSharp;
using static TorchSharp.torch;

namespace MergeMix.ML.Tests.Alignment;

[TestClass]
public sealed class PreferenceLossesTests
{
    private const double Tol = 1e-5;

    private static Tensor V(params float[] values) => tensor(values);

    private static float Item(Tensor t) { using (t) return t.item<float>(); }

    // TV1: S(w) = −10, S(l) = −12, S_ref(w) = −11, S_ref(l) = −11.5, β = 0.1 → h = 1.5.
    private static (Tensor pw, Tensor pl, Tensor rw, Tensor rl) Tv1() => (V(-10f), V(-12f), V(-11f), V(-11.5f));

    [TestMethod]
    public void Tv1DpoFamilyValues()
    {
        using var scope = NewDisposeScope();
        var (pw, pl, rw, rl) = Tv1();
        Assert.AreEqual(1.5, Item(PreferenceLosses.DpoLogits(pw, pl, rw, rl)), Tol);
        Assert.AreEqual(0.620957, Item(PreferenceLosses.Dpo(pw, pl, rw, rl, 0.1)), Tol);
        Assert.AreEqual(0.386871, Item(PreferenceLosses.Dpo(pw, pl, rw, rl, 0.5)), Tol);
        Assert.AreEqual(0.635957, Item(PreferenceLosses.ConservativeDpo(pw, pl, rw, rl, 0.1, 0.1)), Tol);
        Assert.AreEqual(0.620957, Item(PreferenceLosses.ConservativeDpo(pw, pl, rw, rl, 0.1, 0.0)), Tol);
        Assert.AreEqual(0.602207, Item(PreferenceLosses.RobustDpo(pw, pl, rw, rl, 0.1, 0.1)), Tol);
        Assert.AreEqual(0.85, Item(PreferenceLosses.Hinge(pw, pl, rw, rl, 0.1)), Tol);
        Assert.AreEqual(12.25, Item(PreferenceLosses.Ipo(pw, pl, rw, rl, 0.1)), Tol);
        Assert.AreEqual(21.855625, Item(PreferenceLosses.IpoTokenNormalized(pw, pl, rw, rl, tensor(new long[] { 5 }), tensor(new long[] { 4 }), 0.1)), Tol);
    }

    [TestMethod]
    public void Tv1LengthNormalizedDpo()
    {
        using var scope = NewDisposeScope();
        var (pw, pl, rw, rl) = Tv1();
        var counts = (w: tensor(new long[] { 5 }), l: tensor(new long[] { 4 }));
        // Δ_w/|w| − Δ_l/|l| = 1.0/5 + 0.5/4 = 0.325; softplus(−0.1 · 0.325) = ln(1 + e^−0.0325).
        Assert.AreEqual(0.325, Item(PreferenceLosses.NormalizedDpoLogits(pw, pl, rw, rl, counts.w, counts.l)), Tol);
        Assert.AreEqual(0.677029, Item(PreferenceLosses.DpoLengthNormalized(pw, pl, rw, rl, counts.w, counts.l, 0.1)), Tol);
        // TV5: stable at the extremes (β·h = −200 → 200, not inf).
        Assert.AreEqual(200.0, Item(PreferenceLosses.DpoLengthNormalized(V(-2000f), V(0f), V(0f), V(0f), tensor(new long[] { 1 }), tensor(new long[] { 1 }), 0.1)), 1e-3);
    }

    [TestMethod]
    public void Tv2SimPoWithLabelSmoothing()
    {
        using var scope = NewDisposeScope();
        // TV2 (z = 1.0) with the official code's smoothing ε = 0.1: 0.9·softplus(−1) + 0.1·softplus(1).
        Assert.AreEqual(0.413262, Item(PreferenceLosses.SimPo(V(-2f), V(-3f), 2.0, 1.0, 0.1)), Tol);
        Assert.AreEqual(0.313262, Item(PreferenceLosses.SimPo(V(-2f), V(-3f), 2.0, 1.0, 0.0)), Tol);
    }

    [TestMethod]
    public void Tv1HingeIsZeroBeyondTheMargin()
    {
        using var scope = NewDisposeScope();
        var (pw, pl, rw, rl) = Tv1();
        // β·h = 1.5 ≥ 1: the hinge is satisfied.
        Assert.AreEqual(0.0, Item(PreferenceLosses.Hinge(pw, pl, rw, rl, 1.0)), 0.0);
    }

    [TestMethod]
    public void Tv1Rewards()
    {
        using var scope = NewDisposeScope();
        var (pw, pl, rw, rl) = Tv1();
        using var r = PreferenceLosses.DpoRewards(pw, pl, rw, rl, 0.1);
        Assert.AreEqual(0.1, r.Chosen.item<float>(), Tol);
        Assert.AreEqual(-0.05, r.Rejected.item<float>(), Tol);
        Assert.AreEqual(0.15, r.Margins.item<float>(), Tol);
        Assert.AreEqual(1.0, r.Accuracies.item<float>(), 0.0);
    }

    [TestMethod]
    public void Tv1GradientsReachPolicyOnly()
    {
        using var scope = NewDisposeScope();
        var pw = tensor(new[] { -10f }, requires_grad: true);
        var pl = tensor(new[] { -12f }, requires_grad: true);
        var (_, _, rw, rl) = Tv1();
        var loss = PreferenceLosses.Mean(PreferenceLosses.Dpo(pw, pl, rw, rl, 0.1));
        loss.backward();
        Assert.AreEqual(-0.0462570, pw.grad!.item<float>(), Tol);
        Assert.AreEqual(0.0462570, pl.grad!.item<float>(), Tol);
        Assert.IsNull(rw.grad);
        Assert.IsNull(rl.grad);
    }

    [TestMethod]
    public void Tv1StepZeroAndBatchMean()
    {
        using var scope = NewDisposeScope();
        // Row 0 = TV1, row 1 = step 0 (policy = reference, so h = 0).
        var pw = V(-10f, -7f); var pl = V(-12f, -9f); var rw = V(-11f, -7f); var rl = V(-11.5f, -9f);
        var perPair = PreferenceLosses.Dpo(pw, pl, rw, rl, 0.1);
        CollectionAssert.AreEqual(new long[] { 2 }, perPair.shape);
        Assert.AreEqual(0.693147, perPair[1].item<float>(), Tol);
        Assert.AreEqual(0.657052, PreferenceLosses.Mean(perPair).item<float>(), Tol);
        using var r = PreferenceLosses.DpoRewards(pw, pl, rw, rl, 0.1);
        Assert.AreEqual(0.0, r.Chosen[1].item<float>(), 0.0);
        Assert.AreEqual(0.0, r.Accuracies[1].item<float>(), 0.0, "a tie is not a win");
    }

    [TestMethod]
    public void Tv1RpoAddsNll()
    {
        using var scope = NewDisposeScope();
        var (pw, pl, rw, rl) = Tv1();
        var rank = PreferenceLosses.Mean(PreferenceLosses.Dpo(pw, pl, rw, rl, 0.1));
        Assert.AreEqual(2.620957, Item(PreferenceLosses.WithSft(rank, tensor(2.0f), 1.0, 1.0)), Tol);
    }

    [TestMethod]
    public void Tv2SimPo()
    {
        using var scope = NewDisposeScope();
        // S(w) = −10 over 5 tokens, S(l) = −12 over 4 tokens; β = 2, γ = 1.
        var aw = tensor(new[] { -10f / 5 }, requires_grad: true);
        var al = V(-12f / 4);
        var loss = PreferenceLosses.SimPo(aw, al, 2.0, 1.0);
        Assert.AreEqual(0.313262, loss.item<float>(), Tol);
        loss.sum().backward();
        Assert.AreEqual(-0.537883, aw.grad!.item<float>(), Tol);
        using var r = PreferenceLosses.SimPoRewards(aw, al, 2.0);
        Assert.AreEqual(-4.0, r.Chosen.item<float>(), Tol);
        Assert.AreEqual(-6.0, r.Rejected.item<float>(), Tol);
        Assert.AreEqual(2.0, r.Margins.item<float>(), Tol);
        Assert.AreEqual(1.0, r.Accuracies.item<float>(), 0.0);
    }

    [TestMethod]
    public void Tv2SimPoGradientPerChosenToken()
    {
        using var scope = NewDisposeScope();
        var tokens = tensor(new[] { -2f, -2f, -2f, -2f, -2f }, requires_grad: true);
        var aw = tokens.sum().unsqueeze(0) / 5;
        PreferenceLosses.SimPo(aw, V(-3f), 2.0, 1.0).sum().backward();
        foreach (var g in tokens.grad!.data<float>().ToArray())
            Assert.AreEqual(-0.107577, g, Tol);
    }

    [TestMethod]
    public void Tv3MixedSimPoConventions()
    {
        using var scope = NewDisposeScope();
        var aw = V(-2f); var al = V(-3f);      // Δ = 1.0
        Assert.AreEqual(0.403186, Item(PreferenceLosses.MixedSimPo(aw, al, 1.0, 0.7, SimPoConvention.Paper)), Tol);
        Assert.AreEqual(0.403186, Item(PreferenceLosses.MixedSimPo(aw, al, 1.0, 0.7, SimPoConvention.MergeMixCode)), Tol);
        Assert.AreEqual(0.167786, Item(PreferenceLosses.MixedSimPo(aw, al, 2.0, 0.7, SimPoConvention.Paper)), Tol);
        Assert.AreEqual(0.220417, Item(PreferenceLosses.MixedSimPo(aw, al, 2.0, 0.7, SimPoConvention.MergeMixCode)), Tol);
        Assert.AreEqual(0.313262, Item(PreferenceLosses.MixedSimPo(aw, al, 1.0, 1.0, SimPoConvention.Paper)), Tol);
        // Paper convention with γ = 1 − λ equals SimPO with that γ.
        Assert.AreEqual(Item(PreferenceLosses.SimPo(aw, al, 2.0, 0.3)),
            Item(PreferenceLosses.MixedSimPo(aw, al, 2.0, 0.7, SimPoConvention.Paper)), 1e-7);
    }

    [TestMethod]
    public void Tv3PerPairLambdaAndMergeMixTotal()
    {
        using var scope = NewDisposeScope();
        var perPair = PreferenceLosses.MixedSimPo(V(-2f, -2f), V(-3f, -3f), 2.0, V(0.7f, 1.0f), SimPoConvention.MergeMixCode);
        Assert.AreEqual(0.220417, perPair[0].item<float>(), Tol);
        Assert.AreEqual(0.126928, perPair[1].item<float>(), Tol);   // softplus(−2)
        var rank = PreferenceLosses.MixedSimPo(V(-2f), V(-3f), 1.0, 0.7, SimPoConvention.MergeMixCode);
        Assert.AreEqual(1.451593, Item(PreferenceLosses.WithSft(PreferenceLosses.Mean(rank), tensor(2.5f), 0.5, 0.5)), Tol);
    }

    [TestMethod]
    public void Tv5StableAtExtremes()
    {
        using var scope = NewDisposeScope();
        // β = 1, h = −200 and h = +40 (reference zero).
        var zero = V(0f, 0f);
        var loss = PreferenceLosses.Dpo(V(-200f, 40f), zero, zero, zero, 1.0);
        Assert.AreEqual(200.0, loss[0].item<float>(), Tol);
        float tiny = loss[1].item<float>();
        Assert.AreEqual(4.248e-18, tiny, 0.001e-18);
        Assert.IsTrue(tiny > 0);
        Assert.AreEqual(200.0, Item(PreferenceLosses.SimPo(V(-100f), V(0f), 2.0, 0.0)), Tol);
    }

    [TestMethod]
    public void InvalidHyperparametersNameTheArgument()
    {
        using var scope = NewDisposeScope();
        var (pw, pl, rw, rl) = Tv1();
        var e1 = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => PreferenceLosses.Dpo(pw, pl, rw, rl, 0.0));
        Assert.AreEqual("beta", e1.ParamName);
        Assert.AreEqual("beta", Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => PreferenceLosses.SimPo(pw, pl, -1, 0)).ParamName);
        Assert.AreEqual("labelSmoothing", Assert.ThrowsExactly<ArgumentOutOfRangeException>(
            () => PreferenceLosses.ConservativeDpo(pw, pl, rw, rl, 0.1, 0.5)).ParamName);
        Assert.AreEqual("labelSmoothing", Assert.ThrowsExactly<ArgumentOutOfRangeException>(
            () => PreferenceLosses.RobustDpo(pw, pl, rw, rl, 0.1, -0.1)).ParamName);
        Assert.AreEqual("lambda", Assert.ThrowsExactly<ArgumentOutOfRangeException>(
            () => PreferenceLosses.MixedSimPo(pw, pl, 1.0, 1.2, SimPoConvention.Paper)).ParamName);
        Assert.AreEqual("lambda", Assert.ThrowsExactly<ArgumentOutOfRangeException>(
            () => PreferenceLosses.MixedSimPo(pw, pl, 1.0, V(-0.1f), SimPoConvention.Paper)).ParamName);
        Assert.AreEqual("lambda", Assert.ThrowsExactly<ArgumentOutOfRangeException>(
            () => PreferenceLosses.MixedSimPo(pw, pl, 1.0, double.NaN, SimPoConvention.Paper)).ParamName);
        Assert.AreEqual("rejectedAverage", Assert.ThrowsExactly<ArgumentException>(
            () => PreferenceLosses.SimPo(V(1f, 2f), V(1f), 1.0, 0.0)).ParamName);
    }
}
