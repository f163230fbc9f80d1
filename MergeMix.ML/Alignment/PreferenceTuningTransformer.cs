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
    // Properties with defaults (not constructor parameters) so that archives saved before them still load.
    public int TopK { get; init; }
    public double TopP { get; init; } = 1.0;
    public PromptTemplate? PromptTemplate { get; init; }

    public static TransformerSettings From(PreferenceTuningEstimator.Options o) => new(o.ImageColumnName, o.PromptColumnName, o.ResponseColumnName,
        o.ScoreResponseColumnName, o.LogProbColumnName, o.MaxNewTokens, o.Temperature, o.GenerationBatchSize, o.Seed)
    {
        TopK = o.TopK, TopP = o.TopP, PromptTemplate = o.PromptTemplate,
    };
}

/// <summary>
/// A trained multimodal LM as an ML.NET transformer: adds a generated text column (<see cref="ResponseColumnName"/>)
/// for each (image, prompt) row and, when <see cref="ScoreResponseColumnName"/> is set, the average per-token
/// log-probability of that given response (<see cref="LogProbColumnName"/>). Works with <c>Transform</c> (lazy:
/// generation runs a batch at a time as a cursor reads the column) and with <c>CreatePredictionEngine</c> (one row at a
/// time); both read and validate rows the same way.
/// </summary>
/// <remarks>
/// Sampling (<see cref="Temperature"/> &gt; 0) is seeded: each cursor of <c>Transform</c>'s output uses one generator
/// seeded with <see cref="Seed"/>, a prediction engine one generator per row seeded with <see cref="Seed"/> and the row
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
        TopK = settings.TopK;
        TopP = settings.TopP;
        PromptTemplate = settings.PromptTemplate ?? PromptTemplate.Raw;
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

    /// <summary>Sampling only: keep the k most likely tokens (0 = all); see <see cref="MultimodalLm.Generate"/>.</summary>
    public int TopK
    {
        get => _topK;
        set { SamplingFilter.Check(value, 1.0); _topK = value; }
    }

    /// <summary>Sampling only: nucleus mass in (0, 1] (1 = all tokens); see <see cref="MultimodalLm.Generate"/>.</summary>
    public double TopP
    {
        get => _topP;
        set { SamplingFilter.Check(0, value); _topP = value; }
    }

    /// <summary>The prompt format the model was trained with; applied to every prompt before generating or scoring.</summary>
    public PromptTemplate PromptTemplate { get; }

    private int _topK;
    private double _topP = 1.0;

    /// <inheritdoc />
    public bool IsRowToRowMapper => true;

    /// <inheritdoc />
    public DataViewSchema GetOutputSchema(DataViewSchema inputSchema)
    {
        ValidateInput(inputSchema);
        return new AppendedSchema(inputSchema, OutputColumns()).Schema;
    }

    /// <summary>Adds the generated response (and, with <see cref="ScoreResponseColumnName"/>, its log-prob) lazily: a cursor
    /// that reads them generates <see cref="GenerationBatchSize"/> rows at a time, through the same validation as a
    /// prediction engine.</summary>
    public IDataView Transform(IDataView input)
    {
        ArgumentNullException.ThrowIfNull(input);
        return new BatchScoredDataView<RowInput>(input, new Scorer(this, ValidateInput(input.Schema)));
    }

    /// <inheritdoc />
    public IRowToRowMapper GetRowToRowMapper(DataViewSchema inputSchema) =>
        new BatchScoringRowMapper<RowInput>(new Scorer(this, ValidateInput(inputSchema)), inputSchema, GetOutputSchema(inputSchema));

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

    /// <summary>
    /// Not supported: generation is a sampling loop over a TorchSharp LM, not one graph that ML.NET's ONNX transformer
    /// could hold (the ViT classifier saves that way). ML.NET's path overload of Model.Save has already truncated its
    /// file when this throws; <see cref="Persistence.ModelFileCatalog.SaveAtomically"/> does not.
    /// </summary>
    void ICanSaveModel.Save(ModelSaveContext ctx) => throw new NotSupportedException(
        "mlContext.Model.Save cannot store a PreferenceTuningTransformer: its generation is a sampling loop over a TorchSharp multimodal LM, " +
        "not one ONNX graph. Call transformer.Save(path) and PreferenceTuningTransformer.Load(path); save any preprocessing transformers " +
        "before it on their own chain, with mlContext.Model.SaveAtomically (MergeMix.ML.Persistence), which leaves an existing file intact " +
        "when saving fails (ML.NET's Model.Save(..., path) truncates it first).");

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
                MaxNewTokens, Temperature, GenerationBatchSize, Seed) { TopK = TopK, TopP = TopP, PromptTemplate = PromptTemplate },
            History.Objective, History.Sft.ToArray(), History.Preference.ToArray());
        using (var entry = zip.CreateEntry("transformer.json").Open())
            JsonSerializer.Serialize(entry, header, JsonOptions);
        using var model = zip.CreateEntry("model.zip").Open();
        Model.Save(model);
    }

    /// <summary>Loads a transformer written by <see cref="Save(string)"/> onto <paramref name="device"/> ("cpu", "cuda", "cuda:N").</summary>
    public static PreferenceTuningTransformer Load(string path, string device = "cpu")
    {
        return ModelFiles.Load(path, "saved preference-tuning model", file => Load(file, device));
    }

    /// <summary>Loads a transformer from a stream holding the archive of <see cref="Save(Stream)"/>; the stream is left open.</summary>
    public static PreferenceTuningTransformer Load(Stream stream, string device = "cpu")
    {
        ArgumentNullException.ThrowIfNull(stream);
        var target = TorchDevice.Resolve(device, nameof(device));
        using var zip = ModelFiles.OpenArchive(stream, "saved preference-tuning model");
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

    private ScoredColumn[] OutputColumns() => ScoreResponseColumnName is null
        ? new[] { new ScoredColumn(ResponseColumnName, TextDataViewType.Instance) }
        : new[] { new ScoredColumn(ResponseColumnName, TextDataViewType.Instance), new ScoredColumn(LogProbColumnName, NumberDataViewType.Single) };

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
    private string[] Generate(Tensor images, string[] prompts, long firstRow, Generator? generator)
    {
        var ids = new int[prompts.Length][];
        for (int i = 0; i < prompts.Length; i++)
        {
            try
            {
                ids[i] = TextBatch.PromptIds(Model.Tokenizer, PromptTemplate.Apply(prompts[i]));
            }
            catch (ArgumentException e)
            {
                throw new ArgumentException($"Column '{PromptColumnName}', row {firstRow + i}: {ExceptionMessages.WithoutParameter(e)}", nameof(PromptColumnName), e);
            }
            if (ids[i].Length >= Model.Options.MaxTextLength)
                throw new ArgumentException(
                    $"Column '{PromptColumnName}', row {firstRow + i}: the prompt needs {ids[i].Length} tokens (image marker included), leaving no room " +
                    $"to generate within the model's context of MaxTextLength = {Model.Options.MaxTextLength} tokens.", nameof(PromptColumnName));
        }
        return Model.Generate(images, ids, MaxNewTokens, Temperature, Temperature > 0 ? generator : null, topK: TopK, topP: TopP)
            .Select(Model.Tokenizer.Decode).ToArray();
    }

    private float[] AverageLogProbs(Tensor images, string[] prompts, string[] responses, long firstRow)
    {
        prompts = prompts.Select(PromptTemplate.Apply).ToArray();
        // Row by row first, so an error names the input row and its columns rather than a position in this batch.
        for (int i = 0; i < prompts.Length; i++)
            AlignmentColumns.CheckRow(Model.Tokenizer, firstRow + i, prompts[i], responses[i], PromptColumnName, ScoreResponseColumnName ?? "the responses",
                nameof(ScoreResponseColumnName), Model.Options.MaxTextLength);
        using (var texts = TextBatch.Build(Model.Tokenizer, prompts, responses, Model.Options.MaxTextLength, Model.Device))
        using (no_grad())
        {
            using var scope = NewDisposeScope();
            var logProbs = SequenceLogProbs.Compute(Model.forward(images, texts.InputIds), texts.Labels);
            return logProbs.Average().cpu().data<float>().ToArray();
        }
    }

    private sealed record RowInput(float[] Pixels, string Prompt, string? Scored);

    /// <summary>The transformer's one generation and scoring path, shared by Transform's cursors and prediction engines.</summary>
    private sealed class Scorer : BatchScorer<RowInput>
    {
        private readonly PreferenceTuningTransformer _owner;
        private readonly ImageColumns.ImageShape _shape;
        private readonly string? _scoredColumn;

        public Scorer(PreferenceTuningTransformer owner, ImageColumns.ImageShape shape)
        {
            _owner = owner;
            _shape = shape;
            _scoredColumn = owner.ScoreResponseColumnName;
            BatchSize = owner.GenerationBatchSize;
            Outputs = owner.OutputColumns();
        }

        public override IReadOnlyList<ScoredColumn> Outputs { get; }

        // Fixed when Transform is called, like the output columns.
        public override int BatchSize { get; }

        private bool Scoring(bool[] active) => _scoredColumn is not null && active.Length > 1 && active[1];

        public override IEnumerable<string> InputColumns(bool[] active) => Scoring(active)
            ? new[] { _owner.ImageColumnName, _owner.PromptColumnName, _scoredColumn! }
            : new[] { _owner.ImageColumnName, _owner.PromptColumnName };

        public override Func<long, RowInput> CreateReader(DataViewRow row, bool[] active)
        {
            var image = row.GetGetter<VBuffer<float>>(row.Schema[_owner.ImageColumnName]);
            var prompt = row.GetGetter<ReadOnlyMemory<char>>(row.Schema[_owner.PromptColumnName]);
            var scored = Scoring(active) ? row.GetGetter<ReadOnlyMemory<char>>(row.Schema[_scoredColumn!]) : null;
            VBuffer<float> buffer = default;
            ReadOnlyMemory<char> text = default;
            int size = _shape.Channels * _shape.Height * _shape.Width;
            return position =>
            {
                image(ref buffer);
                var pixels = new float[size];
                ImageColumns.ReadPixels(buffer, pixels, _owner.ImageColumnName, _shape, position);
                prompt(ref text);
                string promptText = text.ToString();
                string? scoredText = null;
                if (scored is not null)
                {
                    scored(ref text);
                    scoredText = text.ToString();
                }
                return new RowInput(pixels, promptText, scoredText);
            };
        }

        // A Transform cursor samples with one generator seeded with Seed; an engine with one per row (Seed and the row).
        public override object? CreateState(bool singleRows) => singleRows ? null : new Generator((ulong)_owner.Seed, _owner.Model.Device);

        public override Array?[] Score(IReadOnlyList<RowInput> rows, long firstRow, bool[] active, object? state)
        {
            int n = rows.Count, size = _shape.Channels * _shape.Height * _shape.Width;
            var pixels = new float[n * size];
            for (int i = 0; i < n; i++) rows[i].Pixels.CopyTo(pixels, i * size);
            var prompts = rows.Select(r => r.Prompt).ToArray();
            var results = new Array?[Outputs.Count];
            using var scope = NewDisposeScope();
            var images = _owner.ImageBatch(pixels, 0, n, _shape);
            if (active[0])
            {
                using var rowGenerator = state is null ? new Generator(unchecked((ulong)(_owner.Seed * 1_000_003L + firstRow)), _owner.Model.Device) : null;
                results[0] = _owner.Generate(images, prompts, firstRow, (Generator?)state ?? rowGenerator)
                    .Select(r => r.AsMemory()).ToArray();
            }
            if (Scoring(active))
                results[1] = _owner.AverageLogProbs(images, prompts, rows.Select(r => r.Scored!).ToArray(), firstRow);
            return results;
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
