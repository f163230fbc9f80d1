using MergeMix.ML.Augmentation;
using MergeMix.ML.Classification;
using MergeMix.ML.Data;
using MergeMix.ML.Tests.Classification;
using TorchSharp;
using static TorchSharp.torch;

namespace MergeMix.ML.Tests.Augmentation;

[TestClass]
public sealed class RandAugmentationTests
{
    private static Tensor Batch(int count, int seed, int channels = 3)
    {
        var set = TinyClassifier.Shapes(count, seed);
        var x = tensor(set.Pixels, new long[] { set.Count, set.Channels, set.Height, set.Width });
        return channels == 3 ? x : x.mean(new long[] { 1 }, keepdim: true).round();
    }

    private static Tensor Augment(Tensor images, ulong seed, RandAugmentOptions? options = null)
    {
        using var generator = new Generator(seed);
        return new RandAugmentation(options ?? new RandAugmentOptions(), generator).Apply(images);
    }

    [TestMethod]
    public void SameSeedGivesTheSameBatchAndAnotherSeedAnother()
    {
        using var images = Batch(32, 1);
        using var first = Augment(images, 5);
        using var again = Augment(images, 5);
        using var other = Augment(images, 6);
        Assert.IsTrue(first.eq(again).all().item<bool>(), "same seed, same output");
        Assert.IsFalse(first.eq(other).all().item<bool>(), "another seed, another output");
        CollectionAssert.AreEqual(images.shape, first.shape);
        Assert.AreEqual(ScalarType.Float32, first.dtype);
        Assert.IsTrue(first.ge(0).all().item<bool>() && first.le(255).all().item<bool>(), "values stay 8-bit");
        Assert.IsTrue(first.eq(first.round()).all().item<bool>(), "whole-number values");
    }

    [TestMethod]
    public void EachImageGetsItsOwnOperations()
    {
        // 24 copies of one image: a single draw per batch would give 24 equal outputs.
        using var one = Batch(1, 3);
        using var copies = one.expand(24, -1, -1, -1).contiguous();
        using var augmented = Augment(copies, 11);
        int distinct = Enumerable.Range(0, 24)
            .Count(i => !Enumerable.Range(0, i).Any(j => augmented[i].eq(augmented[j]).all().item<bool>()));
        Assert.IsTrue(distinct >= 12, $"only {distinct} distinct outputs of 24");
        int changed = Enumerable.Range(0, 24).Count(i => !augmented[i].eq(one[0]).all().item<bool>());
        Assert.IsTrue(changed >= 12, $"only {changed} of 24 images changed");
    }

    [TestMethod]
    public void GreyImagesStayGreyAndOneChannel()
    {
        using var grey = Batch(16, 2, channels: 1);
        using var augmented = Augment(grey, 3, new RandAugmentOptions { Operations = 3, Magnitude = 9 });
        CollectionAssert.AreEqual(grey.shape, augmented.shape);
        Assert.IsFalse(augmented.eq(grey).all().item<bool>());
    }

    [TestMethod]
    public void OptionsAndPixelRangeAreCheckedWithTheOptionName()
    {
        using var generator = new Generator(1);
        var tooStrong = new RandAugmentOptions { Magnitude = 11 };
        var e = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => new RandAugmentation(tooStrong, generator));
        StringAssert.Contains(e.Message, "Magnitude must be in [0, MagnitudeBins − 1] = [0, 10]");
        var trainer = TinyClassifier.Options();
        trainer.RandAugment = new RandAugmentOptions { Operations = 0 };
        StringAssert.Contains(Assert.ThrowsExactly<ArgumentOutOfRangeException>(
            () => ClassifierTraining.Train(TinyClassifier.Shapes(8, 1), null, null, trainer)).Message, "RandAugment.Operations");

        var set = TinyClassifier.Shapes(8, 1);
        var scaled = new LabeledImageSet(set.Pixels.Select(v => v / 255f - 0.5f).ToArray(), set.Labels.ToArray(), set.ClassNames, set.Channels, set.Height, set.Width);
        trainer.RandAugment = new RandAugmentOptions();
        var range = Assert.ThrowsExactly<ArgumentException>(() => ClassifierTraining.Train(scaled, null, null, trainer));
        Assert.AreEqual("RandAugment", range.ParamName);
        StringAssert.Contains(range.Message, "0..255");
        using var flat = torch.zeros(3, 8, 8);
        Assert.AreEqual("images", Assert.ThrowsExactly<ArgumentException>(() => new RandAugmentation(new RandAugmentOptions(), generator).Apply(flat)).ParamName);
    }

    [TestMethod]
    public void TrainingWithRandAugmentIsReproducibleAndDiffersFromTrainingWithout()
    {
        var set = TinyClassifier.Shapes(48, 1);
        var options = TinyClassifier.Options();
        options.RandAugment = new RandAugmentOptions();
        var (first, _) = ClassifierTraining.Train(set, null, null, options);
        var (again, _) = ClassifierTraining.Train(set, null, null, options);
        options.RandAugment = null;
        var (plain, _) = ClassifierTraining.Train(set, null, null, options);
        using (first)
        using (again)
        using (plain)
        {
            TinyClassifier.AssertIdentical(first, again, "same seed with RandAugment");
            TinyClassifier.AssertDifferent(first, plain, "RandAugment must change what the model sees");
        }
    }
}
