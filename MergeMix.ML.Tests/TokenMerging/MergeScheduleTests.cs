using MergeMix.ML.TokenMerging;

namespace MergeMix.ML.Tests.TokenMerging;

[TestClass]
public sealed class MergeScheduleTests
{
    // Values from mergemix-method.md §2 (openmixup's schedules for its DeiT/ViT configs, 196 tokens).
    [TestMethod]
    public void ForModelMatchesReferenceSchedules()
    {
        CollectionAssert.AreEqual(new[] { 8, 12, 11, 10, 10, 9, 8, 7, 7, 6, 5, 5 }, MergeSchedule.ForModel(12, 98, 196));
        CollectionAssert.AreEqual(new[] { 12, 5, 5, 4, 4, 4, 3, 3, 3, 2, 2, 2 }, MergeSchedule.ForModel(12, 49, 196));
        CollectionAssert.AreEqual(new[] { 16, 17, 15, 13, 12, 10, 8, 7 }, MergeSchedule.ForModel(8, 98, 196));
    }

    [TestMethod]
    public void CheckParseRFindsClosestR()
    {
        // 12 layers, r = 9: 13,12,11,10,10,9,8,7,7,6,5,5 sums to 103 (gap 5); r = 8 sums to 88 (gap 10).
        Assert.AreEqual(9, MergeSchedule.CheckParseR(12, 98, 196));
        Assert.AreEqual(4, MergeSchedule.CheckParseR(12, 49, 196));
        Assert.AreEqual(13, MergeSchedule.CheckParseR(8, 98, 196));
        Assert.AreEqual(5, MergeSchedule.CheckParseR(24, 98, 196));
        Assert.AreEqual(0, MergeSchedule.CheckParseR(12, 0, 196));
    }

    [TestMethod]
    public void ParseRWithoutTotalIsTheLinearList()
    {
        CollectionAssert.AreEqual(new[] { 13, 12, 11, 10, 10, 9, 8, 7, 7, 6, 5, 5 }, MergeSchedule.ParseR(12, 9, -0.5));
        // inflection 0 is a constant schedule; +0.5 increases and gets the remainder on the last layer.
        CollectionAssert.AreEqual(new[] { 4, 4, 4 }, MergeSchedule.ParseR(3, 4, 0.0));
        CollectionAssert.AreEqual(new[] { 2, 4, 7 }, MergeSchedule.ParseR(3, 4, 0.5, total: 13));
        // A single layer (the reference divides by zero there) gets min, plus the remainder.
        CollectionAssert.AreEqual(new[] { 6 }, MergeSchedule.ParseR(1, 4, -0.5));
        CollectionAssert.AreEqual(new[] { 5 }, MergeSchedule.ParseR(1, 4, -0.5, total: 5));
    }

    [TestMethod]
    public void TwentyFourLayersStartNegativeAndMergeNothingThere()
    {
        // mergemix-method.md §2 says "only 94 are merged"; that is 98 − 4. But the reference's matching returns the
        // identity for r ≤ 0 while the other 23 layers still merge their 102 tokens, so 102 are merged in total.
        int[] raw = MergeSchedule.ParseR(24, MergeSchedule.CheckParseR(24, 98, 196), -0.5, total: 98);
        Assert.AreEqual(-4, raw[0]);
        Assert.AreEqual(98, raw.Sum());

        int[] used = MergeSchedule.ForModel(24, 98, 196);
        Assert.AreEqual(0, used[0]);
        CollectionAssert.AreEqual(raw.Skip(1).ToArray(), used.Skip(1).ToArray());
        Assert.AreEqual(102, used.Sum());
    }

    [TestMethod]
    public void ForModelDefaultTinyConfig()
    {
        // 6 layers, 32 of 64 patches: r = 6 gives 9,7,6,5,4,3 (34); the −2 remainder goes to layer 0.
        CollectionAssert.AreEqual(new[] { 7, 7, 6, 5, 4, 3 }, MergeSchedule.ForModel(6, 32, 64));
        CollectionAssert.AreEqual(new[] { 0, 0, 0, 0, 0, 0 }, MergeSchedule.ForModel(6, 0, 64));
    }

    [TestMethod]
    public void ForModelClampsToHalfOfTheMergeableTokens()
    {
        // 6 layers, 3 of 4 patches: r = 0 wins, so the whole total lands on layer 0, which can merge only 2 of 4.
        CollectionAssert.AreEqual(new[] { 3, 0, 0, 0, 0, 0 }, MergeSchedule.ParseR(6, 0, -0.5, total: 3));
        CollectionAssert.AreEqual(new[] { 2, 0, 0, 0, 0, 0 }, MergeSchedule.ForModel(6, 3, 4));
        // 2 layers, 6 of 8 patches: r = 3 → [4, 2] fits the halves 4 then 2 exactly.
        CollectionAssert.AreEqual(new[] { 4, 2 }, MergeSchedule.ForModel(2, 6, 8));
        // 2 layers, 7 of 8: [5, 2] → layer 0 clamps to 4, then 2 of the remaining 4.
        CollectionAssert.AreEqual(new[] { 5, 2 }, MergeSchedule.ParseR(2, MergeSchedule.CheckParseR(2, 7, 8), -0.5, total: 7));
        CollectionAssert.AreEqual(new[] { 4, 2 }, MergeSchedule.ForModel(2, 7, 8));
    }

    [TestMethod]
    public void SquareKeepSkipsNonSquareCandidates()
    {
        // 12 layers, 98 of 196: sums by r are ..., 8 → 91 (keeps 105), 9 → 103 (93), 10 → 115 (81 = 9²), 11 → 127.
        // r = 8 and 9 improve the gap but keep a non-square count, so r = 10 (gap 17) is the first accepted.
        Assert.AreEqual(10, MergeSchedule.CheckParseR(12, 98, 196, -0.5, requireSquareKeep: true));
        // 6 layers, 32 of 64: r = 5 sums to 28 and keeps 36 = 6²; r = 6 (sum 34, keeps 30) is skipped.
        Assert.AreEqual(5, MergeSchedule.CheckParseR(6, 32, 64, -0.5, requireSquareKeep: true));
        Assert.AreEqual(6, MergeSchedule.CheckParseR(6, 32, 64, -0.5));
    }

    [TestMethod]
    public void MergeCountOutOfRangeNamesTheArgument()
    {
        var high = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => MergeSchedule.ForModel(6, 64, 64));
        Assert.AreEqual("mergeCount", high.ParamName);
        var low = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => MergeSchedule.ForModel(6, -1, 64));
        Assert.AreEqual("mergeCount", low.ParamName);
        Assert.AreEqual("layerCount", Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => MergeSchedule.ParseR(0, 1, 0)).ParamName);
        Assert.AreEqual("inflection", Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => MergeSchedule.ParseR(3, 1, 1.5)).ParamName);
    }
}
