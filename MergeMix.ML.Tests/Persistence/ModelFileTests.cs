using System.Diagnostics;
using System.Globalization;
using System.Reflection;
using MergeMix.ML.Classification;
using MergeMix.ML.Data;
using MergeMix.ML.Persistence;
using MergeMix.ML.Transforms;
using MergeMix.ML.Vision;
using Microsoft.ML;
using Microsoft.ML.Data;
using static MergeMix.ML.Tests.Persistence.OnnxExportTests;

namespace MergeMix.ML.Tests.Persistence;

/// <summary><c>mlContext.Model.Save</c> / <c>Load</c> of chains holding the mixer and the ViT classifier.</summary>
[TestClass]
public sealed class ModelFileTests
{
    private static string TempPath(string name) => Path.Combine(Path.GetTempPath(), $"mergemix-{name}-{Guid.NewGuid():N}.zip");

    /// <summary>Mixer (training only) → classifier, as a fitted chain.</summary>
    private static TransformerChain<ITransformer> MixerAndClassifier(MLContext ml, IDataView data, VisionTransformerClassifier classifier) =>
        new(new ITransformer[] { ml.Transforms.Mixup(seed: 1).Fit(data), classifier }, new[] { TransformerScope.Training, TransformerScope.Everything });

    [TestMethod]
    [DataRow(false)]
    [DataRow(true)]
    public void LoadedChainPredictsLikeTorchSharp(bool merge)
    {
        var ml = new MLContext(1);
        var test = RandomImages(40, 21);
        var data = test.ToDataView(ml);
        using var classifier = RandomClassifier(merge);
        var chain = MixerAndClassifier(ml, data, classifier);
        var expected = chain.Transform(data);
        var path = TempPath("onnx-chain");
        try
        {
            ml.Model.Save(chain, data.Schema, path);
            var fresh = new MLContext(2);
            var loaded = fresh.Model.Load(path, out var inputSchema);
            Assert.IsNotNull(inputSchema.GetColumnOrNull("Features"));
            var actual = loaded.Transform(test.ToDataView(fresh));

            var score = actual.Schema["Score"];
            Assert.AreEqual(new VectorDataViewType(NumberDataViewType.Single, ClassNames.Length), score.Type);
            var slotNames = default(VBuffer<ReadOnlyMemory<char>>);
            score.GetSlotNames(ref slotNames);
            CollectionAssert.AreEqual(ClassNames, slotNames.DenseValues().Select(s => s.ToString()).ToArray());
            var predicted = actual.Schema["PredictedLabel"];
            Assert.AreEqual(new KeyDataViewType(typeof(uint), ClassNames.Length), predicted.Type);
            CollectionAssert.AreEqual(ClassNames, ImageColumns.ClassNamesOf(predicted).ToArray());
            Assert.IsFalse(actual.Schema.Any(c => c.Name.StartsWith("MergeMix.", StringComparison.Ordinal)), "intermediate columns left in the schema");

            var before = expected.GetColumn<float[]>("Score").ToArray();
            var after = actual.GetColumn<float[]>("Score").ToArray();
            double worst = before.Zip(after, (a, b) => a.Zip(b, (x, y) => Math.Abs(x - y)).Max()).Max();
            Assert.IsLessThan(1e-4, worst, $"largest |ONNX Runtime − TorchSharp| probability difference {worst}");
            CollectionAssert.AreEqual(expected.GetColumn<uint>("PredictedLabel").ToArray(), actual.GetColumn<uint>("PredictedLabel").ToArray());
            Assert.IsGreaterThan(1, actual.GetColumn<uint>("PredictedLabel").Distinct().Count(), "every image got the same class");

            var metricsBefore = ml.MulticlassClassification.Evaluate(expected);
            var metricsAfter = fresh.MulticlassClassification.Evaluate(actual);
            Assert.AreEqual(metricsBefore.MicroAccuracy, metricsAfter.MicroAccuracy, 1e-12);
            Assert.AreEqual(metricsBefore.LogLoss, metricsAfter.LogLoss, 1e-4);

            // A prediction engine over the loaded chain, with the key mapped back to class names.
            var withClass = new TransformerChain<ITransformer>(loaded, fresh.Transforms.Conversion.MapKeyToValue("PredictedClass", "PredictedLabel").Fit(actual));
            var engine = fresh.Model.CreatePredictionEngine<OneImage, ClassPrediction>(withClass);
            for (int row = 0; row < 5; row++)
            {
                var one = engine.Predict(new OneImage { Features = test.Image(row).ToArray() });
                Assert.AreEqual(ClassNames[ArgMax(before[row])], one.PredictedClass, $"row {row}");
                Assert.AreEqual(before[row][0], one.Score[0], 1e-4);
            }

            // The loaded chain is made of ML.NET's own transformers only, so it saves and loads again as it is.
            var again = new MemoryStream();
            fresh.Model.Save(loaded, inputSchema, again);
            again.Position = 0;
            using var reloaded = (TransformerChain<ITransformer>)fresh.Model.Load(again, out _);
            CollectionAssert.AreEqual(after.SelectMany(a => a).ToArray(),
                reloaded.Transform(test.ToDataView(fresh)).GetColumn<float[]>("Score").SelectMany(a => a).ToArray());
            ((IDisposable)loaded).Dispose();
        }
        finally
        {
            File.Delete(path);
        }
    }

    [TestMethod]
    public void QuickStartChainLoadsInAProcessWithoutTorchSharpOrThisLibrary()
    {
        var ml = new MLContext(0);
        var train = RandomImages(48, 1);
        using var attention = RandomClassifier(merge: true);
        var pipeline = new EstimatorChain<ITransformer>()
            .Append(ml.Transforms.MergeMix(attentionSource: attention.Model.AttentionSource()), TransformerScope.Training)
            .Append(ml.MulticlassClassification.Trainers.VisionTransformer(new VisionTransformerTrainerOptions
            {
                SoftLabelColumnName = "SoftLabel", Epochs = 1, BatchSize = 16, Seed = 7,
                Model = new VisionTransformerOptions { PatchSize = 4, Width = 16, Depth = 2, Heads = 2 },
            }));
        var model = pipeline.Fit(train.ToDataView(ml));
        var test = RandomImages(12, 9);
        var expected = model.Transform(test.ToDataView(ml));
        var expectedScores = expected.GetColumn<float[]>("Score").ToArray();

        var folder = Path.Combine(Path.GetTempPath(), $"mergemix-loader-{Guid.NewGuid():N}");
        Directory.CreateDirectory(folder);
        try
        {
            string modelPath = Path.Combine(folder, "model.zip"), imagesPath = Path.Combine(folder, "images.bin"), outputPath = Path.Combine(folder, "predictions.tsv");
            ml.Model.Save(model, train.ToDataView(ml).Schema, modelPath);
            using (var writer = new BinaryWriter(File.Create(imagesPath)))
            {
                writer.Write(test.Count);
                foreach (var value in test.Pixels) writer.Write(value);
            }

            var (exitCode, output) = RunLoader(modelPath, imagesPath, outputPath);
            Assert.AreEqual(0, exitCode, output);
            var lines = File.ReadAllLines(outputPath);
            Assert.HasCount(test.Count, lines);
            var classNames = ((VisionTransformerClassifier)model.LastTransformer).ClassNames;
            double worst = 0;
            for (int row = 0; row < lines.Length; row++)
            {
                var fields = lines[row].Split('\t');
                string expectedClass = classNames[ArgMax(expectedScores[row])];
                Assert.AreEqual(expectedClass, fields[0], $"row {row}, Transform");
                Assert.AreEqual(expectedClass, fields[1], $"row {row}, PredictionEngine");
                var scores = fields[2].Split(',').Select(s => float.Parse(s, CultureInfo.InvariantCulture)).ToArray();
                worst = Math.Max(worst, scores.Zip(expectedScores[row], (a, b) => Math.Abs(a - b)).Max());
            }
            Assert.IsLessThan(1e-4, worst, $"largest |ONNX Runtime − TorchSharp| probability difference {worst}");
        }
        finally
        {
            Directory.Delete(folder, recursive: true);
        }
    }

    [TestMethod]
    public void SaveAtomicallyKeepsTheOldFileWhenAComponentCannotBeSaved()
    {
        var ml = new MLContext(1);
        var data = RandomImages(8, 3).ToDataView(ml);
        var good = ml.Transforms.CopyColumns("Copy", "Features").Fit(data);
        var path = TempPath("atomic");
        try
        {
            ml.Model.SaveAtomically(good, data.Schema, path);
            var original = File.ReadAllBytes(path);
            var broken = new TransformerChain<ITransformer>(good, new UnsaveableTransformer());

            var error = Assert.ThrowsExactly<NotSupportedException>(() => ml.Model.SaveAtomically(broken, data.Schema, path));
            Assert.AreEqual(UnsaveableTransformer.Message, error.Message);
            CollectionAssert.AreEqual(original, File.ReadAllBytes(path), "the previous model file was modified");
            Assert.IsNotNull(ml.Model.Load(path, out _).GetOutputSchema(data.Schema).GetColumnOrNull("Copy"));
            Assert.HasCount(1, Directory.GetFiles(Path.GetDirectoryName(path)!, $"*{Path.GetFileName(path)}*"), "a temporary file was left behind");

            // What the helper protects against: ML.NET's own path overload truncates the file first.
            Assert.ThrowsExactly<NotSupportedException>(() => ml.Model.Save(broken, data.Schema, path));
            CollectionAssert.AreNotEqual(original, File.ReadAllBytes(path));
        }
        finally
        {
            File.Delete(path);
        }
    }

    [TestMethod]
    public void SaveAtomicallyNamesAMissingFolder()
    {
        var ml = new MLContext(1);
        var data = RandomImages(2, 3).ToDataView(ml);
        var model = ml.Transforms.CopyColumns("Copy", "Features").Fit(data);
        var path = Path.Combine(Path.GetTempPath(), $"mergemix-missing-{Guid.NewGuid():N}", "model.zip");
        var error = Assert.ThrowsExactly<DirectoryNotFoundException>(() => ml.Model.SaveAtomically(model, data.Schema, path));
        StringAssert.Contains(error.Message, Path.GetDirectoryName(path)!);
    }

    [TestMethod]
    public void DuplicateClassNamesAreRejectedWhenSaving()
    {
        var ml = new MLContext(1);
        using var random = RandomClassifier(merge: false);
        var names = ClassNames.ToArray();
        names[3] = names[1];
        var classifier = new VisionTransformerClassifier(random.Model, names, "Features", "Score", "PredictedLabel", Array.Empty<EpochReport>());
        var data = RandomImages(2, 3).ToDataView(ml);
        var error = Assert.ThrowsExactly<InvalidOperationException>(() => ml.Model.Save(classifier, data.Schema, new MemoryStream()));
        StringAssert.Contains(error.Message, $"'{names[1]}'");
    }

    private static (int ExitCode, string Output) RunLoader(params string[] arguments)
    {
        string loader = typeof(ModelFileTests).Assembly.GetCustomAttributes<AssemblyMetadataAttribute>().Single(a => a.Key == "ModelLoaderPath").Value!;
        Assert.IsTrue(File.Exists(loader), $"test helper not built: {loader}");
        var start = new ProcessStartInfo(Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") ?? "dotnet")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        start.ArgumentList.Add(loader);
        foreach (var a in arguments) start.ArgumentList.Add(a);
        using var process = Process.Start(start)!;
        var stderr = process.StandardError.ReadToEndAsync();
        string stdout = process.StandardOutput.ReadToEnd();
        if (!process.WaitForExit(120_000))
        {
            process.Kill(entireProcessTree: true);
            Assert.Fail("the loader did not finish within 2 minutes");
        }
        return (process.ExitCode, stdout + stderr.Result);
    }

    private sealed class UnsaveableTransformer : ITransformer
    {
        public const string Message = "this transformer cannot be saved";

        public bool IsRowToRowMapper => false;

        public DataViewSchema GetOutputSchema(DataViewSchema inputSchema) => inputSchema;

        public IRowToRowMapper GetRowToRowMapper(DataViewSchema inputSchema) => throw new NotSupportedException();

        public IDataView Transform(IDataView input) => input;

        void ICanSaveModel.Save(ModelSaveContext ctx) => throw new NotSupportedException(Message);
    }

    private sealed class OneImage
    {
        [VectorType(3, Side, Side)] public float[] Features { get; set; } = Array.Empty<float>();
    }

    private sealed class ClassPrediction
    {
        public float[] Score { get; set; } = Array.Empty<float>();

        public string PredictedClass { get; set; } = "";
    }
}
