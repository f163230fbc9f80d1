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
        string predictedLabelColumn, IReadOnlyList<EpochReport> history)
    {
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
        var builder = new DataViewSchema.Builder();
        builder.AddColumns(inputSchema.Where(c => c.Name != ScoreColumnName && c.Name != PredictedLabelColumnName));
        foreach (var (name, type, annotations) in OutputColumns()) builder.AddColumn(name, type, annotations);
        return builder.ToSchema();
    }

    /// <inheritdoc />
    public IDataView Transform(IDataView input)
    {
        ArgumentNullException.ThrowIfNull(input);
        var shape = ValidateInput(input.Schema);
        var pixels = ImageColumnReader.ReadAll(input, FeatureColumnName, shape, out int count);
        var probabilities = ClassifierTraining.PredictProbabilities(Model, pixels, count);
        int k = ClassNames.Count;
        var columns = OutputColumns().ToArray();
        return new AppendedColumnsDataView(input, count,
            new AppendedColumnsDataView.ComputedColumn(columns[0].Name, columns[0].Type,
                new Func<long, VBuffer<float>>(r => new VBuffer<float>(k, probabilities.AsSpan((int)r * k, k).ToArray())), columns[0].Annotations),
            new AppendedColumnsDataView.ComputedColumn(columns[1].Name, columns[1].Type,
                new Func<long, uint>(r => ArgMax(probabilities.AsSpan((int)r * k, k)) + 1), columns[1].Annotations));
    }

    /// <inheritdoc />
    public IRowToRowMapper GetRowToRowMapper(DataViewSchema inputSchema) => new RowMapper(this, inputSchema, GetOutputSchema(inputSchema));

    /// <summary>Not supported: ML.NET model files cannot hold TorchSharp weights.</summary>
    void ICanSaveModel.Save(ModelSaveContext ctx) => throw new NotSupportedException(
        "mlContext.Model.Save cannot store a TorchSharp Vision Transformer (ML.NET keeps its model-file API internal). " +
        "Save the classifier with VisionTransformerClassifier.Save(path) and load it with VisionTransformerClassifier.Load(path); " +
        "save any preprocessing transformers before it with mlContext.Model.Save on their own chain.");

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
            FeatureColumnName, ScoreColumnName, PredictedLabelColumnName, MergeAtInference);
        using (var writer = new StreamWriter(zip.CreateEntry("classifier.json").Open(), Encoding.UTF8))
            writer.Write(JsonSerializer.Serialize(header, ClassifierTraining.Json));
        using var weights = zip.CreateEntry("weights.bin").Open();
        // Module.save disposes its writer; leaveOpen keeps the zip entry usable until we close it.
        Model.save(new BinaryWriter(weights, Encoding.UTF8, leaveOpen: true));
    }

    /// <summary>Loads a classifier written by <see cref="Save(string)"/> onto <paramref name="device"/>.</summary>
    public static VisionTransformerClassifier Load(string path, string device = "cpu")
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"No saved classifier at '{path}'.", path);
        using var file = File.OpenRead(path);
        return Load(file, device);
    }

    /// <summary>Loads a classifier from <paramref name="stream"/>.</summary>
    public static VisionTransformerClassifier Load(Stream stream, string device = "cpu")
    {
        using var zip = new ZipArchive(stream, ZipArchiveMode.Read, leaveOpen: true);
        var entry = zip.GetEntry("classifier.json") ?? throw new InvalidDataException("Not a saved VisionTransformerClassifier: classifier.json is missing.");
        SavedHeader header;
        using (var reader = new StreamReader(entry.Open())) header = JsonSerializer.Deserialize<SavedHeader>(reader.ReadToEnd(), ClassifierTraining.Json)!;
        if (header.Format != FormatVersion) throw new InvalidDataException($"Unsupported format '{header.Format}', expected '{FormatVersion}'.");
        var model = new ImageClassifierModel(header.Model, header.ChannelMean, header.ChannelStd);
        using (var weights = new MemoryStream())
        {
            using (var source = (zip.GetEntry("weights.bin") ?? throw new InvalidDataException("weights.bin is missing.")).Open()) source.CopyTo(weights);
            weights.Position = 0;
            model.load(new BinaryReader(weights));
        }
        model.to(TorchDevice.Resolve(device, nameof(device)));
        model.eval();
        var classifier = new VisionTransformerClassifier(model, header.ClassNames, header.FeatureColumn, header.ScoreColumn, header.PredictedLabelColumn, Array.Empty<EpochReport>());
        classifier.MergeAtInference = header.MergeAtInference;
        return classifier;
    }

    /// <summary>Frees the native model memory.</summary>
    public void Dispose() => Model.Dispose();

    private sealed record SavedHeader(string Format, VisionTransformerOptions Model, string[] ClassNames, float[] ChannelMean, float[] ChannelStd,
        string FeatureColumn, string ScoreColumn, string PredictedLabelColumn, bool MergeAtInference);

    private ImageColumns.ImageShape ValidateInput(DataViewSchema schema)
    {
        var shape = ImageColumns.ValidateImageColumn(schema, FeatureColumnName);
        var o = Model.Options;
        if (shape.Channels != o.Channels || shape.Height != o.ImageSize || shape.Width != o.ImageSize)
            throw new ArgumentOutOfRangeException(FeatureColumnName,
                $"Column '{FeatureColumnName}' holds {shape.Channels}×{shape.Height}×{shape.Width} images, but the model was trained on {o.Channels}×{o.ImageSize}×{o.ImageSize}.");
        return shape;
    }

    private IEnumerable<(string Name, DataViewType Type, DataViewSchema.Annotations Annotations)> OutputColumns()
    {
        int k = ClassNames.Count;
        var score = new DataViewSchema.Annotations.Builder();
        score.Add("SlotNames", new VectorDataViewType(TextDataViewType.Instance, k), (ref VBuffer<ReadOnlyMemory<char>> v) => v = ImageColumns.KeyValues(ClassNames));
        score.Add("ScoreColumnKind", TextDataViewType.Instance, (ref ReadOnlyMemory<char> v) => v = "MulticlassClassification".AsMemory());
        score.Add("ScoreValueKind", TextDataViewType.Instance, (ref ReadOnlyMemory<char> v) => v = "Score".AsMemory());
        var predicted = new DataViewSchema.Annotations.Builder();
        predicted.Add("KeyValues", new VectorDataViewType(TextDataViewType.Instance, k), (ref VBuffer<ReadOnlyMemory<char>> v) => v = ImageColumns.KeyValues(ClassNames));
        yield return (ScoreColumnName, new VectorDataViewType(NumberDataViewType.Single, k), score.ToAnnotations());
        yield return (PredictedLabelColumnName, new KeyDataViewType(typeof(uint), k), predicted.ToAnnotations());
    }

    private static uint ArgMax(ReadOnlySpan<float> values)
    {
        int best = 0;
        for (int i = 1; i < values.Length; i++) if (values[i] > values[best]) best = i;
        return (uint)best;
    }

    /// <summary>Scores one row at a time, for prediction engines.</summary>
    private sealed class RowMapper : IRowToRowMapper
    {
        private readonly VisionTransformerClassifier _owner;

        public RowMapper(VisionTransformerClassifier owner, DataViewSchema input, DataViewSchema output)
        {
            _owner = owner;
            InputSchema = input;
            OutputSchema = output;
        }

        public DataViewSchema InputSchema { get; }

        public DataViewSchema OutputSchema { get; }

        public IEnumerable<DataViewSchema.Column> GetDependencies(IEnumerable<DataViewSchema.Column> dependingColumns)
        {
            var needed = dependingColumns.Select(c => c.Name).ToHashSet();
            bool scoring = needed.Contains(_owner.ScoreColumnName) || needed.Contains(_owner.PredictedLabelColumnName);
            return InputSchema.Where(c => needed.Contains(c.Name) && c.Name != _owner.ScoreColumnName && c.Name != _owner.PredictedLabelColumnName
                                          || scoring && c.Name == _owner.FeatureColumnName);
        }

        public DataViewRow GetRow(DataViewRow input, IEnumerable<DataViewSchema.Column> activeColumns) => new ScoredRow(_owner, input, OutputSchema);
    }

    private sealed class ScoredRow : DataViewRow
    {
        private readonly VisionTransformerClassifier _owner;
        private readonly DataViewRow _input;
        private readonly DataViewSchema _schema;
        private long _scoredPosition = -1;
        private float[] _probabilities = Array.Empty<float>();
        private readonly float[] _pixels;

        public ScoredRow(VisionTransformerClassifier owner, DataViewRow input, DataViewSchema schema)
        {
            _owner = owner;
            _input = input;
            _schema = schema;
            var o = owner.Model.Options;
            _pixels = new float[o.Channels * o.ImageSize * o.ImageSize];
        }

        public override DataViewSchema Schema => _schema;

        public override long Position => _input.Position;

        public override long Batch => _input.Batch;

        public override ValueGetter<DataViewRowId> GetIdGetter() => _input.GetIdGetter();

        public override bool IsColumnActive(DataViewSchema.Column column) =>
            column.Name == _owner.ScoreColumnName || column.Name == _owner.PredictedLabelColumnName || _input.IsColumnActive(_input.Schema[column.Name]);

        public override ValueGetter<T> GetGetter<T>(DataViewSchema.Column column)
        {
            if (column.Name == _owner.ScoreColumnName)
                return (ValueGetter<T>)(Delegate)new ValueGetter<VBuffer<float>>((ref VBuffer<float> v) => v = new VBuffer<float>(Score().Length, Score().ToArray()));
            if (column.Name == _owner.PredictedLabelColumnName)
                return (ValueGetter<T>)(Delegate)new ValueGetter<uint>((ref uint v) => v = ArgMax(Score()) + 1);
            return _input.GetGetter<T>(_input.Schema[column.Name]);
        }

        private float[] Score()
        {
            if (_scoredPosition == _input.Position && _probabilities.Length > 0) return _probabilities;
            VBuffer<float> buffer = default;
            _input.GetGetter<VBuffer<float>>(_input.Schema[_owner.FeatureColumnName])(ref buffer);
            buffer.CopyTo(_pixels);
            _probabilities = ClassifierTraining.PredictProbabilities(_owner.Model, _pixels, 1);
            _scoredPosition = _input.Position;
            return _probabilities;
        }
    }
}
