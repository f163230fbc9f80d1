using MergeMix.ML.Data;
using MergeMix.ML.Samples;

namespace MergeMix.ML.Tests.Alignment;

/// <summary>The objective-independent metrics of the align-prior experiment, on hand-computed cases.</summary>
[TestClass]
public sealed class AlignMetricsTests
{
    private static readonly SyntheticScene OneRedCircle = new("circle", "red", new[] { "top left" }, new[] { 8f });
    private static readonly SyntheticScene TwoBlueSquares = new("square", "blue", new[] { "top", "bottom right" }, new[] { 8f, 8f });

    [TestMethod]
    public void EachWrongAttributeIsNamedAndOmissionsAreNot()
    {
        CollectionAssert.AreEquivalent(Array.Empty<string>(), AlignMetrics.HallucinatedAttributes("a red circle at the top left", OneRedCircle).ToArray());
        CollectionAssert.AreEquivalent(Array.Empty<string>(), AlignMetrics.HallucinatedAttributes("a circle", OneRedCircle).ToArray(), "leaving out is not hallucinating");
        CollectionAssert.AreEquivalent(new[] { "colour" }, AlignMetrics.HallucinatedAttributes("green", OneRedCircle).ToArray());
        CollectionAssert.AreEquivalent(new[] { "shape" }, AlignMetrics.HallucinatedAttributes("a red square at the top left", OneRedCircle).ToArray());
        // "top left" is matched as one name, so "top" alone is not checked inside it; "top right" is wrong.
        CollectionAssert.AreEquivalent(new[] { "position" }, AlignMetrics.HallucinatedAttributes("a red circle at the top right", OneRedCircle).ToArray());
        CollectionAssert.AreEquivalent(new[] { "count" }, AlignMetrics.HallucinatedAttributes("two red circles at the top left", OneRedCircle).ToArray());
        CollectionAssert.AreEquivalent(new[] { "count", "colour" }, AlignMetrics.HallucinatedAttributes("a red square at the top", TwoBlueSquares).ToArray());
        CollectionAssert.AreEquivalent(Array.Empty<string>(), AlignMetrics.HallucinatedAttributes("two blue squares at the top and the bottom right.", TwoBlueSquares).ToArray());
    }

    [TestMethod]
    public void ScoresCountEmptyAndTruncatedAnswersAsFailures()
    {
        var answers = new[]
        {
            new ScoredAnswer("red", false, "red", "colour", OneRedCircle),                                  // exact, clean
            new ScoredAnswer("blue", false, "red", "colour", OneRedCircle),                                 // colour hallucination
            new ScoredAnswer("", false, "circle", "shape", OneRedCircle),                                   // empty
            new ScoredAnswer("a red circle at the top left", true, "a red circle at the top left", "caption", OneRedCircle), // truncated
            new ScoredAnswer("three", false, "two", "count", TwoBlueSquares),                               // count hallucination
        };
        var s = AlignMetrics.Score(answers);
        Assert.AreEqual(1 / 5.0, s.ExactMatch, 1e-12, "a truncated answer is no exact match even when its text matches");
        Assert.AreEqual(0.5, s.ExactMatchByKind["colour"], 1e-12);
        Assert.AreEqual(0.0, s.ExactMatchByKind["caption"], 1e-12);
        Assert.IsTrue(double.IsNaN(s.ExactMatchByKind["position"]));
        Assert.AreEqual(4 / 5.0, s.HallucinationRate, 1e-12);
        Assert.AreEqual(2 / 5.0, s.EmptyOrTruncatedRate, 1e-12);
        Assert.AreEqual(3 / 5.0, s.HallucinationByAttribute["colour"], 1e-12, "blue + empty + truncated");
        Assert.AreEqual(3 / 5.0, s.HallucinationByAttribute["count"], 1e-12, "three + empty + truncated");
        Assert.AreEqual(2 / 5.0, s.HallucinationByAttribute["shape"], 1e-12);
        Assert.AreEqual(5, s.Rows);
    }

    [TestMethod]
    public void PairedDifferencesUseTheSampleStdAndTheTQuantile()
    {
        var d = AlignMetrics.Paired(new[] { 0.60, 0.70, 0.80 }, new[] { 0.50, 0.50, 0.50 });
        // Differences 0.1, 0.2, 0.3: mean 0.2, sd 0.1, t(2) = 4.303, half-width 4.303 · 0.1 / √3.
        Assert.AreEqual(0.2, d.Mean, 1e-12);
        Assert.AreEqual(0.1, d.Std, 1e-12);
        Assert.AreEqual(4.303 * 0.1 / Math.Sqrt(3), d.HalfWidth95, 1e-12);
        Assert.AreEqual((3, 0, 3), (d.Positive, d.Negative, d.Count));
        Assert.IsFalse(d.Survives, "3 of 3 seeds positive, but the interval [-0.048, 0.448] includes 0");
        Assert.IsTrue(AlignMetrics.Paired(new[] { 0.69, 0.70, 0.71 }, new[] { 0.5, 0.5, 0.5 }).Survives, "sd 0.01: [0.175, 0.225]");
        Assert.ThrowsExactly<ArgumentException>(() => AlignMetrics.Paired(new[] { 0.1, 0.2 }, new[] { 0.1 }));
    }

    [TestMethod]
    public void APlateauNeedsPatienceEpochsWithoutAGain()
    {
        var curve = new Dictionary<int, double> { [1] = 1.0, [2] = 0.8, [3] = 0.795, [4] = 0.7945 };
        Assert.IsFalse(AlignMetrics.Plateaued(curve, 2, patience: 2, minDelta: 0.01), "too early");
        Assert.IsFalse(AlignMetrics.Plateaued(curve, 3, patience: 2, minDelta: 0.01), "epoch 2 gained 0.2 on epoch 1");
        Assert.IsTrue(AlignMetrics.Plateaued(curve, 4, patience: 2, minDelta: 0.01), "epochs 3, 4 gain 0.005, 0.0055 < 0.01 on 0.8");
        Assert.IsFalse(AlignMetrics.Plateaued(curve, 4, patience: 2, minDelta: 0.002), "epoch 3 gains 0.005 > 0.002");
    }
}
