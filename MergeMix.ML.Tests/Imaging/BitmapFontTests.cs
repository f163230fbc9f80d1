using MergeMix.ML.Imaging;

namespace MergeMix.ML.Tests.Imaging;

[TestClass]
public sealed class BitmapFontTests
{
    private static string[] Render(RgbCanvas canvas) =>
        Enumerable.Range(0, canvas.Height)
            .Select(y => new string(Enumerable.Range(0, canvas.Width).Select(x => canvas.GetPixel(x, y) == Rgb.White ? '#' : '.').ToArray()))
            .ToArray();

    [TestMethod]
    public void DrawsTheDigitOneAtItsOffset()
    {
        var canvas = new RgbCanvas(7, 9, Rgb.Black);
        Assert.AreEqual(5, canvas.DrawText("1", 1, 1, Rgb.White));
        CollectionAssert.AreEqual(new[]
        {
            ".......",
            "...#...",
            "..##...",
            "...#...",
            "...#...",
            "...#...",
            "...#...",
            "..###..",
            ".......",
        }, Render(canvas));
    }

    [TestMethod]
    public void DrawsLambdaAndEqualsAtScaleTwo()
    {
        var canvas = new RgbCanvas(22, 14, Rgb.Black);
        Assert.AreEqual(22, canvas.DrawText("λ=", 0, 0, Rgb.White, scale: 2));
        string[] font =
        {
            "#..........",
            ".#.........",
            ".#....#####",
            "..#........",
            ".#.#..#####",
            "#...#......",
            "#...#......",
        };
        var expected = font.SelectMany(row =>
        {
            string doubled = string.Concat(row.Select(c => new string(c, 2)));
            return new[] { doubled, doubled };
        }).ToArray();
        CollectionAssert.AreEqual(expected, Render(canvas));
    }

    [TestMethod]
    public void LowerCaseUsesCapitalsAndUnknownCharactersUseTheQuestionMark()
    {
        for (int y = 0; y < BitmapFont.GlyphHeight; y++)
            for (int x = 0; x < BitmapFont.GlyphWidth; x++)
            {
                Assert.AreEqual(BitmapFont.IsInk('Q', x, y), BitmapFont.IsInk('q', x, y));
                Assert.AreEqual(BitmapFont.IsInk('?', x, y), BitmapFont.IsInk('@', x, y));
            }
        Assert.IsFalse(BitmapFont.HasGlyph('@'));
        Assert.IsTrue(BitmapFont.HasGlyph('z') && BitmapFont.HasGlyph('λ') && BitmapFont.HasGlyph(':'));
    }

    [TestMethod]
    public void EveryGlyphIsDistinctAndOnlySpaceIsBlank()
    {
        var patterns = BitmapFont.Characters.ToDictionary(c => c, c => string.Concat(
            Enumerable.Range(0, BitmapFont.GlyphHeight * BitmapFont.GlyphWidth)
                .Select(i => BitmapFont.IsInk(c, i % BitmapFont.GlyphWidth, i / BitmapFont.GlyphWidth) ? '#' : '.')));
        var duplicates = patterns.GroupBy(p => p.Value).Where(g => g.Count() > 1).Select(g => string.Concat(g.Select(p => p.Key))).ToArray();
        Assert.AreEqual(0, duplicates.Length, "glyphs drawn alike: " + string.Join(", ", duplicates));
        CollectionAssert.AreEqual(new[] { ' ' }, patterns.Where(p => !p.Value.Contains('#')).Select(p => p.Key).ToArray());
        foreach (char c in "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ.=:-/")
            Assert.IsTrue(BitmapFont.HasGlyph(c), $"missing glyph '{c}'");
    }

    [TestMethod]
    public void MeasuresWithoutTheTrailingGap()
    {
        Assert.AreEqual(0, BitmapFont.MeasureWidth(""));
        Assert.AreEqual(5, BitmapFont.MeasureWidth("A"));
        Assert.AreEqual(70, BitmapFont.MeasureWidth("λ=0.50", 2));
        Assert.AreEqual(14, BitmapFont.MeasureHeight(2));
    }
}
