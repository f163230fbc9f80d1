using MergeMix.ML.Data;

namespace MergeMix.ML.Tests.Data;

/// <summary>The attribute prior: shape-correlated scenes, and a counter-prior split where the correlation never holds.</summary>
[TestClass]
public sealed class SyntheticShapesPriorTests
{
    private static (int Colour, int Position, int Count, int Scenes) TypicalCounts(float? prior, int count = 600, int seed = 4)
    {
        var options = new SyntheticShapesOptions { AttributePrior = prior };
        var (_, scenes) = SyntheticShapes.Generate(count, seed, options);
        int colour = 0, position = 0, objects = 0;
        foreach (var scene in scenes)
        {
            var typical = SyntheticShapes.Typical(scene.Shape, options);
            if (scene.Colour == typical.Colour) colour++;
            if (scene.Positions.Contains(typical.Position)) position++;
            if (scene.Count == typical.Count) objects++;
        }
        return (colour, position, objects, scenes.Count);
    }

    [TestMethod]
    public void TypicalAttributesFollowTheDocumentedTable()
    {
        Assert.AreEqual(("red", "top left", 1), SyntheticShapes.Typical("circle"));
        Assert.AreEqual(("green", "top", 2), SyntheticShapes.Typical("square"));
        Assert.AreEqual(("cyan", "bottom right", 3), SyntheticShapes.Typical("diamond"));
        Assert.AreEqual(("yellow", "bottom left", 2), SyntheticShapes.Typical("cross", new SyntheticShapesOptions { MinObjects = 2, MaxObjects = 4 }));
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => SyntheticShapes.Typical("star"));
    }

    [TestMethod]
    public void CounterPriorScenesNeverTakeATypicalValueAndPriorOneAlwaysDoes()
    {
        Assert.AreEqual((0, 0, 0, 600), TypicalCounts(0f));
        Assert.AreEqual((600, 600, 600, 600), TypicalCounts(1f));
    }

    [TestMethod]
    public void EachAttributeIsTypicalAtTheGivenRateAndIndependentScenesAreNot()
    {
        // 600 scenes at p = 0.9: binomial sd 1.2 points, so ±5 points is > 4 sd.
        var (colour, position, count, n) = TypicalCounts(0.9f);
        foreach (int k in new[] { colour, position, count })
            Assert.IsTrue(Math.Abs((double)k / n - 0.9) < 0.05, $"typical share {k}/{n}");
        // Without a prior, a colour is typical 1/8 of the time.
        var (independent, _, _, _) = TypicalCounts(null);
        Assert.IsTrue(Math.Abs(independent / 600.0 - 0.125) < 0.05, $"independent typical colours {independent}/600");
    }

    [TestMethod]
    public void ThePriorKeepsShapesBalancedAndCellsDistinct()
    {
        var (images, scenes) = SyntheticShapes.Generate(120, seed: 2, new SyntheticShapesOptions { AttributePrior = 0 });
        CollectionAssert.AreEqual(Enumerable.Repeat(20, 6).ToArray(), images.Labels.GroupBy(l => l).OrderBy(g => g.Key).Select(g => g.Count()).ToArray());
        Assert.IsTrue(scenes.All(s => s.Positions.Distinct().Count() == s.Count && s.Count is >= 1 and <= 3));
    }

    [TestMethod]
    public void BadPriorsNameTheOption()
    {
        var e = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => SyntheticShapes.Generate(4, 1, new SyntheticShapesOptions { AttributePrior = 1.5f }));
        Assert.AreEqual("AttributePrior", e.ParamName);
        e = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => SyntheticShapes.Generate(4, 1, new SyntheticShapesOptions { AttributePrior = 0.5f, MinObjects = 9, MaxObjects = 9 }));
        Assert.AreEqual("MaxObjects", e.ParamName);
    }
}
