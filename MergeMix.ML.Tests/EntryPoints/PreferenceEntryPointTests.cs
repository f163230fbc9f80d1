using MergeMix.ML.Alignment;
using MergeMix.ML.Data;
using MergeMix.ML.Tests.Alignment;
using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.Transforms.Image;

namespace MergeMix.ML.Tests.EntryPoints;

/// <summary>Transform and the prediction engine of the preference-tuned LM: one validation path, lazy per-batch generation.</summary>
[TestClass]
public sealed class PreferenceEntryPointTests
{
    private static PreferenceTuningTransformer? _model;
    private static Row[] _rows = Array.Empty<Row>();

    public sealed class Row
    {
        [VectorType(3, 16, 16)] public float[] Features { get; set; } = Array.Empty<float>();
        public string Prompt { get; set; } = "";
        public string Answer { get; set; } = "";
    }

    public sealed class Output
    {
        public string Response { get; set; } = "";
    }

    public sealed class ImageRow
    {
        [ImageType(16, 16)] public MLImage Image { get; set; } = null!;
        public string Prompt { get; set; } = "";
        public string Answer { get; set; } = "";
    }

    internal static PreferenceTuningEstimator.Options TinyOptions()
    {
        var options = PreferenceFixtures.TinyEstimator(sftEpochs: 1, preferenceEpochs: 0, maxNewTokens: 4);
        options.GenerationBatchSize = 4;
        return options;
    }

    internal static Row[] Rows()
    {
        var (images, scenes) = SyntheticShapes.Generate(8, seed: 3, new SyntheticShapesOptions { Width = 16, Height = 16, MaxObjects = 1 });
        return Enumerable.Range(0, scenes.Count).Select(i => new Row { Features = images.Image(i).ToArray(), Prompt = "describe the image", Answer = scenes[i].Caption })
            .ToArray();
    }

    [ClassInitialize]
    public static void Train(TestContext _)
    {
        var ml = new MLContext(0);
        _rows = Rows();
        _model = ml.Alignment().PreferenceTuning(TinyOptions()).Fit(ml.Data.LoadFromEnumerable(_rows));
    }

    [ClassCleanup]
    public static void Cleanup() => _model?.Dispose();

    [TestMethod]
    public void PredictionEngineRejectsWrongLengthAndNaNImagesLikeTransform()
    {
        var ml = new MLContext(0);
        var engine = ml.Model.CreatePredictionEngine<Row, Output>(_model!);
        var good = _rows[0];
        string reference = engine.Predict(good).Response;
        int size = good.Features.Length;
        foreach (var length in new[] { size - 3, 0, size + 3 })
        {
            var bad = new Row { Features = new float[length], Prompt = good.Prompt };
            var e = Assert.ThrowsExactly<InvalidOperationException>(() => engine.Predict(bad), $"length {length}");
            StringAssert.Contains(e.Message, $"the image has {length} values, but the column holds 3×16×16 = {size}");
            Assert.AreEqual(reference, engine.Predict(good).Response);
        }
        var nan = new Row { Features = good.Features.ToArray(), Prompt = good.Prompt };
        nan.Features[5] = float.NaN;
        StringAssert.Contains(Assert.ThrowsExactly<InvalidOperationException>(() => engine.Predict(nan)).Message, "Column 'Features', row ");
        var rows = _rows.Take(5).Append(nan).ToArray();
        var fromTransform = Assert.ThrowsExactly<InvalidOperationException>(
            () => _model!.Transform(ml.Data.LoadFromEnumerable(rows)).GetColumn<string>("Response").ToArray());
        StringAssert.Contains(fromTransform.Message, "Column 'Features', row 5: value 5 is NaN");
    }

    [TestMethod]
    public void TransformIsLazyAndMatchesThePredictionEngine()
    {
        var ml = new MLContext(0);
        int reads = 0;
        var counted = ml.Data.LoadFromEnumerable(_rows.Select(r => { Interlocked.Increment(ref reads); return r; }));
        var output = _model!.Transform(counted);
        Assert.AreEqual(0, reads, "Transform read rows");
        var responses = output.GetColumn<string>("Response").ToArray();
        var engine = ml.Model.CreatePredictionEngine<Row, Output>(_model!);
        for (int i = 0; i < _rows.Length; i++) Assert.AreEqual(responses[i], engine.Predict(_rows[i]).Response, $"row {i}");
        CollectionAssert.AreEqual(_rows.Select(r => r.Answer).ToArray(), output.GetColumn<string>("Answer").ToArray());
    }

    [TestMethod]
    public void ChainEndingInPreferenceTuningDoesNotGenerateInsideFit()
    {
        var ml = new MLContext(0);
        int reads = 0;
        var counted = ml.Data.LoadFromEnumerable(_rows.Select(r => { Interlocked.Increment(ref reads); return r; }));
        using (ml.Alignment().PreferenceTuning(TinyOptions()).Fit(counted)) { }
        int estimatorReads = reads;
        reads = 0;
        var chain = ml.Transforms.CopyColumns("Copy", "Prompt").Append(ml.Alignment().PreferenceTuning(TinyOptions()));
        using var fitted = chain.Fit(counted).LastTransformer;
        Assert.AreEqual(estimatorReads, reads, "the chain read the data more often than the estimator alone: it generated inside Fit");
    }

    [TestMethod]
    public void ChainOnInMemoryMLImagesFitsAndTransforms()
    {
        var ml = new MLContext(0);
        ImageRow[] Images() => _rows.Select(r => new ImageRow { Image = ToImage(r.Features), Prompt = r.Prompt, Answer = r.Answer }).ToArray();
        // ML.NET's ExtractPixels disposes each in-memory image after reading it (dotnet/machinelearning#7444), so such a
        // view can be read once: Fit must read it once and leave generation to the lazy Transform.
        var chain = ml.Transforms.ExtractPixels("Features", "Image").Append(ml.Alignment().PreferenceTuning(TinyOptions()));
        var model = chain.Fit(ml.Data.LoadFromEnumerable(Images()));
        using var tuned = model.LastTransformer;
        var responses = model.Transform(ml.Data.LoadFromEnumerable(Images())).GetColumn<string>("Response").ToArray();
        var expected = tuned.Transform(ml.Data.LoadFromEnumerable(_rows)).GetColumn<string>("Response").ToArray();
        CollectionAssert.AreEqual(expected, responses);
    }

    private static MLImage ToImage(float[] chw)
    {
        int plane = 16 * 16;
        var rgba = new byte[plane * 4];
        for (int p = 0; p < plane; p++)
        {
            for (int c = 0; c < 3; c++) rgba[p * 4 + c] = (byte)Math.Clamp(chw[c * plane + p], 0, 255);
            rgba[p * 4 + 3] = 255;
        }
        return MLImage.CreateFromPixels(16, 16, MLPixelFormat.Rgba32, rgba);
    }
}
