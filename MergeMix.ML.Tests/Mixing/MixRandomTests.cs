using MergeMix.ML.Mixing;
using TorchSharp;

namespace MergeMix.ML.Tests.Mixing;

[TestClass]
public sealed class MixRandomTests
{
    [TestMethod]
    public void BetaIsDeterministicPerGeneratorState()
    {
        using var a = new torch.Generator(7);
        using var b = new torch.Generator(7);
        using var c = new torch.Generator(8);
        var fromA = Enumerable.Range(0, 5).Select(_ => MixRandom.Beta(0.8, a)).ToArray();
        var fromB = Enumerable.Range(0, 5).Select(_ => MixRandom.Beta(0.8, b)).ToArray();
        var fromC = Enumerable.Range(0, 5).Select(_ => MixRandom.Beta(0.8, c)).ToArray();
        CollectionAssert.AreEqual(fromA, fromB);
        CollectionAssert.AreNotEqual(fromA, fromC);
    }

    [TestMethod]
    [DataRow(1.0, 1.0 / 12)]     // Beta(1,1) is U(0,1)
    [DataRow(0.2, 1.0 / 5.6)]    // Var = 1 / (4(2α+1))
    [DataRow(2.0, 1.0 / 20)]
    public void BetaHasTheRightMoments(double alpha, double variance)
    {
        using var g = new torch.Generator(123);
        var draws = Enumerable.Range(0, 4000).Select(_ => MixRandom.Beta(alpha, g)).ToArray();
        Assert.IsTrue(draws.All(d => d >= 0 && d <= 1));
        double mean = draws.Average();
        double var = draws.Select(d => (d - mean) * (d - mean)).Average();
        // 4000 draws: the standard error of the mean is ≤ 0.007, of the variance ≤ 0.003.
        Assert.AreEqual(0.5, mean, 0.025);
        Assert.AreEqual(variance, var, 0.012);
    }

    [TestMethod]
    public void BetaRejectsNonPositiveAlpha()
    {
        using var g = new torch.Generator(1);
        var e = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => MixRandom.Beta(0, g));
        Assert.AreEqual("alpha", e.ParamName);
    }

    [TestMethod]
    public void PartnerPermutationNeverPairsARowWithItself()
    {
        for (int batch = 2; batch <= 9; batch++)
            for (ulong seed = 0; seed < 150; seed++)
            {
                using var g = new torch.Generator(seed);
                long[] p = MixRandom.PartnerPermutation(batch, g);
                CollectionAssert.AreEquivalent(Enumerable.Range(0, batch).Select(i => (long)i).ToArray(), p, $"B={batch} seed={seed}");
                for (int i = 0; i < batch; i++) Assert.AreNotEqual((long)i, p[i], $"B={batch} seed={seed}: row {i} paired with itself");
            }
    }

    [TestMethod]
    public void PartnerPermutationIsDeterministicAndVaries()
    {
        using var a = new torch.Generator(5);
        using var b = new torch.Generator(5);
        CollectionAssert.AreEqual(MixRandom.PartnerPermutation(8, a), MixRandom.PartnerPermutation(8, b));
        var seen = new HashSet<string>();
        for (ulong seed = 0; seed < 30; seed++)
        {
            using var g = new torch.Generator(seed);
            seen.Add(string.Join(",", MixRandom.PartnerPermutation(4, g)));
        }
        // A 4-row batch has 9 derangements; 30 seeds must reach more than a couple of them.
        Assert.IsTrue(seen.Count >= 5, $"only {seen.Count} distinct partner permutations");
        using var two = new torch.Generator(3);
        CollectionAssert.AreEqual(new long[] { 1, 0 }, MixRandom.PartnerPermutation(2, two));
    }
}
