using MergeMix.ML.Data;
using Microsoft.ML;
using Microsoft.ML.Data;

namespace MergeMix.ML.Tests.Data;

[TestClass]
public sealed class LabeledImageSetTests
{
    private static LabeledImageSet Tiny() =>
        new(Enumerable.Range(0, 4 * 3 * 2 * 2).Select(i => (float)i).ToArray(), new[] { 0, 1, 1, 0 }, new[] { "cat", "dog" }, 3, 2, 2);

    [TestMethod]
    public void DataViewRoundTripKeepsPixelsLabelsAndKeyValues()
    {
        var ml = new MLContext(1);
        var set = Tiny();
        var view = set.ToDataView(ml);
        var imageType = (VectorDataViewType)view.Schema["Features"].Type;
        CollectionAssert.AreEqual(new[] { 3, 2, 2 }, imageType.Dimensions.ToArray());
        var keyType = (KeyDataViewType)view.Schema["Label"].Type;
        Assert.AreEqual(2UL, keyType.Count);
        CollectionAssert.AreEqual(new[] { "cat", "dog" }, ImageColumns.ClassNamesOf(view.Schema["Label"]).ToArray());

        var back = LabeledImageSet.FromDataView(view);
        CollectionAssert.AreEqual(set.Pixels, back.Pixels);
        CollectionAssert.AreEqual(set.Labels, back.Labels);
        Assert.AreEqual((3, 2, 2), (back.Channels, back.Height, back.Width));
    }

    [TestMethod]
    public void MapKeyToValueRecoversClassNames()
    {
        var ml = new MLContext(1);
        var view = ml.Transforms.Conversion.MapKeyToValue("Name", "Label").Fit(Tiny().ToDataView(ml)).Transform(Tiny().ToDataView(ml));
        CollectionAssert.AreEqual(new[] { "cat", "dog", "dog", "cat" }, view.GetColumn<string>("Name").ToArray());
    }

    [TestMethod]
    public void StratifiedSplitIsDeterministicAndKeepsClassShares()
    {
        var labels = Enumerable.Range(0, 100).Select(i => i % 4 == 0 ? 1 : 0).ToArray();
        var set = new LabeledImageSet(new float[100 * 3], labels, new[] { "a", "b" }, 3, 1, 1);
        var (kept, held) = set.StratifiedSplit(0.2, seed: 7);
        Assert.AreEqual(80, kept.Count);
        Assert.AreEqual(20, held.Count);
        Assert.AreEqual(5, held.Labels.Count(l => l == 1));
        var (_, again) = set.StratifiedSplit(0.2, seed: 7);
        CollectionAssert.AreEqual(held.Labels, again.Labels);
    }

    [TestMethod]
    public void BadColumnsAreNamed()
    {
        var ml = new MLContext(1);
        var view = Tiny().ToDataView(ml);
        var missing = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => LabeledImageSet.FromDataView(view, "Pixels"));
        StringAssert.Contains(missing.Message, "'Pixels'");
        var notKey = ml.Transforms.Conversion.MapKeyToValue("Label").Fit(view).Transform(view);
        var keyError = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => LabeledImageSet.FromDataView(notKey));
        StringAssert.Contains(keyError.Message, "MapValueToKey");
        var wrongSize = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => LabeledImageSet.FromDataView(view, height: 4, width: 4));
        StringAssert.Contains(wrongSize.Message, "4×4");
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => new LabeledImageSet(new float[3], new[] { 2 }, new[] { "a", "b" }, 3, 1, 1));
    }

    [TestMethod]
    public void NaNPixelsAreRejectedWithTheColumnName()
    {
        var ml = new MLContext(1);
        var pixels = new float[2 * 3];
        pixels[4] = float.NaN;
        var view = new LabeledImageSet(pixels, new[] { 0, 1 }, new[] { "a", "b" }, 3, 1, 1).ToDataView(ml, "Image");
        var ex = Assert.ThrowsExactly<InvalidOperationException>(() => LabeledImageSet.FromDataView(view, "Image"));
        StringAssert.Contains(ex.Message, "'Image'");
        StringAssert.Contains(ex.Message, "NaN");
    }
}
