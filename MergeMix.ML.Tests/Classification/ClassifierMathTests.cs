using MergeMix.ML.Classification;
using static TorchSharp.torch;

namespace MergeMix.ML.Tests.Classification;

[TestClass]
public sealed class ClassifierMathTests
{
    // Four rows, three classes; confidences 0.9 (hit), 0.65 (miss), 0.55 (hit), 0.42 (miss).
    private static readonly float[] Probabilities =
    {
        0.9f, 0.06f, 0.04f,
        0.1f, 0.65f, 0.25f,
        0.3f, 0.15f, 0.55f,
        0.42f, 0.38f, 0.2f,
    };

    private static readonly int[] Labels = { 0, 2, 2, 1 };

    [TestMethod]
    public void MetricsOfAHandMadeExample()
    {
        var metrics = ClassificationMetrics.Compute(Probabilities, Labels, 3, bins: 5);

        Assert.AreEqual(0.5, metrics.Accuracy);
        // −(ln 0.9 + ln 0.25 + ln 0.55 + ln 0.38) / 4 = (0.1053605 + 1.3862944 + 0.5978370 + 0.9675840) / 4
        Assert.AreEqual(0.7642690, metrics.LogLoss, 1e-6);
        // Bins of width 0.2: (0.8, 1] holds the hit at 0.9 → ¼·|1 − 0.9|; (0.6, 0.8] the miss at 0.65 → ¼·|0 − 0.65|;
        // (0.4, 0.6] the hit at 0.55 and the miss at 0.42 → ½·|0.5 − 0.485|. Sum 0.025 + 0.1625 + 0.0075.
        Assert.AreEqual(0.195, metrics.ExpectedCalibrationError, 1e-6);
        Assert.AreEqual(4, metrics.Count);

        // One bin: |accuracy − mean confidence| = |0.5 − 0.63|.
        Assert.AreEqual(0.13, ClassificationMetrics.Compute(Probabilities, Labels, 3, bins: 1).ExpectedCalibrationError, 1e-6);
    }

    [TestMethod]
    public void LogLossClampsAZeroProbabilityLikeMlNet()
    {
        var metrics = ClassificationMetrics.Compute(new float[] { 1, 0, 1, 0 }, new[] { 1, 0 }, 2);
        // (−ln 1e-15 + 0) / 2
        Assert.AreEqual(34.538776394910684 / 2, metrics.LogLoss, 1e-9);
        Assert.AreEqual(0.5, metrics.Accuracy);
    }

    [TestMethod]
    public void MetricsRejectMismatchedInputs()
    {
        StringAssert.Contains(Assert.ThrowsExactly<ArgumentException>(() => ClassificationMetrics.Compute(Probabilities, Labels, 4)).Message, "4×4");
        Assert.AreEqual("classCount", Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => ClassificationMetrics.Compute(Probabilities, Labels, 1)).ParamName);
        Assert.AreEqual("bins", Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => ClassificationMetrics.Compute(Probabilities, Labels, 3, bins: 0)).ParamName);
    }

    [TestMethod]
    public void LearningRateWarmsUpLinearlyThenFollowsTheCosine()
    {
        // 2 warm-up steps, then 5 cosine steps (2..6) from 1 down to 0.1.
        const long total = 7, warmup = 2;
        double At(long step) => ClassifierTraining.LearningRateAt(step, total, warmup, 1.0, 0.1);
        Assert.AreEqual(0.5, At(0), 1e-12);
        Assert.AreEqual(1.0, At(1), 1e-12);
        Assert.AreEqual(1.0, At(2), 1e-12);
        // progress ¼: 0.1 + 0.9·½·(1 + cos π/4)
        Assert.AreEqual(0.1 + 0.45 * (1 + Math.Sqrt(0.5)), At(3), 1e-12);
        Assert.AreEqual(0.55, At(4), 1e-12);
        Assert.AreEqual(0.1 + 0.45 * (1 - Math.Sqrt(0.5)), At(5), 1e-12);
        Assert.AreEqual(0.1, At(6), 1e-12);
        Assert.AreEqual(0.1, At(9), 1e-12, "past the end the rate stays at the minimum");

        // Without warm-up the first step runs at the peak rate.
        Assert.AreEqual(2e-3, ClassifierTraining.LearningRateAt(0, 10, 0, 2e-3, 0), 1e-15);
    }

    [TestMethod]
    public void SoftCrossEntropyWithAndWithoutSmoothing()
    {
        // Row 0: softmax(0, ln 2, 0) = (¼, ½, ¼), target one-hot class 1.
        // Row 1: softmax(0, 0, 0) = ⅓ each, target (½, 0, ½).
        using var logits = tensor(new float[] { 0, MathF.Log(2), 0, 0, 0, 0 }, new long[] { 2, 3 });
        using var targets = tensor(new float[] { 0, 1, 0, 0.5f, 0, 0.5f }, new long[] { 2, 3 });

        // No smoothing: (ln 2 + ln 3) / 2.
        using (var loss = ClassifierTraining.SoftCrossEntropy(logits, targets, 0))
            Assert.AreEqual((Math.Log(2) + Math.Log(3)) / 2, loss.item<float>(), 1e-6);

        // ε = 0.3: row 0's target becomes (0.1, 0.8, 0.1) → 0.2·ln 4 + 0.8·ln 2; row 1 still sums to 1 over ⅓'s → ln 3.
        using (var loss = ClassifierTraining.SoftCrossEntropy(logits, targets, 0.3))
            Assert.AreEqual((0.2 * Math.Log(4) + 0.8 * Math.Log(2) + Math.Log(3)) / 2, loss.item<float>(), 1e-6);
    }

    [TestMethod]
    public void EpochSeedsAreFixedNumbersNotProcessRandomHashes()
    {
        // Values of the SplitMix64 mix computed independently (Python, 64-bit wrap-around arithmetic). HashCode.Combine,
        // used before, is randomised per process, so runs with one seed differed between processes.
        Assert.AreEqual(666012609, ClassifierTraining.EpochSeed(0, 0, 1));
        Assert.AreEqual(101841149, ClassifierTraining.EpochSeed(7, 3, 2));
        Assert.AreEqual(1063540911, ClassifierTraining.EpochSeed(123, 10, 3));
    }
}
