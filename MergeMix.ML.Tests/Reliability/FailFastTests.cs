using System.Diagnostics;
using MergeMix.ML.Classification;
using MergeMix.ML.Mixing;
using MergeMix.ML.Transforms;
using MergeMix.ML.Vision;
using Microsoft.ML;
using static MergeMix.ML.Tests.Classification.TinyClassifier;

namespace MergeMix.ML.Tests.Reliability;

/// <summary>
/// Errors that need no training come before any training: from the constructor when the options alone are wrong,
/// from the schema when options and columns disagree, and before any cursor is opened on the data either way.
/// </summary>
[TestClass]
public sealed class FailFastTests
{
    private static (MLContext Ml, CursorCountingDataView Data) Data()
    {
        var ml = new MLContext(1);
        return (ml, new CursorCountingDataView(Shapes(64, 1).ToDataView(ml)));
    }

    // The first native call of a test process loads libtorch; keep that out of the timed part.
    private static void WarmUp() => MergeMix.ML.Runtime.TorchDevice.Resolve("cpu");

    private static T FailsFast<T>(CursorCountingDataView data, Action action) where T : Exception
    {
        WarmUp();
        var watch = Stopwatch.StartNew();
        var error = Assert.ThrowsExactly<T>(action);
        watch.Stop();
        Assert.AreEqual(0, data.Cursors, $"a cursor was opened before the error: {error.Message}");
        Assert.IsTrue(watch.Elapsed < TimeSpan.FromSeconds(0.5), $"the error took {watch.Elapsed.TotalSeconds:F2} s: {error.Message}");
        return error;
    }

    [TestMethod]
    public void TrainerOnCudaWithoutACudaBackendFailsBeforeReadingData()
    {
        var (ml, data) = Data();
        var options = Options(epochs: 5);
        options.Device = "cuda";
        var error = FailsFast<InvalidOperationException>(data, () => ml.MulticlassClassification.Trainers.VisionTransformer(options).Fit(data));
        StringAssert.Contains(error.Message, "Device = \"cuda\"");
    }

    [TestMethod]
    public void MixerOnCudaWithoutACudaBackendFailsBeforeTrainingItsAttentionModel()
    {
        var (ml, data) = Data();
        var options = new MixingEstimator.Options { Policy = MixingPolicy.MergeMix, Device = "cuda" };
        var error = FailsFast<InvalidOperationException>(data, () => ml.Transforms.Mix(options).Fit(data));
        StringAssert.Contains(error.Message, "Device = \"cuda\"");
    }

    [TestMethod]
    public void TrainerMergeCountNotBelowThePatchCountFailsFromTheSchema()
    {
        var (ml, data) = Data();
        var options = Options(epochs: 5);
        options.Model.MergeCount = 16; // 16×16 images in 4-pixel patches: 16 patches
        var error = FailsFast<ArgumentException>(data, () => ml.MulticlassClassification.Trainers.VisionTransformer(options).Fit(data));
        StringAssert.Contains(error.Message, "Model.MergeCount");
        StringAssert.Contains(error.Message, "16 patches");
    }

    [TestMethod]
    public void SoftLabelsWithOnlineMixingAreRejectedByTheConstructor()
    {
        var ml = new MLContext(1);
        var options = Options();
        options.SoftLabelColumnName = "SoftLabel";
        options.OnlineMixing = new MixupPolicy();
        var error = Assert.ThrowsExactly<ArgumentException>(() => ml.MulticlassClassification.Trainers.VisionTransformer(options));
        StringAssert.Contains(error.Message, "OnlineMixing");
    }

    [TestMethod]
    public void InfiniteAlphaIsRejectedByTheMixerConstructor()
    {
        var ml = new MLContext(1);
        var options = new MixingEstimator.Options { Policy = MixingPolicy.MergeMix, Alpha = double.PositiveInfinity };
        var error = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => ml.Transforms.Mix(options));
        StringAssert.Contains(error.Message, "Alpha");
    }

    [TestMethod]
    public void AlphaGivenToDeitIsRejectedByTheMixerConstructor()
    {
        var ml = new MLContext(1);
        var options = new MixingEstimator.Options { Policy = MixingPolicy.Deit, Alpha = 0.5 };
        var error = Assert.ThrowsExactly<ArgumentException>(() => ml.Transforms.Mix(options));
        StringAssert.Contains(error.Message, "'deit'");
    }

    [TestMethod]
    public void MixerFitWithAnAlreadyCancelledTokenStopsAtOnce()
    {
        var (ml, data) = Data();
        var options = new MixingEstimator.Options { Policy = MixingPolicy.MergeMix, CancellationToken = new CancellationToken(canceled: true) };
        FailsFast<OperationCanceledException>(data, () => ml.Transforms.Mix(options).Fit(data));
    }

    [TestMethod]
    public void CancellingTheMixerStopsItsAttentionTrainingBetweenSteps()
    {
        var (ml, data) = Data();
        using var cancel = new CancellationTokenSource();
        var epochs = new List<EpochReport>();
        var options = new MixingEstimator.Options
        {
            Policy = MixingPolicy.MergeMix,
            CancellationToken = cancel.Token,
            AttentionTraining = new AttentionModelOptions
            {
                Epochs = 4,
                BatchSize = 16,
                Model = new VisionTransformerOptions { PatchSize = 4, Width = 16, Depth = 2, Heads = 2 },
                Progress = new SyncProgress<EpochReport>(report => { epochs.Add(report); cancel.Cancel(); }),
            },
        };
        Assert.ThrowsExactly<OperationCanceledException>(() => ml.Transforms.Mix(options).Fit(data));
        Assert.AreEqual(1, epochs.Count, "epochs trained after the cancellation");
    }

    [TestMethod]
    public void TrainerFitWithAnAlreadyCancelledTokenStopsBeforeReadingData()
    {
        var (ml, data) = Data();
        var options = Options(epochs: 5);
        options.CancellationToken = new CancellationToken(canceled: true);
        FailsFast<OperationCanceledException>(data, () => ml.MulticlassClassification.Trainers.VisionTransformer(options).Fit(data));
    }
}
