using System.IO.Compression;
using System.Text.Json;
using System.Text.Json.Serialization;
using MergeMix.ML.Data;
using MergeMix.ML.Runtime;
using MergeMix.ML.Transforms;
using Microsoft.ML;
using Microsoft.ML.Data;
using TorchSharp;
using static TorchSharp.torch;

namespace MergeMix.ML.Alignment;

/// <summary>Column names and generation settings of a <see cref="PreferenceTuningTransformer"/> (what its Save keeps besides the model).</summary>
internal sealed record TransformerSettings(string ImageColumnName, string PromptColumnName, string ResponseColumnName, string? ScoreResponseColumnName,
    string LogProbColumnName, int MaxNewTokens, double Temperature, int GenerationBatchSize, int Seed)
{
    public static TransformerSettings From(PreferenceTuningEstimator.Options o) => new(o.ImageColumnName, o.PromptColumnName, o.ResponseColumnName,
        o.ScoreResponseColumnName, o.LogProbColumnName, o.MaxNewTokens, o.Temperature, o.GenerationBatchSize, o.Seed);
}

/// <summary>
/// A trained multimodal LM as an ML.NET transformer: adds a generated text column (<see cref="ResponseColumnName"/>)
/// for each (image, prompt) row and, when <see cref="ScoreResponseColumnName"/> is set, the average per-token
/// log-probability of that given response (<see cref="LogProbColumnName"/>). Works with <c>Transform</c> (batched
/// generation) and with <c>CreatePredictionEngine</c> (one row at a time).
/// </summary>
/// <remarks>
/// Sampling (<see cref="Temperature"/> &gt; 0) is seeded: <c>Transform</c> uses one generator seeded with
/// <see cref="Seed"/> per call, a prediction engine one generator per row seeded with <see cref="Seed"/> and the row
/// position. The model stays in eval mode. Not thread-safe.
/// </remarks>
public sealed class PreferenceTuningTransformer : ITransformer, IDisposable
{
    private const string FormatName = "mergemix-preference-tuning-v1";
    private const string ArchiveKind = "preference-tuning model";
    private static readonly JsonSerializerOptions JsonOptions = new()
    {
        IncludeFields = true, WriteIndented = true, NumberHandling = JsonNumberHandling.AllowNamedFloatingPointLiterals,
    };

    private int _maxNewTokens;
    private double _temperature;
    private int _generationBatchSize;

    internal PreferenceTuningTransformer(MultimodalLm model, VisionTransformerEncoderOptions encoderOptions, TransformerSettings settings,
        PreferenceTuningHistory history)
    {
        Model = model;
        EncoderOptions = encoderOptions.Clone();
        History = history;
        ImageColumnName = settings.ImageColumnName;
        PromptColumnName = settings.PromptColumnName;
        ResponseColumnName = settings.ResponseColumnName;
        ScoreResponseColumnName = settings.ScoreResponseColumnName;
        LogProbColumnName = settings.LogProbColumnName;
        MaxNewTokens = settings.MaxNewTokens;
        Temperature = settings.Temperature;
        GenerationBatchSize = settings.GenerationBatchSize;
        Seed = settings.Seed;
        Model.eval();
    }

    /// <summary>The trained TorchSharp model (vision encoder, projector, decoder, tokenizer).</summary>
    public MultimodalLm Model { get; }

    /// <summary>The image tower's configuration (needed to rebuild it on load).</summary>
    public VisionTransformerEncoderOptions EncoderOptions { get; }

    /// <summary>Per-step metrics and timings of the training run (empty for a loaded model).</summary>
    public PreferenceTuningHistory History { get; }

    /// <summary>Image column read (planar CHW raw pixels).</summary>
    public string ImageColumnName { get; }

    /// <summary>Prompt text column read.</summary>
    public string PromptColumnName { get; }

    /// <summary>Generated text column written.</summary>
    public string ResponseColumnName { get; }

    /// <summary>Text column whose response is scored, or null for no scoring. Settable, e.g. to score another column.</summary>
    public string? ScoreResponseColumnName { get; set; }

    /// <summary>Single column written with the scored response's average log-prob per token (answer tokens + eos).</summary>
    public string LogProbColumnName { get; }

    /// <summary>Most tokens generated per response (≥ 1).</summary>
    public int MaxNewTokens
    {
        get => _maxNewTokens;
        set => _maxNewTokens = value >= 1 ? value : throw new ArgumentOutOfRangeException(nameof(MaxNewTokens), value, "MaxNewTokens must be ≥ 1.");
    }

    /// <summary>0 = greedy; &gt; 0 samples from softmax(logits / temperature).</summary>
    public double Temperature
    {
        get => _temperature;
        set => _temperature = value >= 0 && !double.IsInfinity(value)
            ? value
            : throw new ArgumentOutOfRangeException(nameof(Temperature), value, "Temperature must be finite and ≥ 0 (0 = greedy).");
    }

    /// <summary>Rows generated together by <see cref="Transform"/> (≥ 1).</summary>
    public int GenerationBatchSize
    {
        get => _generationBatchSize;
        set => _generationBatchSize = value >= 1 ? value : throw new ArgumentOutOfRangeException(nameof(GenerationBatchSize), value, "GenerationBatchSize must be ≥ 1.");
    }

    /// <summary>Seed of sampling.</summary>
    public int Seed { get; set; }

    /// <inheritdoc />
    public bool IsRowToRowMapper => true;

    /// <inheritdoc />
    public DataViewSchema GetOutputSchema(DataViewSchema inputSchema)
    {
        ValidateInput(inputSchema);
        var builder = new DataViewSchema.Builder();
        var outputs = OutputColumns().ToArray();
        builder.AddColumns(inputSchema.Where(c => !c.IsHidden && outputs.All(o => o.Name != c.Name)));
        foreach (var (name, type) in outputs) builder.AddColumn(name, type);
        return builder.ToSchema();
    }

    /// <summary>Generates a response for every row (in batches of <see cref="GenerationBatchSize"/>) and scores the given
    /// responses when <see cref="ScoreResponseColumnName"/> is set; the results are computed here, eagerly.</summary>
    public IDataView Transform(IDataView input)
    {
        ArgumentNullException.ThrowIfNull(input);
        var shape = ValidateInput(input.Schema);
        var pixels = ImageColumnReader.ReadAll(input, ImageColumnName, shape, out int count);
        var prompts = AlignmentColumns.ReadText(input, PromptColumnName);
        var scored = ScoreResponseColumnName is null ? null : AlignmentColumns.ReadText(input, ScoreResponseColumnName);
        var responses = new string[count];
        var logProbs = scored is null ? null : new float[count];
        using var generator = new Generator((ulong)Seed, Model.Device);
        for (int start = 0; start < count; start += GenerationBatchSize)
        {
            int n = Math.Min(GenerationBatchSize, count - start);
            using var scope = NewDisposeScope();
            var images = ImageBatch(pixels, start, n, shape);
            var batchPrompts = prompts.AsSpan(start, n).ToArray();
            Generate(images, batchPrompts, start, generator).CopyTo(responses, start);
            if (scored is not null) AverageLogProbs(images, batchPrompts, scored.AsSpan(start, n).ToArray(), start).CopyTo(logProbs!, start);
        }
        var columns = new List<AppendedColumnsDataView.ComputedColumn>
        {
            new(ResponseColumnName, TextDataViewType.Instance, new Func<long, ReadOnlyMemory<char>>(r => responses[r].AsMemory())),
        };
        if (logProbs is not null)
            columns.Add(new(LogProbColumnName, NumberDataViewType.Single, new Func<long, float>(r => logProbs[r])));
        return new AppendedColumnsDataView(input, count, columns.ToArray());
    }

    /// <inheritdoc />
    public IRowToRowMapper GetRowToRowMapper(DataViewSchema inputSchema) => new RowMapper(this, inputSchema, GetOutputSchema(inputSchema));

    /// <summary>
    /// Scores preference pairs without training (eval mode, no gradient): the share of pairs whose chosen side has a
    /// higher average log-prob per token than the rejected side (SimPO's implicit reward with β = 1), and the means.
    /// </summary>
    /// <param name="pairs">Pairs, e.g. <see cref="PreferenceDataset.FromMixing"/> of held-out images (raw ≻ mixed).</param>
    /// <param name="batchSize">Pairs scored together.</param>
    public PreferenceEvaluation EvaluatePreferences(PreferenceDataset pairs, int batchSize = 64)
    {
        ArgumentNullException.ThrowIfNull(pairs);
        if (batchSize < 1) throw new ArgumentOutOfRangeException(nameof(batchSize), batchSize, "batchSize must be ≥ 1.");
        int wins = 0;
        double chosenSum = 0, rejectedSum = 0;
        for (int start = 0; start < pairs.Count; start += batchSize)
        {
            int n = Math.Min(batchSize, pairs.Count - start);
            using var scope = NewDisposeScope();
            var prompts = pairs.Prompts.Skip(start).Take(n).ToArray();
            var chosen = AverageLogProbs(pairs.ChosenImages.narrow(0, start, n).to(Model.Device), prompts, pairs.ChosenAnswers.Skip(start).Take(n).ToArray(), start);
            var rejected = AverageLogProbs(pairs.RejectedImages.narrow(0, start, n).to(Model.Device), prompts, pairs.RejectedAnswers.Skip(start).Take(n).ToArray(), start);
            for (int i = 0; i < n; i++)
            {
                if (chosen[i] > rejected[i]) wins++;
                chosenSum += chosen[i];
                rejectedSum += rejected[i];
            }
        }
        return new PreferenceEvaluation(pairs.Count, (double)wins / pairs.Count, chosenSum / pairs.Count, rejectedSum / pairs.Count);
    }

    /// <summary>Not supported: ML.NET model files cannot hold TorchSharp weights.</summary>
    void ICanSaveModel.Save(ModelSaveContext ctx) => throw new NotSupportedException(
        "mlContext.Model.Save cannot store a TorchSharp multimodal LM (ML.NET keeps its model-file API internal). " +
        "Call transformer.Save(path) and PreferenceTuningTransformer.Load(path); save any preprocessing transformers before it " +
        "with mlContext.Model.Save on their own chain.");

    /// <summary>Writes one zip: <c>transformer.json</c> (columns, generation settings, encoder options, history) and
    /// <c>model.zip</c> (<see cref="MultimodalLm.Save(Stream)"/>: architecture, tokenizer, weights).</summary>
    public void Save(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        using var file = File.Create(path);
        Save(file);
    }

    /// <summary>Writes the archive of <see cref="Save(string)"/> to <paramref name="stream"/>, leaving it open.</summary>
    public void Save(Stream stream)
    {
        ArgumentNullException.ThrowIfNull(stream);
        using var zip = new ZipArchive(stream, ZipArchiveMode.Create, leaveOpen: true);
        var header = new SavedHeader(FormatName, EncoderOptions,
            new TransformerSettings(ImageColumnName, PromptColumnName, ResponseColumnName, ScoreResponseColumnName, LogProbColumnName,
                MaxNewTokens, Temperature, GenerationBatchSize, Seed),
            History.Objective, History.Sft.ToArray(), History.Preference.ToArray());
        using (var entry = zip.CreateEntry("transformer.json").Open())
            JsonSerializer.Serialize(entry, header, JsonOptions);
        using var model = zip.CreateEntry("model.zip").Open();
        Model.Save(model);
    }

    /// <summary>Loads a transformer written by <see cref="Save(string)"/> onto <paramref name="device"/> ("cpu", "cuda", "cuda:N").</summary>
    public static PreferenceTuningTransformer Load(string path, string device = "cpu")
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        if (!File.Exists(path)) throw new FileNotFoundException($"saved preference-tuning model '{path}' was not found.", path);
        using var file = File.OpenRead(path);
        return Load(file, device);
    }

    /// <summary>Loads a transformer from a stream holding the archive of <see cref="Save(Stream)"/>; the stream is left open.</summary>
    public static PreferenceTuningTransformer Load(Stream stream, string device = "cpu")
    {
        ArgumentNullException.ThrowIfNull(stream);
        var target = TorchDevice.Resolve(device, nameof(device));
        using var zip = new ZipArchive(stream, ZipArchiveMode.Read, leaveOpen: true);
        SavedHeader header;
        using (var entry = ArchiveEntries.Get(zip, "transformer.json", ArchiveKind).Open())
            header = JsonSerializer.Deserialize<SavedHeader>(entry, JsonOptions) ?? throw new InvalidDataException("transformer.json is empty.");
        if (header.Format != FormatName)
            throw new InvalidDataException($"the archive has format '{header.Format}', expected '{FormatName}'.");
        using var modelCopy = new MemoryStream();
        using (var entry = ArchiveEntries.Get(zip, "model.zip", ArchiveKind).Open()) entry.CopyTo(modelCopy);
        modelCopy.Position = 0;
        var model = MultimodalLm.Load(modelCopy, new VisionTransformerEncoder(header.Encoder));
        model.to(target);
        var history = new PreferenceTuningHistory(header.Sft, header.Preference, header.Objective, TimeSpan.Zero, TimeSpan.Zero);
        return new PreferenceTuningTransformer(model, header.Encoder, header.Settings, history);
    }

    /// <summary>Frees the model's native memory.</summary>
    public void Dispose() => Model.Dispose();

    private sealed record SavedHeader(string Format, VisionTransformerEncoderOptions Encoder, TransformerSettings Settings, PreferenceObjective Objective,
        PreferenceStepMetrics[] Sft, PreferenceStepMetrics[] Preference);

    private IEnumerable<(string Name, DataViewType Type)> OutputColumns()
    {
        yield return (ResponseColumnName, TextDataViewType.Instance);
        if (ScoreResponseColumnName is not null) yield return (LogProbColumnName, NumberDataViewType.Single);
    }

    private ImageColumns.ImageShape ValidateInput(DataViewSchema schema)
    {
        ArgumentNullException.ThrowIfNull(schema);
        var shape = ImageColumns.ValidateImageColumn(schema, ImageColumnName);
        var v = EncoderOptions.Vision;
        if (shape.Channels != v.Channels || shape.Height != v.ImageSize || shape.Width != v.ImageSize)
            throw new ArgumentOutOfRangeException(nameof(ImageColumnName),
                $"Image column '{ImageColumnName}' holds {shape.Channels}×{shape.Height}×{shape.Width} images, but the model was trained on {v.Channels}×{v.ImageSize}×{v.ImageSize}.");
        AlignmentColumns.ValidateText(schema, PromptColumnName, nameof(PromptColumnName));
        if (ScoreResponseColumnName is not null) AlignmentColumns.ValidateText(schema, ScoreResponseColumnName, nameof(ScoreResponseColumnName));
        return shape;
    }

    private Tensor ImageBatch(float[] pixels, int start, int n, ImageColumns.ImageShape shape)
    {
        int size = shape.Channels * shape.Height * shape.Width;
        return tensor(pixels.AsSpan(start * size, n * size).ToArray(), new long[] { n, shape.Channels, shape.Height, shape.Width }).to(Model.Device);
    }

    // Generates responses for one batch; firstRow only labels error messages.
    private string[] Generate(Tensor images, string[] prompts, int firstRow, Generator? generator)
    {
        var ids = new int[prompts.Length][];
        for (int i = 0; i < prompts.Length; i++)
        {
            try
            {
                ids[i] = TextBatch.PromptIds(Model.Tokenizer, prompts[i]);
            }
            catch (ArgumentException e)
            {
                throw new ArgumentException($"Column '{PromptColumnName}', row {firstRow + i}: {e.Message}", nameof(PromptColumnName), e);
            }
            if (ids[i].Length >= Model.Options.MaxTextLength)
                throw new ArgumentException(
                    $"Column '{PromptColumnName}', row {firstRow + i}: the prompt needs {ids[i].Length} tokens (image marker included), leaving no room " +
                    $"to generate within the model's context of MaxTextLength = {Model.Options.MaxTextLength} tokens.", nameof(PromptColumnName));
        }
        return Model.Generate(images, ids, MaxNewTokens, Temperature, Temperature > 0 ? generator : null).Select(Model.Tokenizer.Decode).ToArray();
    }

    private float[] AverageLogProbs(Tensor images, string[] prompts, string[] responses, int firstRow)
    {
        TextBatch texts;
        try
        {
            texts = TextBatch.Build(Model.Tokenizer, prompts, responses, Model.Options.MaxTextLength, Model.Device);
        }
        catch (ArgumentException e)
        {
            throw new ArgumentException($"Scoring rows {firstRow}..{firstRow + prompts.Length - 1} of '{ScoreResponseColumnName ?? "the pairs"}': {e.Message}",
                nameof(ScoreResponseColumnName), e);
        }
        using (texts)
        using (no_grad())
        {
            using var scope = NewDisposeScope();
            var logProbs = SequenceLogProbs.Compute(Model.forward(images, texts.InputIds), texts.Labels);
            return logProbs.Average().cpu().data<float>().ToArray();
        }
    }

    /// <summary>Computes the outputs of one row at a time, for prediction engines.</summary>
    private sealed class RowMapper : IRowToRowMapper
    {
        private readonly PreferenceTuningTransformer _owner;

        public RowMapper(PreferenceTuningTransformer owner, DataViewSchema input, DataViewSchema output)
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
            bool generating = needed.Contains(_owner.ResponseColumnName);
            bool scoring = _owner.ScoreResponseColumnName is not null && needed.Contains(_owner.LogProbColumnName);
            return InputSchema.Where(c =>
                (needed.Contains(c.Name) && c.Name != _owner.ResponseColumnName && !(scoring && c.Name == _owner.LogProbColumnName)) ||
                ((generating || scoring) && (c.Name == _owner.ImageColumnName || c.Name == _owner.PromptColumnName)) ||
                (scoring && c.Name == _owner.ScoreResponseColumnName));
        }

        public DataViewRow GetRow(DataViewRow input, IEnumerable<DataViewSchema.Column> activeColumns) => new MappedRow(_owner, input, OutputSchema);
    }

    private sealed class MappedRow : DataViewRow
    {
        private readonly PreferenceTuningTransformer _owner;
        private readonly DataViewRow _input;
        private readonly DataViewSchema _schema;
        private readonly ImageColumns.ImageShape _shape;
        private readonly float[] _pixels;
        private long _generatedPosition = -1, _scoredPosition = -1;
        private string _response = "";
        private float _logProb;

        public MappedRow(PreferenceTuningTransformer owner, DataViewRow input, DataViewSchema schema)
        {
            _owner = owner;
            _input = input;
            _schema = schema;
            var v = owner.EncoderOptions.Vision;
            _shape = new ImageColumns.ImageShape(v.Channels, v.ImageSize, v.ImageSize);
            _pixels = new float[v.Channels * v.ImageSize * v.ImageSize];
        }

        public override DataViewSchema Schema => _schema;

        public override long Position => _input.Position;

        public override long Batch => _input.Batch;

        public override ValueGetter<DataViewRowId> GetIdGetter() => _input.GetIdGetter();

        public override bool IsColumnActive(DataViewSchema.Column column) =>
            IsOutput(column.Name) || _input.IsColumnActive(_input.Schema[column.Name]);

        public override ValueGetter<T> GetGetter<T>(DataViewSchema.Column column)
        {
            if (column.Name == _owner.ResponseColumnName)
                return (ValueGetter<T>)(Delegate)new ValueGetter<ReadOnlyMemory<char>>((ref ReadOnlyMemory<char> v) => v = Response().AsMemory());
            if (_owner.ScoreResponseColumnName is not null && column.Name == _owner.LogProbColumnName)
                return (ValueGetter<T>)(Delegate)new ValueGetter<float>((ref float v) => v = LogProb());
            return _input.GetGetter<T>(_input.Schema[column.Name]);
        }

        private bool IsOutput(string name) => name == _owner.ResponseColumnName || (_owner.ScoreResponseColumnName is not null && name == _owner.LogProbColumnName);

        private string Response()
        {
            if (_generatedPosition == _input.Position) return _response;
            using var scope = NewDisposeScope();
            using var generator = new Generator(unchecked((ulong)(_owner.Seed * 1_000_003L + _input.Position)), _owner.Model.Device);
            _response = _owner.Generate(Image(), new[] { Text(_owner.PromptColumnName) }, (int)_input.Position, generator)[0];
            _generatedPosition = _input.Position;
            return _response;
        }

        private float LogProb()
        {
            if (_scoredPosition == _input.Position) return _logProb;
            using var scope = NewDisposeScope();
            _logProb = _owner.AverageLogProbs(Image(), new[] { Text(_owner.PromptColumnName) }, new[] { Text(_owner.ScoreResponseColumnName!) },
                (int)_input.Position)[0];
            _scoredPosition = _input.Position;
            return _logProb;
        }

        private Tensor Image()
        {
            VBuffer<float> buffer = default;
            _input.GetGetter<VBuffer<float>>(_input.Schema[_owner.ImageColumnName])(ref buffer);
            buffer.CopyTo(_pixels);
            return _owner.ImageBatch(_pixels, 0, 1, _shape);
        }

        private string Text(string column)
        {
            ReadOnlyMemory<char> value = default;
            _input.GetGetter<ReadOnlyMemory<char>>(_input.Schema[column])(ref value);
            return value.ToString();
        }
    }
}

/// <summary>
/// Held-out preference scores of <see cref="PreferenceTuningTransformer.EvaluatePreferences"/>.
/// </summary>
/// <param name="Count">Pairs scored.</param>
/// <param name="Accuracy">Share of pairs whose chosen side has the higher average log-prob per token.</param>
/// <param name="ChosenAverageLogProb">Mean over pairs of the chosen side's average log-prob per token.</param>
/// <param name="RejectedAverageLogProb">Mean over pairs of the rejected side's average log-prob per token.</param>
public sealed record PreferenceEvaluation(int Count, double Accuracy, double ChosenAverageLogProb, double RejectedAverageLogProb)
{
    /// <summary>Mean margin: chosen − rejected average log-prob.</summary>
    public double Margin => ChosenAverageLogProb - RejectedAverageLogProb;
}
