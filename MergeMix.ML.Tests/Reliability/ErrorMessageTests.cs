using MergeMix.ML.Alignment;
using MergeMix.ML.Classification;
using MergeMix.ML.Data;
using MergeMix.ML.Tests.Classification;
using MergeMix.ML.Transforms;
using MergeMix.ML.Vision;
using Microsoft.ML;
using Microsoft.ML.Data;

namespace MergeMix.ML.Tests.Reliability;

/// <summary>Each message names the column, option, row or file it is about, once, with the user's numbering.</summary>
[TestClass]
public sealed class ErrorMessageTests
{
    private sealed class Row
    {
        [VectorType(3, 16, 16)] public float[] Features { get; set; } = Array.Empty<float>();
        public string Prompt { get; set; } = "";
        public string Answer { get; set; } = "";
        public string Scored { get; set; } = "";
    }

    private sealed class InterleavedRow
    {
        [VectorType(16, 16, 3)] public float[] Features { get; set; } = Array.Empty<float>();
        public string Prompt { get; set; } = "";
        public string Answer { get; set; } = "";
    }

    private static Row[] Rows(int count)
    {
        var (images, scenes) = SyntheticShapes.Generate(count, seed: 3, new SyntheticShapesOptions { Width = 16, Height = 16, MaxObjects = 1 });
        return Enumerable.Range(0, count).Select(i => new Row
        {
            Features = images.Image(i).ToArray(), Prompt = "describe the image", Answer = scenes[i].Caption, Scored = scenes[i].Caption,
        }).ToArray();
    }

    private static PreferenceTuningEstimator.Options TinySft() => new()
    {
        Encoder = new VisionTransformerEncoderOptions
        {
            Vision = new VisionTransformerOptions { PatchSize = 4, Width = 16, Depth = 2, Heads = 2, ClassCount = 1, DropPathRate = 0 },
            FeatureLayer = -1,
        },
        Model = new MultimodalLmOptions { ModelDim = 16, Layers = 1, Heads = 2, MaxTextLength = 20 },
        Trainer = new PreferenceTrainerOptions { BatchSize = 6 },
        SftEpochs = 1,
        PreferenceEpochs = 0,
        MaxNewTokens = 2,
        GenerationBatchSize = 4,
    };

    private static int Occurrences(string text, string part) => (text.Length - text.Replace(part, "").Length) / part.Length;

    [TestMethod]
    public void ScoringErrorsNameTheRowOfTheInputAndTheParameterOnce()
    {
        var ml = new MLContext(0);
        var rows = Rows(12);
        var options = TinySft();
        options.ScoreResponseColumnName = "Scored";
        using var model = ml.Alignment().PreferenceTuning(options).Fit(ml.Data.LoadFromEnumerable(rows));

        // Transform is lazy: the rows are scored, and checked, as they are read.
        float[] Score(Row[] input) => model.Transform(ml.Data.LoadFromEnumerable(input)).GetColumn<float>("ResponseLogProb").ToArray();
        Assert.AreEqual(12, Score(rows).Length);
        rows[9].Scored = "";
        var empty = Assert.ThrowsExactly<ArgumentException>(() => Score(rows));
        StringAssert.Contains(empty.Message, "row 9");
        StringAssert.Contains(empty.Message, "'Scored'");
        Assert.AreEqual(1, Occurrences(empty.Message, "(Parameter"), empty.Message);

        rows[9].Scored = rows[8].Scored;
        rows[10].Prompt = "describe \u2603";
        var unknown = Assert.ThrowsExactly<ArgumentException>(() => Score(rows));
        StringAssert.Contains(unknown.Message, "row 10");
        StringAssert.Contains(unknown.Message, "'Prompt'");
        Assert.AreEqual(1, Occurrences(unknown.Message, "(Parameter"), unknown.Message);
    }

    [TestMethod]
    public void InterleavedPixelsAreReportedAsSuchNotAsOddImageSizes()
    {
        var ml = new MLContext(0);
        var rows = Rows(4).Select(r => new InterleavedRow { Features = r.Features, Prompt = r.Prompt, Answer = r.Answer });
        var error = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => ml.Alignment().PreferenceTuning(TinySft()).Fit(ml.Data.LoadFromEnumerable(rows)));
        StringAssert.Contains(error.Message, "'Features'");
        StringAssert.Contains(error.Message, "16×16×3");
        StringAssert.Contains(error.Message, "interleaved");
        StringAssert.Contains(error.Message, "interleavePixelColors: false");
        Assert.IsFalse(error.Message.Contains("16×3 images"), error.Message);
    }

    [TestMethod]
    public void LabelSmoothingIsRejectedByObjectivesThatWouldIgnoreIt()
    {
        foreach (var objective in new[] { PreferenceObjective.MixedSimPo, PreferenceObjective.Ipo, PreferenceObjective.Hinge })
        {
            var options = new PreferenceTrainerOptions { Objective = objective, LabelSmoothing = 0.1 };
            var error = Assert.ThrowsExactly<ArgumentOutOfRangeException>(options.Validate, objective.ToString());
            Assert.AreEqual(nameof(PreferenceTrainerOptions.LabelSmoothing), error.ParamName);
            StringAssert.Contains(error.Message, objective.ToString());
        }
        new PreferenceTrainerOptions { Objective = PreferenceObjective.Dpo, LabelSmoothing = 0.1 }.Validate();
        new PreferenceTrainerOptions { Objective = PreferenceObjective.SimPo, LabelSmoothing = 0.1 }.Validate(); // SimPO's smoothed form
        var estimator = new PreferenceTuningEstimator.Options { Trainer = new PreferenceTrainerOptions { Objective = PreferenceObjective.MixedSimPo, LabelSmoothing = 0.1 } };
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => new MLContext(0).Alignment().PreferenceTuning(estimator));
    }

    [TestMethod]
    public void AnUnreadableImageFileIsNamedByItsPath()
    {
        var root = Path.Combine(Path.GetTempPath(), "mergemix-unreadable-" + Guid.NewGuid().ToString("N"));
        try
        {
            var black = new byte[8 * 8 * 4];
            for (int p = 3; p < black.Length; p += 4) black[p] = 255;
            foreach (var name in new[] { "cat", "dog" })
            {
                Directory.CreateDirectory(Path.Combine(root, name));
                for (int i = 0; i < 2; i++)
                {
                    using var image = MLImage.CreateFromPixels(8, 8, MLPixelFormat.Rgba32, black);
                    image.Save(Path.Combine(root, name, $"{i}.png"));
                }
            }
            string broken = Path.Combine(root, "dog", "2.png");
            File.WriteAllBytes(broken, new byte[] { 1, 2, 3, 4, 5, 6, 7, 8 });

            var ml = new MLContext(0);
            var lazy = Assert.ThrowsExactly<InvalidDataException>(() => ImageFolderLoader.Load(ml, root, 8, 8).GetColumn<float[]>("Features").ToArray());
            StringAssert.Contains(lazy.Message, broken);
            var eager = Assert.ThrowsExactly<InvalidDataException>(() => ImageFolderLoader.LoadSet(ml, root, 8, 8));
            StringAssert.Contains(eager.Message, broken);
        }
        finally
        {
            if (Directory.Exists(root)) Directory.Delete(root, recursive: true);
        }
    }

    [TestMethod]
    public void OneChannelImagesGetAChannelMeanMessageThatSaysWhatToGive()
    {
        var options = new VisionTransformerEncoderOptions();
        options.Vision.Channels = 1; // as the estimator sets it from a 1-channel image column
        var error = Assert.ThrowsExactly<ArgumentException>(options.Validate);
        Assert.AreEqual(nameof(VisionTransformerEncoderOptions.ChannelMean), error.ParamName);
        Assert.IsFalse(error.Message.Contains("1 or 1"), error.Message);
        StringAssert.Contains(error.Message, "holds 3 values");
        StringAssert.Contains(error.Message, "1 channel");

        var three = new VisionTransformerEncoderOptions { ChannelStd = new[] { 1f, 2f } };
        StringAssert.Contains(Assert.ThrowsExactly<ArgumentException>(three.Validate).Message, "1 value (used for every channel) or 3 (one per channel");
    }

    [TestMethod]
    public void AMixerImageSizeThePatchDoesNotDivideNamesTheMixersOwnOption()
    {
        var ml = new MLContext(0);
        var set = TinyClassifier.Shapes(8, 1); // 16×16
        var options = new MixingEstimator.Options
        {
            Policy = MixingPolicy.MergeMix,
            AttentionTraining = new AttentionModelOptions { Model = new VisionTransformerOptions { PatchSize = 5, Width = 16, Depth = 2, Heads = 2 } },
        };
        var error = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => ml.Transforms.Mix(options).Fit(set.ToDataView(ml)));
        StringAssert.Contains(error.Message, "AttentionTraining.Model.PatchSize = 5");
        StringAssert.Contains(error.Message, "'Features'");
        Assert.AreEqual(nameof(MixingEstimator.Options.InputColumnName), error.ParamName);
    }

    private static string SavedClassifier(string folder)
    {
        var ml = new MLContext(0);
        using var classifier = ml.MulticlassClassification.Trainers.VisionTransformer(TinyClassifier.Options())
            .Fit(TinyClassifier.Shapes(16, 1).ToDataView(ml));
        string path = Path.Combine(folder, "classifier.zip");
        classifier.Save(path);
        return path;
    }

    private static void InTempFolder(Action<string> test)
    {
        string folder = Path.Combine(Path.GetTempPath(), "mergemix-files-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(folder);
        try { test(folder); }
        finally { Directory.Delete(folder, recursive: true); }
    }

    [TestMethod]
    public void ATruncatedOrForeignModelFileIsNamedInTheError()
    {
        InTempFolder(folder =>
        {
            string good = SavedClassifier(folder);
            string truncated = Path.Combine(folder, "truncated.zip");
            var bytes = File.ReadAllBytes(good);
            File.WriteAllBytes(truncated, bytes[..(bytes.Length / 2)]);
            string text = Path.Combine(folder, "notes.zip");
            File.WriteAllText(text, "not a model");

            foreach (var path in new[] { truncated, text })
            {
                var error = Assert.ThrowsExactly<InvalidDataException>(() => VisionTransformerClassifier.Load(path).Dispose());
                StringAssert.Contains(error.Message, path);
                StringAssert.Contains(error.Message, "zip");
            }
            var lm = Assert.ThrowsExactly<InvalidDataException>(() => MultimodalLm.Load(text, new VisionTransformerEncoder(new VisionTransformerEncoderOptions())));
            StringAssert.Contains(lm.Message, text);
            var transformer = Assert.ThrowsExactly<InvalidDataException>(() => PreferenceTuningTransformer.Load(truncated));
            StringAssert.Contains(transformer.Message, truncated);
        });
    }

    [TestMethod]
    public void WeightsThatDoNotFitNameTheTensorAndBothShapes()
    {
        InTempFolder(folder =>
        {
            string good = SavedClassifier(folder);
            // Same weights, but a header that claims a wider model.
            string wider = Path.Combine(folder, "wider.zip");
            using (var source = System.IO.Compression.ZipFile.OpenRead(good))
            using (var target = System.IO.Compression.ZipFile.Open(wider, System.IO.Compression.ZipArchiveMode.Create))
                foreach (var entry in source.Entries)
                {
                    using var input = new StreamReader(entry.Open()).BaseStream;
                    using var copy = new MemoryStream();
                    input.CopyTo(copy);
                    var content = copy.ToArray();
                    if (entry.Name == "classifier.json")
                    {
                        var json = System.Text.Json.Nodes.JsonNode.Parse(System.Text.Encoding.UTF8.GetString(content).TrimStart('\uFEFF'))!;
                        json["Model"]!["Width"] = 32;
                        content = System.Text.Encoding.UTF8.GetBytes(json.ToJsonString());
                    }
                    using var output = target.CreateEntry(entry.FullName).Open();
                    output.Write(content);
                }
            var error = Assert.ThrowsExactly<InvalidDataException>(() => VisionTransformerClassifier.Load(wider).Dispose());
            StringAssert.Contains(error.Message, wider);
            StringAssert.Matches(error.Message, new System.Text.RegularExpressions.Regex(@"'[\w.]+' is \[[0-9, ]*16[0-9, ]*\] in the file but \[[0-9, ]*32[0-9, ]*\] in the model"));
        });
    }
}
