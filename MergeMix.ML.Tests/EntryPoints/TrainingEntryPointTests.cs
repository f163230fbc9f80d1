using MergeMix.ML.Alignment;
using MergeMix.ML.Classification;
using MergeMix.ML.Transforms;
using MergeMix.ML.Vision;
using Microsoft.ML;
using Microsoft.ML.Data;

namespace MergeMix.ML.Tests.EntryPoints;

/// <summary>The mixer and the estimators read images through the same check as the transformers' Transform and engines.</summary>
[TestClass]
public sealed class TrainingEntryPointTests
{
    private sealed class Row
    {
        [VectorType(3, 8, 8)] public float[] Features { get; set; } = Array.Empty<float>();
        [KeyType(3)] public uint Label { get; set; }
        public string Prompt { get; set; } = "what is it";
        public string Answer { get; set; } = "a shape";
    }

    // LoadFromEnumerable does not check array lengths against the declared vector size: row 5 is short.
    private static IDataView Data(MLContext ml, int badRow, float[] bad) => ml.Data.LoadFromEnumerable(Enumerable.Range(0, 8).Select(i => new Row
    {
        Features = i == badRow ? bad : Enumerable.Range(0, 192).Select(j => (float)((i * 7 + j) % 255)).ToArray(),
        Label = (uint)(i % 3), // 0-based in the POCO; ML.NET stores key = value + 1
    }));

    [TestMethod]
    public void MixerTrainerAndPreferenceTuningRejectAShortOrNaNImageNamingColumnAndRow()
    {
        var ml = new MLContext(0);
        var nan = new float[192];
        nan[3] = float.NaN;
        foreach (var (bad, expected) in new[] { (new float[100], "Column 'Features', row 5: the image has 100 values, but the column holds 3×8×8 = 192"),
                     (nan, "Column 'Features', row 5: value 3 is NaN") })
        {
            var data = Data(ml, 5, bad);
            var mixer = ml.Transforms.Mix(new MixingEstimator.Options { Policy = MixingPolicy.Mixup, BatchSize = 4 }).Fit(data);
            StringAssert.Contains(Assert.ThrowsExactly<InvalidOperationException>(() => mixer.Transform(data)).Message, expected);
            var trainer = ml.MulticlassClassification.Trainers.VisionTransformer(new VisionTransformerTrainerOptions
            {
                Epochs = 1, BatchSize = 4, Model = new VisionTransformerOptions { PatchSize = 4, Width = 8, Depth = 1, Heads = 2 },
            });
            StringAssert.Contains(Assert.ThrowsExactly<InvalidOperationException>(() => trainer.Fit(data)).Message, expected);
            var tuning = ml.Alignment().PreferenceTuning(new PreferenceTuningEstimator.Options
            {
                Encoder = new VisionTransformerEncoderOptions { Vision = new VisionTransformerOptions { PatchSize = 4, Width = 8, Depth = 2, Heads = 2, ClassCount = 1 } },
                Model = new MultimodalLmOptions { ModelDim = 16, Layers = 1, Heads = 2, MaxTextLength = 12 },
                SftEpochs = 1,
                PreferenceEpochs = 0,
            });
            StringAssert.Contains(Assert.ThrowsExactly<InvalidOperationException>(() => tuning.Fit(data)).Message, expected);
        }
    }
}
