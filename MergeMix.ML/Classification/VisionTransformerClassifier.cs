using System.IO.Compression;
using System.Text;
using System.Text.Json;
using MergeMix.ML.Data;
using MergeMix.ML.Runtime;
using MergeMix.ML.Transforms;
using MergeMix.ML.Vision;
using Microsoft.ML;
using Microsoft.ML.Data;
using TorchSharp;
using static TorchSharp.torch;

namespace MergeMix.ML.Classification;

/// <summary>
/// A trained ToMe Vision Transformer as an ML.NET transformer: adds <c>Score</c> (softmax probabilities, K slots with
/// the class names as SlotNames) and <c>PredictedLabel</c> (a key carrying the label's KeyValues), so
/// <c>mlContext.MulticlassClassification.Evaluate</c>, <c>MapKeyToValue</c> and <c>CreatePredictionEngine</c> work unchanged.
/// </summary>
public sealed class VisionTransformerClassifier : ITransformer, IDisposable
{
    private const string FormatVersion = "MergeMix.ML.VisionTransformerClassifier/1";

    internal VisionTransformerClassifier(ImageClassifierModel model, IReadOnlyList<string> classNames, string featureColumn, string scoreColumn,
        string predictedLabelColumn, IReadOnlyList<EpochReport> history, string? labelColumn = DefaultLabelColumn)
    {
        LabelColumnName = labelColumn;
        Model = model;
        ClassNames = classNames;
        FeatureColumnName = featureColumn;
        ScoreColumnName = scoreColumn;
        PredictedLabelColumnName = predictedLabelColumn;
        History = history;
    }

    /// <summary>The TorchSharp model (normalisation + ViT).</summary>
    public ImageClassifierModel Model { get; }

    /// <summary>Class names, index = class.</summary>
    public IReadOnlyList<string> ClassNames { get; }

    /// <summary>Per-epoch training report (empty for a loaded model).</summary>
    public IReadOnlyList<EpochReport> History { get; }

    /// <summary>Image column read at prediction time.</summary>
    public string FeatureColumnName { get; }

    /// <summary>
    /// Key label column that, when the scored data has it, must name the classes as <see cref="ClassNames"/> does (checked
    /// by Transform, so Evaluate never compares keys of other classes); null skips the check. The trainer's label column.
    /// </summary>
    public string? LabelColumnName { get; set; }

    private const string DefaultLabelColumn = "Label";

    /// <summary>Probability column written.</summary>
    public string ScoreColumnName { get; }

    /// <summary>Predicted-class key column written.</summary>
    public string PredictedLabelColumnName { get; }

    /// <summary>Whether inference merges tokens (ToMe): faster, usually a little less accurate.</summary>
    public bool MergeAtInference
    {
        get => Model.Backbone.MergeEnabled;
        set => Model.Backbone.MergeEnabled = value;
    }

    /// <inheritdoc />
    public bool IsRowToRowMapper => true;

    /// <inheritdoc />
    public DataViewSchema GetOutputSchema(DataViewSchema inputSchema)
    {
        ValidateInput(inputSchema);
        // The layout Transform's view builds, so the two never disagree (hidden input columns are dropped by both).
        return new AppendedSchema(inputSchema, OutputColumns()).Schema;
    }

    /// <summary>
    /// Adds the score and predicted-label columns, lazily: a cursor that reads them scores
    /// <see cref="ScoringBatchSize"/> rows at a time, through the same validation as a prediction engine.
    /// </summary>
    public IDataView Transform(IDataView input)
    {
        ArgumentNullException.ThrowIfNull(input);
        return new BatchScoredDataView<float[]>(input, new Scorer(this, ValidateInput(input.Schema)));
    }

    /// <inheritdoc />
    public IRowToRowMapper GetRowToRowMapper(DataViewSchema inputSchema) =>
        new BatchScoringRowMapper<float[]>(new Scorer(this, ValidateInput(inputSchema)), inputSchema, GetOutputSchema(inputSchema));

    /// <summary>Images scored together by the cursors of <see cref="Transform"/> (≥ 1).</summary>
    public int ScoringBatchSize
    {
        get => _scoringBatchSize;
        set => _scoringBatchSize = value >= 1 ? value : throw new ArgumentOutOfRangeException(nameof(ScoringBatchSize), value, "ScoringBatchSize must be ≥ 1.");
    }

    private int _scoringBatchSize = 256;

    /// <summary>
    /// Writes the classifier into an ML.NET model file as ML.NET's own ONNX transformer over this model's ONNX graph
    /// (see <see cref="ExportOnnx(string)"/>) plus built-in transforms that rebuild the <c>PredictedLabel</c> key, so
    /// <c>mlContext.Model.Load</c> needs neither this library nor TorchSharp: only Microsoft.ML,
    /// Microsoft.ML.OnnxTransformer and Microsoft.ML.OnnxRuntime. The loaded chain predicts with ONNX Runtime: the same
    /// <c>PredictedLabel</c> (a key whose KeyValues are the class names) and <c>Score</c> (with the class names as
    /// SlotNames) to float precision. Merging follows <see cref="MergeAtInference"/> at the time of saving.
    /// </summary>
    void ICanSaveModel.Save(ModelSaveContext ctx)
    {
        // Disposing frees the ONNX Runtime session and the temporary model file the OnnxTransformer keeps.
        using var chain = Persistence.OnnxScoringChain.Create(this);
        ((ICanSaveModel)chain).Save(ctx);
    }

    /// <summary>
    /// Writes the model as an ONNX file for ONNX Runtime (opset 20): input <see cref="FeatureColumnName"/> float
    /// [batch, C, H, W] raw pixels (normalisation is inside the graph), outputs <see cref="ScoreColumnName"/> float
    /// [batch, K] softmax probabilities and <see cref="PredictedLabelColumnName"/> string [batch] class names. ToMe
    /// merging is in the graph when <see cref="MergeAtInference"/> is on.
    /// </summary>
    /// <example>
    /// <code>
    /// // pixels: count images of 3×32×32 raw values, channel-major, one after the other.
    /// static string[] Classify(VisionTransformerClassifier classifier, float[] pixels, int count)
    /// {
    ///     classifier.ExportOnnx("vit.onnx");
    ///     using var session = new Microsoft.ML.OnnxRuntime.InferenceSession("vit.onnx");
    ///     var input = new Microsoft.ML.OnnxRuntime.Tensors.DenseTensor&lt;float&gt;(pixels, new[] { count, 3, 32, 32 });
    ///     using var results = session.Run(new[] { Microsoft.ML.OnnxRuntime.NamedOnnxValue.CreateFromTensor("Features", input) });
    ///     return results.Single(r => r.Name == "PredictedLabel").AsTensor&lt;string&gt;().ToArray();
    /// }
    /// </code>
    /// </example>
    public void ExportOnnx(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        using var file = File.Create(path);
        ExportOnnx(file);
    }

    /// <summary>Writes the ONNX model of <see cref="ExportOnnx(string)"/> to <paramref name="stream"/> (left open).</summary>
    public void ExportOnnx(Stream stream)
    {
        ArgumentNullException.ThrowIfNull(stream);
        var model = Persistence.VisionTransformerOnnx.Build(Model, ClassNames, FeatureColumnName, ScoreColumnName, PredictedLabelColumnName,
            MergeAtInference, Persistence.OnnxHead.Batch);
        Google.Protobuf.MessageExtensions.WriteTo(model, stream);
    }

    /// <summary>Writes a zip with the options, class names, normalisation and the weights.</summary>
    public void Save(string path)
    {
        using var file = File.Create(path);
        Save(file);
    }

    /// <summary>Writes the model to <paramref name="stream"/> (left open).</summary>
    public void Save(Stream stream)
    {
        using var zip = new ZipArchive(stream, ZipArchiveMode.Create, leaveOpen: true);
        var header = new SavedHeader(FormatVersion, Model.Options, ClassNames.ToArray(), Model.ChannelMean.ToArray(), Model.ChannelStd.ToArray(),
            FeatureColumnName, ScoreColumnName, PredictedLabelColumnName, MergeAtInference, LabelColumnName);
        using (var writer = new StreamWriter(zip.CreateEntry("classifier.json").Open(), Encoding.UTF8))
            writer.Write(JsonSerializer.Serialize(header, ClassifierTraining.Json));
        using var weights = zip.CreateEntry("weights.bin").Open();
        // Module.save disposes its writer; leaveOpen keeps the zip entry usable until we close it.
        Model.save(new BinaryWriter(weights, Encoding.UTF8, leaveOpen: true));
    }

    /// <summary>Loads a classifier written by <see cref="Save(string)"/> onto <paramref name="device"/>.</summary>
    public static VisionTransformerClassifier Load(string path, string device = "cpu") =>
        ModelFiles.Load(path, "saved classifier", file => Load(file, device));

    /// <summary>Loads a classifier from <paramref name="stream"/>.</summary>
    public static VisionTransformerClassifier Load(Stream stream, string device = "cpu")
    {
        using var zip = ModelFiles.OpenArchive(stream, "saved classifier");
        var entry = zip.GetEntry("classifier.json") ?? throw new InvalidDataException("Not a saved VisionTransformerClassifier: classifier.json is missing.");
        SavedHeader header;
        using (var reader = new StreamReader(entry.Open())) header = JsonSerializer.Deserialize<SavedHeader>(reader.ReadToEnd(), ClassifierTraining.Json)!;
        if (header.Format != FormatVersion) throw new InvalidDataException($"Unsupported format '{header.Format}', expected '{FormatVersion}'.");
        var model = new ImageClassifierModel(header.Model, header.ChannelMean, header.ChannelStd);
        using (var weights = new MemoryStream())
        {
            using (var source = (zip.GetEntry("weights.bin") ?? throw new InvalidDataException("weights.bin is missing.")).Open()) source.CopyTo(weights);
            weights.Position = 0;
            try
            {
                ModelFiles.LoadWeights(model, weights, "weights.bin");
            }
            catch
            {
                model.Dispose();
                throw;
            }
        }
        model.to(TorchDevice.Resolve(device, nameof(device)));
        model.eval();
        var classifier = new VisionTransformerClassifier(model, header.ClassNames, header.FeatureColumn, header.ScoreColumn, header.PredictedLabelColumn, Array.Empty<EpochReport>(),
            header.LabelColumn ?? DefaultLabelColumn);
        classifier.MergeAtInference = header.MergeAtInference;
        return classifier;
    }

    /// <summary>Frees the native model memory.</summary>
    public void Dispose() => Model.Dispose();

    private sealed record SavedHeader(string Format, VisionTransformerOptions Model, string[] ClassNames, float[] ChannelMean, float[] ChannelStd,
        string FeatureColumn, string ScoreColumn, string PredictedLabelColumn, bool MergeAtInference, string? LabelColumn = null);

    private ImageColumns.ImageShape ValidateInput(DataViewSchema schema)
    {
        var shape = ImageColumns.ValidateImageColumn(schema, FeatureColumnName);
        var o = Model.Options;
        if (shape.Channels != o.Channels || shape.Height != o.ImageSize || shape.Width != o.ImageSize)
            throw new ArgumentOutOfRangeException(FeatureColumnName,
                $"Column '{FeatureColumnName}' holds {shape.Channels}×{shape.Height}×{shape.Width} images, but the model was trained on {o.Channels}×{o.ImageSize}×{o.ImageSize}.");
        if (LabelColumnName is { } label && schema.GetColumnOrNull(label) is { } labelColumn)
            ImageColumns.CheckKeyNames(labelColumn, ClassNames, "the classifier", label);
        return shape;
    }

    private ScoredColumn[] OutputColumns()
    {
        int k = ClassNames.Count;
        var score = new DataViewSchema.Annotations.Builder();
        score.Add("SlotNames", new VectorDataViewType(TextDataViewType.Instance, k), (ref VBuffer<ReadOnlyMemory<char>> v) => v = ImageColumns.KeyValues(ClassNames));
        score.Add("ScoreColumnKind", TextDataViewType.Instance, (ref ReadOnlyMemory<char> v) => v = "MulticlassClassification".AsMemory());
        score.Add("ScoreValueKind", TextDataViewType.Instance, (ref ReadOnlyMemory<char> v) => v = "Score".AsMemory());
        var predicted = new DataViewSchema.Annotations.Builder();
        predicted.Add("KeyValues", new VectorDataViewType(TextDataViewType.Instance, k), (ref VBuffer<ReadOnlyMemory<char>> v) => v = ImageColumns.KeyValues(ClassNames));
        return new[]
        {
            new ScoredColumn(ScoreColumnName, new VectorDataViewType(NumberDataViewType.Single, k), score.ToAnnotations()),
            new ScoredColumn(PredictedLabelColumnName, new KeyDataViewType(typeof(uint), k), predicted.ToAnnotations()),
        };
    }

    private static uint ArgMax(ReadOnlySpan<float> values)
    {
        int best = 0;
        for (int i = 1; i < values.Length; i++) if (values[i] > values[best]) best = i;
        return (uint)best;
    }

    /// <summary>The classifier's one scoring path, shared by Transform's cursors and prediction engines.</summary>
    private sealed class Scorer : BatchScorer<float[]>
    {
        private readonly VisionTransformerClassifier _owner;
        private readonly ImageColumns.ImageShape _shape;

        public Scorer(VisionTransformerClassifier owner, ImageColumns.ImageShape shape)
        {
            _owner = owner;
            _shape = shape;
            BatchSize = owner.ScoringBatchSize;
            Outputs = owner.OutputColumns();
        }

        public override IReadOnlyList<ScoredColumn> Outputs { get; }

        // Fixed when Transform is called, like the output columns.
        public override int BatchSize { get; }

        public override IEnumerable<string> InputColumns(bool[] active) => new[] { _owner.FeatureColumnName };

        public override Func<long, float[]> CreateReader(DataViewRow row, bool[] active)
        {
            var getter = row.GetGetter<VBuffer<float>>(row.Schema[_owner.FeatureColumnName]);
            VBuffer<float> buffer = default;
            int size = _shape.Channels * _shape.Height * _shape.Width;
            return position =>
            {
                getter(ref buffer);
                var pixels = new float[size];
                ImageColumns.ReadPixels(buffer, pixels, _owner.FeatureColumnName, _shape, position);
                return pixels;
            };
        }

        public override Array?[] Score(IReadOnlyList<float[]> rows, long firstRow, bool[] active, object? state)
        {
            int size = _shape.Channels * _shape.Height * _shape.Width, k = _owner.ClassNames.Count;
            var pixels = new float[rows.Count * size];
            for (int i = 0; i < rows.Count; i++) rows[i].CopyTo(pixels, i * size);
            var probabilities = ClassifierTraining.PredictProbabilities(_owner.Model, pixels, rows.Count);
            var scores = new VBuffer<float>[rows.Count];
            var keys = new uint[rows.Count];
            for (int i = 0; i < rows.Count; i++)
            {
                var row = probabilities.AsSpan(i * k, k);
                scores[i] = new VBuffer<float>(k, row.ToArray());
                keys[i] = ArgMax(row) + 1;
            }
            return new Array?[] { scores, keys };
        }
    }
}
