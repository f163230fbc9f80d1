using MergeMix.ML.Mixing;
using TorchSharp;
using static TorchSharp.torch;
using static MergeMix.ML.Tests.Mixing.MixTestData;

namespace MergeMix.ML.Tests.Mixing;

[TestClass]
public sealed class PolicyContractTests
{
    private static readonly string[] AllNames =
        { "none", "mixup", "cutmix", "resizemix", "fmix", "saliencymix", "deit", "transmix", "mergemix", "mergemix-random" };

    // Scores that depend on the images, so a TransMix pass over a different mixed batch sees different attention.
    private static readonly FakeAttention Attention = new(2, images => images.mean(new long[] { 1 }).reshape(images.shape[0], 4, 2, 4, 2).mean(new long[] { 2, 4 }).flatten(1));

    public static IEnumerable<object[]> Names => AllNames.Select(n => new object[] { n });

    private static MixResult Run(string name, Tensor images, Tensor labels, int classCount, ulong seed)
    {
        using var g = new torch.Generator(seed);
        return MixPolicies.Create(name).Mix(images, labels, classCount, g, Attention);
    }

    [TestMethod]
    public void FactoryKnowsEveryNameCaseInsensitively()
    {
        CollectionAssert.AreEqual(AllNames, MixPolicies.Names.ToArray());
        foreach (string name in AllNames)
        {
            Assert.AreEqual(name, MixPolicies.Create(name).Name);
            Assert.AreEqual(name, MixPolicies.Create(" " + name.ToUpperInvariant() + " ").Name);
        }
        Assert.IsInstanceOfType<MergeMixPolicy>(MixPolicies.Create("MergeMix"));
        Assert.IsTrue(MixPolicies.Create("mergemix").NeedsAttention && MixPolicies.Create("transmix").NeedsAttention);
        Assert.AreEqual(2, AllNames.Count(n => MixPolicies.Create(n).NeedsAttention));
        var unknown = Assert.ThrowsExactly<ArgumentException>(() => MixPolicies.Create("puzzlemix"));
        Assert.AreEqual("name", unknown.ParamName);
        StringAssert.Contains(unknown.Message, "mergemix-random");
        StringAssert.Contains(unknown.Message, "saliencymix");
    }

    [TestMethod]
    [DynamicData(nameof(Names))]
    public void SameSeedSameOutputDifferentSeedDifferentOutput(string name)
    {
        using var images = DistinctImages(4, 3, 8, 8);
        long[] labels = { 0, 1, 2, 0 };
        using var y = Labels(labels);
        using var a = Run(name, images, y, 3, 42);
        using var b = Run(name, images, y, 3, 42);
        AssertSame(a, b);
        AssertSoftLabels(a, labels, 3);
        CollectionAssert.AreEqual(new long[] { 4, 3, 8, 8 }, a.Mixed.shape);
        CollectionAssert.AreEqual(labels, Longs(a.Labels!));
        if (name == "none") return;
        bool differs = false;
        for (ulong seed = 43; seed < 46 && !differs; seed++)
        {
            using var c = Run(name, images, y, 3, seed);
            differs = Differ(a, c);
        }
        Assert.IsTrue(differs, $"{name}: other seeds must give other mixes");
        CollectionAssert.AreNotEqual(new long[] { 0, 1, 2, 3 }, Longs(a.Partner));
        foreach (var (p, i) in Longs(a.Partner).Select((p, i) => (p, i))) Assert.AreNotEqual((long)i, p, $"{name}: row {i} mixed with itself");
    }

    [TestMethod]
    public void NoneIsTheIdentityOnACopy()
    {
        var images = DistinctImages(3, 1, 4, 4);
        long[] labels = { 2, 0, 1 };
        using var y = Labels(labels);
        using var g = new torch.Generator(0);
        float[] before = Floats(images);
        var result = new NoMixPolicy().Mix(images, y, 3, g);
        CollectionAssert.AreEqual(before, Floats(result.Mixed));
        CollectionAssert.AreEqual(new long[] { 0, 1, 2 }, Longs(result.Partner));
        CollectionAssert.AreEqual(new[] { 1f, 1f, 1f }, Floats(result.Lambda));
        CollectionAssert.AreEqual(new float[] { 0, 0, 1, 1, 0, 0, 0, 1, 0 }, Floats(result.SoftLabels));
        Assert.IsNull(result.Mask);
        result.Dispose();
        CollectionAssert.AreEqual(before, Floats(images), "the input must survive disposing the result");
        images.Dispose();
    }

    [TestMethod]
    [DynamicData(nameof(Names))]
    public void BadBatchesNameTheArgument(string name)
    {
        var policy = MixPolicies.Create(name);
        using var g = new torch.Generator(0);
        using var good = DistinctImages(2, 1, 8, 8);
        using var y = Labels(0, 1);

        using var single = DistinctImages(1, 1, 8, 8);
        using var y1 = Labels(0);
        var e = Assert.ThrowsExactly<ArgumentException>(() => policy.Mix(single, y1, 2, g, Attention));
        Assert.AreEqual("images", e.ParamName);
        StringAssert.Contains(e.Message, "B ≥ 2");

        using var flat = torch.zeros(2, 8, 8);
        Assert.AreEqual("images", Assert.ThrowsExactly<ArgumentException>(() => policy.Mix(flat, y, 2, g, Attention)).ParamName);
        using var ints = torch.zeros(new long[] { 2, 1, 8, 8 }, ScalarType.Int32);
        Assert.AreEqual("images", Assert.ThrowsExactly<ArgumentException>(() => policy.Mix(ints, y, 2, g, Attention)).ParamName);
        using var nan = good.clone();
        nan[1, 0, 3, 5] = float.NaN;
        var nanError = Assert.ThrowsExactly<ArgumentException>(() => policy.Mix(nan, y, 2, g, Attention));
        Assert.AreEqual("images", nanError.ParamName);
        StringAssert.Contains(nanError.Message, "NaN");

        using var high = Labels(0, 2);
        var range = Assert.ThrowsExactly<ArgumentException>(() => policy.Mix(good, high, 2, g, Attention));
        Assert.AreEqual("labels", range.ParamName);
        StringAssert.Contains(range.Message, "[0, classCount = 2)");
        using var negative = Labels(-1, 0);
        Assert.AreEqual("labels", Assert.ThrowsExactly<ArgumentException>(() => policy.Mix(good, negative, 2, g, Attention)).ParamName);
        using var shortLabels = Labels(0);
        Assert.AreEqual("labels", Assert.ThrowsExactly<ArgumentException>(() => policy.Mix(good, shortLabels, 2, g, Attention)).ParamName);
        Assert.AreEqual("classCount", Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => policy.Mix(good, y, 0, g, Attention)).ParamName);
    }

    [TestMethod]
    public void NonPositiveAlphasNameTheOption()
    {
        void Expect(string option, Action set)
        {
            var e = Assert.ThrowsExactly<ArgumentOutOfRangeException>(set);
            Assert.AreEqual(option, e.ParamName);
        }
        Expect("Alpha", () => new MixupPolicy { Alpha = 0 });
        Expect("Alpha", () => new CutMixPolicy { Alpha = -1 });
        Expect("Alpha", () => new FMixPolicy { Alpha = double.NaN });
        Expect("Alpha", () => new SaliencyMixPolicy { Alpha = 0 });
        Expect("Alpha", () => new TransMixPolicy { Alpha = 0 });
        Expect("Alpha", () => new MergeMixPolicy { Alpha = 0 });
        Expect("Alpha", () => new MergeMixRandomPolicy { Alpha = -0.5 });
        Expect("MixupAlpha", () => new DeitMixPolicy { MixupAlpha = 0 });
        Expect("CutMixAlpha", () => new DeitMixPolicy { CutMixAlpha = 0 });
        Expect("MixupAlpha", () => new TransMixPolicy { MixupAlpha = 0 });
        Expect("MixupProbability", () => new TransMixPolicy { MixupProbability = 1.5 });
        Expect("SwitchProbability", () => new DeitMixPolicy { SwitchProbability = -0.1 });
        Expect("DecayPower", () => new FMixPolicy { DecayPower = 0 });
        Expect("BlurSigma", () => new SaliencyMixPolicy { BlurSigma = -1 });
        Expect("MaxScale", () => new ResizeMixPolicy { MaxScale = 1.2 });
        Expect("MinScale", () => new ResizeMixPolicy { MinScale = 0 });
    }

    [TestMethod]
    public void DefaultsFollowTheMethodNotes()
    {
        Assert.AreEqual(1.0, new MergeMixPolicy().Alpha);
        Assert.AreEqual(1.0, new MergeMixRandomPolicy().Alpha);
        Assert.AreEqual(4, new MergeMixRandomPolicy().PatchSize);
        Assert.AreEqual(0.8, new MixupPolicy().Alpha);
        Assert.AreEqual(2.0, new CutMixPolicy().Alpha);
        Assert.AreEqual(1.0, new FMixPolicy().Alpha);
        Assert.AreEqual(3.0, new FMixPolicy().DecayPower);
        Assert.AreEqual(0.2, new SaliencyMixPolicy().Alpha);
        Assert.AreEqual((0.1, 0.8), (new ResizeMixPolicy().MinScale, new ResizeMixPolicy().MaxScale));
        var trans = new TransMixPolicy();
        Assert.AreEqual((1.0, 0.8, 0.2), (trans.Alpha, trans.MixupAlpha, trans.MixupProbability));
        var deit = new DeitMixPolicy();
        Assert.AreEqual((0.8, 1.0, 0.5), (deit.MixupAlpha, deit.CutMixAlpha, deit.SwitchProbability));
    }
}
