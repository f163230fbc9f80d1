using MergeMix.ML.Data;

namespace MergeMix.ML.Tests.Data;

[TestClass]
public sealed class SyntheticShapesTests
{
    [TestMethod]
    public void SameSeedGivesSameImagesAndScenesAndAnotherSeedDoesNot()
    {
        var (a, scenesA) = SyntheticShapes.Generate(60, seed: 5);
        var (b, scenesB) = SyntheticShapes.Generate(60, seed: 5);
        var (c, _) = SyntheticShapes.Generate(60, seed: 6);
        CollectionAssert.AreEqual(a.Pixels, b.Pixels);
        CollectionAssert.AreEqual(a.Labels, b.Labels);
        CollectionAssert.AreEqual(scenesA.ToArray(), scenesB.ToArray());
        CollectionAssert.AreNotEqual(a.Pixels, c.Pixels);
    }

    [TestMethod]
    public void ClassesAreBalancedWithTheRemainderSpread()
    {
        var (set, scenes) = SyntheticShapes.Generate(20, seed: 1);
        CollectionAssert.AreEqual(new[] { "circle", "square", "triangle", "cross", "ring", "diamond" }, SyntheticShapes.ClassNames.ToArray());
        CollectionAssert.AreEqual(SyntheticShapes.ClassNames.ToArray(), set.ClassNames.ToArray());
        // 20 = 6·3 + 2: the first two classes get one more.
        var counts = Enumerable.Range(0, 6).Select(k => set.Labels.Count(l => l == k)).ToArray();
        CollectionAssert.AreEqual(new[] { 4, 4, 3, 3, 3, 3 }, counts);
        for (int i = 0; i < set.Count; i++)
        {
            Assert.AreEqual(set.Labels[i], scenes[i].Label);
            Assert.AreEqual(SyntheticShapes.ClassNames[set.Labels[i]], scenes[i].Shape);
        }
    }

    [TestMethod]
    public void ImagesHaveTheRequestedShapeAndWholeValuesIn0To255()
    {
        var (set, scenes) = SyntheticShapes.Generate(30, seed: 2, new SyntheticShapesOptions { Width = 48, Height = 40, MinObjects = 2, MaxObjects = 4 });
        Assert.AreEqual((3, 40, 48), (set.Channels, set.Height, set.Width));
        Assert.AreEqual(30 * 3 * 40 * 48, set.Pixels.Length);
        foreach (float v in set.Pixels)
            if (v < 0 || v > 255 || v != MathF.Round(v))
                Assert.Fail($"Pixel value {v} is not a whole number in [0, 255].");
        var cellSide = 40 / 3f;
        foreach (var scene in scenes)
        {
            Assert.IsInRange(2, 4, scene.Count);
            Assert.HasCount(scene.Count, scene.Sizes);
            // Generated positions are distinct and in reading order.
            var cells = scene.Positions.Select(p => SyntheticShapes.PositionNames.ToList().IndexOf(p)).ToArray();
            CollectionAssert.AreEqual(cells.Distinct().Order().ToArray(), cells);
            foreach (var size in scene.Sizes)
                Assert.IsInRange(0.6f * cellSide, 0.95f * cellSide, size);
        }
    }

    // The named object colours, as rendered when ColourJitter = 0.
    private static readonly Dictionary<string, (float R, float G, float B)> Colours = new()
    {
        ["red"] = (220, 40, 40), ["green"] = (40, 190, 60), ["blue"] = (50, 90, 235), ["yellow"] = (235, 215, 40),
        ["magenta"] = (215, 50, 215), ["cyan"] = (40, 210, 215), ["white"] = (240, 240, 240), ["orange"] = (245, 135, 25),
    };

    [TestMethod]
    public void ObjectCellsShowTheNamedColourAtTheirCentreExceptRingHoles()
    {
        // Big objects (≥ 0.9 of a cell) are offset by at most 0.05 cell, so each occupied cell's centre pixel is deep
        // inside the shape — except for rings, whose centre is the hole and shows the background.
        var options = new SyntheticShapesOptions { MinObjectSize = 0.9f, MaxObjectSize = 0.95f, ColourJitter = 0 };
        var (set, scenes) = SyntheticShapes.Generate(60, seed: 11, options);
        int plane = 32 * 32;
        for (int i = 0; i < set.Count; i++)
        {
            var image = set.Image(i);
            var colour = Colours[scenes[i].Colour];
            foreach (var position in scenes[i].Positions)
            {
                int cell = SyntheticShapes.PositionNames.ToList().IndexOf(position);
                int x = (int)((cell % 3 + 0.5f) * 32 / 3), y = (int)((cell / 3 + 0.5f) * 32 / 3);
                var pixel = (image[y * 32 + x], image[plane + y * 32 + x], image[2 * plane + y * 32 + x]);
                if (scenes[i].Shape == "ring")
                    Assert.AreNotEqual(colour, pixel, $"image {i} ({scenes[i].Caption}): ring centre at {position}");
                else
                    Assert.AreEqual(colour, pixel, $"image {i} ({scenes[i].Caption}): centre of {position}");
            }
        }
    }

    [TestMethod]
    public void ShapeGeometryHasTheExpectedSignedDistances()
    {
        const float r = 5;
        // circle: distance from the rim
        Assert.AreEqual(0f, SyntheticShapes.SignedDistance(0, 3, 4, r), 1e-6f);
        Assert.AreEqual(-5f, SyntheticShapes.SignedDistance(0, 0, 0, r), 1e-6f);
        // square: half side 0.82·5 = 4.1
        Assert.AreEqual(0.9f, SyntheticShapes.SignedDistance(1, 5, 0, r), 1e-5f);
        Assert.AreEqual(-4.1f, SyntheticShapes.SignedDistance(1, 0, 0, r), 1e-5f);
        // triangle: circumradius 5.25, centroid 1.3125 below the centre; apex at y = 1.3125 − 5.25 = −3.9375, base at 1.3125 + 2.625 = 3.9375
        Assert.AreEqual(0f, SyntheticShapes.SignedDistance(2, 0, -3.9375f, r), 1e-5f);
        Assert.AreEqual(0f, SyntheticShapes.SignedDistance(2, 0, 3.9375f, r), 1e-5f);
        Assert.IsGreaterThan(0f, SyntheticShapes.SignedDistance(2, -4f, -3f, r)); // upper-left corner of the box is outside
        // cross: bars of half thickness 1.5 and half length 5; the box corner (4, 4) is outside, the arm tip (4.5, 0) inside
        Assert.AreEqual(2.5f, SyntheticShapes.SignedDistance(3, 4, 4, r), 1e-5f);
        Assert.AreEqual(-0.5f, SyntheticShapes.SignedDistance(3, 4.5f, 0, r), 1e-5f);
        // ring: thickness 1.9, so the band spans radii 3.1..5 and the centre lies 3.1 outside it
        Assert.AreEqual(3.1f, SyntheticShapes.SignedDistance(4, 0, 0, r), 1e-5f);
        Assert.AreEqual(-0.95f, SyntheticShapes.SignedDistance(4, 4.05f, 0, r), 1e-5f);
        // diamond: |x| + |y| = 5.25 on the edge
        Assert.AreEqual(0f, SyntheticShapes.SignedDistance(5, 2.25f, 3f, r), 1e-5f);
        Assert.AreEqual(-5.25f * 0.70710677f, SyntheticShapes.SignedDistance(5, 0, 0, r), 1e-5f);
    }

    [TestMethod]
    public void CaptionsAndQuestionsReadAsExpected()
    {
        var one = new SyntheticScene("circle", "red", new[] { "top left" }, new[] { 8f });
        Assert.AreEqual("a red circle at the top left", one.Caption);
        CollectionAssert.AreEqual(new[]
        {
            ("what colour is the shape?", "red"),
            ("what shape is in the image?", "circle"),
            ("where is the circle?", "top left"),
            ("how many shapes are there?", "one"),
        }, one.Questions().ToArray());

        var two = new SyntheticScene("square", "blue", new[] { "left", "bottom right" }, new[] { 7f, 9f });
        Assert.AreEqual("two blue squares at the left and the bottom right", two.Caption);
        CollectionAssert.AreEqual(new[]
        {
            ("what colour are the shapes?", "blue"),
            ("what shape is in the image?", "square"),
            ("how many shapes are there?", "two"),
        }, two.Questions().ToArray());

        Assert.AreEqual(new SyntheticScene("square", "blue", new List<string> { "left", "bottom right" }, new List<float> { 7f, 9f }), two);
        Assert.AreNotEqual(new SyntheticScene("square", "blue", new[] { "left", "bottom right" }, new[] { 7f, 9.5f }), two);

        Assert.AreEqual("an orange cross at the center", new SyntheticScene("cross", "orange", new[] { "center" }, new[] { 6f }).Caption);
        Assert.AreEqual("three green crosses at the top and the center and the bottom",
            new SyntheticScene("cross", "green", new[] { "top", "center", "bottom" }, new[] { 6f, 7f, 8f }).Caption);
    }

    [TestMethod]
    public void EveryGeneratedTextUsesOnlyVocabularyWords()
    {
        var vocabulary = SyntheticShapes.Vocabulary.ToHashSet(StringComparer.Ordinal);
        Assert.HasCount(vocabulary.Count, SyntheticShapes.Vocabulary); // no duplicates
        var (_, scenes) = SyntheticShapes.Generate(300, seed: 3, new SyntheticShapesOptions { MaxObjects = 9 });
        var used = new HashSet<string>(StringComparer.Ordinal);
        foreach (var scene in scenes)
            foreach (var text in scene.Questions().SelectMany(q => new[] { q.Question, q.Answer }).Append(scene.Caption))
            {
                Assert.AreEqual(text.Trim().ToLowerInvariant(), text);
                Assert.DoesNotContain("  ", text);
                foreach (var word in text.Replace("?", " ?").Split(' '))
                {
                    Assert.Contains(word, vocabulary, $"'{word}' in \"{text}\"");
                    used.Add(word);
                }
            }
        // 300 scenes with 1–9 objects use every word except, by chance, none.
        CollectionAssert.AreEquivalent(SyntheticShapes.Vocabulary.ToArray(), used.ToArray());
    }

    [TestMethod]
    public void BadArgumentsNameTheOption()
    {
        Assert.AreEqual("MaxObjects", Assert.ThrowsExactly<ArgumentOutOfRangeException>(
            () => SyntheticShapes.Generate(6, 1, new SyntheticShapesOptions { MaxObjects = 10 })).ParamName);
        Assert.AreEqual("Width", Assert.ThrowsExactly<ArgumentOutOfRangeException>(
            () => SyntheticShapes.Generate(6, 1, new SyntheticShapesOptions { Width = 8 })).ParamName);
        Assert.AreEqual("MaxObjectSize", Assert.ThrowsExactly<ArgumentOutOfRangeException>(
            () => SyntheticShapes.Generate(6, 1, new SyntheticShapesOptions { MinObjectSize = 0.8f, MaxObjectSize = 0.7f })).ParamName);
        Assert.AreEqual("count", Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => SyntheticShapes.Generate(0, 1)).ParamName);
        Assert.AreEqual("shape", Assert.ThrowsExactly<ArgumentOutOfRangeException>(
            () => new SyntheticScene("hexagon", "red", new[] { "top" }, new[] { 5f })).ParamName);
        Assert.AreEqual("positions", Assert.ThrowsExactly<ArgumentException>(
            () => new SyntheticScene("ring", "red", new[] { "top", "top" }, new[] { 5f, 5f })).ParamName);
    }
}
