using MergeMix.ML.Classification;
using MergeMix.ML.Transforms;
using MergeMix.ML.Vision;
using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.Runtime;

namespace MergeMix.ML.Tests.Transforms;

/// <summary>What reaches the stage after a mixer: nested chains that drop it, hard-label trainers, unread soft labels.</summary>
[TestClass]
public sealed class MixerConsumptionTests
{
    private static (MLContext Ml, List<string> Warnings) Context()
    {
        var ml = new MLContext(seed: 0);
        var warnings = new List<string>();
        ml.Log += (_, e) => { if (e.Kind == ChannelMessageKind.Warning) lock (warnings) warnings.Add(e.RawMessage); };
        return (ml, warnings);
    }

    private static MixingEstimator.Options Mixup(bool majority = false) =>
        new() { Policy = MixingPolicy.Mixup, BatchSize = 8, Seed = 3, WriteMajorityLabel = majority };

    private static VisionTransformerTrainerOptions SoftTrainer() => new()
    {
        SoftLabelColumnName = "SoftLabel",
        Epochs = 1,
        BatchSize = 8,
        Model = new VisionTransformerOptions { PatchSize = 4, Width = 16, Depth = 1, Heads = 2 },
    };

    [TestMethod]
    public void AStepByStepChainThatDropsTheMixerSaysWhatHappenedAndHowToBuildIt()
    {
        var (ml, _) = Context();
        var data = MixingPipelineTests.Rows(24).ToDataView(ml);
        IEstimator<ITransformer> pipeline = ml.Transforms.CopyColumns("Copy", "Features");
        pipeline = pipeline.Append(ml.Transforms.Mix(Mixup()), TransformerScope.Training);
        pipeline = pipeline.Append(ml.MulticlassClassification.Trainers.VisionTransformer(SoftTrainer()));
        var e = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => pipeline.Fit(data));
        StringAssert.Contains(e.Message, "a mixer (mixup) transformed this data");
        StringAssert.Contains(e.Message, "nested");
        StringAssert.Contains(e.Message, "TransformerScope.Training");
        StringAssert.Contains(e.Message, ".Append(mixer, TransformerScope.Training).Append(trainer)");

        // Built as one chain, the same steps train.
        var flat = ml.Transforms.CopyColumns("Copy", "Features")
            .Append(ml.Transforms.Mix(Mixup()), TransformerScope.Training)
            .Append(ml.MulticlassClassification.Trainers.VisionTransformer(SoftTrainer()));
        using var classifier = flat.Fit(data).LastTransformer;
    }

    [TestMethod]
    public void WriteMajorityLabelGivesEachMixedRowItsDominantClass()
    {
        var (ml, _) = Context();
        var set = MixingPipelineTests.Rows(40);
        var data = set.ToDataView(ml);
        var plain = ml.Transforms.Mix(Mixup()).Fit(data).Transform(data);
        CollectionAssert.AreEqual(set.Labels.Select(l => (uint)l + 1).ToArray(), plain.GetColumn<uint>("Label").ToArray(), "labels are kept by default");

        var majority = ml.Transforms.Mix(Mixup(majority: true)).Fit(data).Transform(data);
        var labels = majority.GetColumn<uint>("Label").ToArray();
        var soft = majority.GetColumn<float[]>("SoftLabel").ToArray();
        var lambda = majority.GetColumn<float>("MixRatio").ToArray();
        for (int i = 0; i < set.Count; i++)
            Assert.AreEqual((uint)Array.IndexOf(soft[i], soft[i].Max()) + 1, labels[i], $"row {i}");
        int flipped = Enumerable.Range(0, set.Count).Count(i => labels[i] != set.Labels[i] + 1);
        Assert.IsTrue(flipped > 0 && flipped == Enumerable.Range(0, set.Count).Count(i => soft[i][set.Labels[i]] < 0.5f), $"{flipped} rows flipped");
        Assert.IsTrue(lambda.Any(l => l < 0.5f));
        CollectionAssert.AreEqual(new[] { "class0", "class1", "class2" }, MergeMix.ML.Data.ImageColumns.ClassNamesOf(majority.Schema["Label"]).ToArray());
    }

    [TestMethod]
    public void AHardLabelTrainerAfterTheMixerIsWarnedUnlessTheMajorityLabelIsWritten()
    {
        var (ml, warnings) = Context();
        var data = MixingPipelineTests.Rows(24).ToDataView(ml);
        var lbfgs = ml.MulticlassClassification.Trainers.LbfgsMaximumEntropy(new Microsoft.ML.Trainers.LbfgsMaximumEntropyMulticlassTrainer.Options { MaximumNumberOfIterations = 5 });
        ml.Transforms.Mix(Mixup()).Append(lbfgs).Fit(data);
        var warning = warnings.Single(w => w.Contains("SoftLabel"));
        StringAssert.Contains(warning, "without its soft labels");
        StringAssert.Contains(warning, "WriteMajorityLabel");

        warnings.Clear();
        ml.Transforms.Mix(Mixup(majority: true)).Append(lbfgs).Fit(data);
        Assert.AreEqual(0, warnings.Count, string.Join("\n", warnings));

        using var vit = ml.Transforms.Mix(Mixup()).Append(ml.MulticlassClassification.Trainers.VisionTransformer(SoftTrainer())).Fit(data).LastTransformer;
        Assert.AreEqual(0, warnings.Count, string.Join("\n", warnings));
    }
}
