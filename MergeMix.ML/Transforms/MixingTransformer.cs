using MergeMix.ML.Data;
using MergeMix.ML.Mixing;
using MergeMix.ML.Runtime;
using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.Transforms;
using System.Runtime.CompilerServices;
using Microsoft.ML.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace MergeMix.ML.Transforms;

/// <summary>
/// The fitted mixer. <see cref="Transform"/> mixes every row with a partner row (deterministically for the seed) and
/// adds the soft-label and mix-ratio columns; at prediction time it is an identity row mapper, so
/// <c>CreatePredictionEngine</c> works on a chain that contains it.
/// </summary>
/// <remarks>
/// The mix is computed once per <see cref="Transform"/> call: an offline transform gives one fixed augmented copy of the
/// data. For fresh mixes every epoch use the mixing option of the ViT trainer (online mixing).
/// </remarks>
public sealed class MixingTransformer : ITransformer
{
    private readonly MixingEstimator.Options _options;
    private readonly IReadOnlyList<string> _classNames;
    private readonly IHostEnvironment? _environment;

    // Every view a mixer transformed, with its ancestors: lets a trainer that misses the soft labels tell that a mixer ran
    // on its data but its output was dropped (a nested chain), rather than that no mixer was there.
    private static readonly ConditionalWeakTable<IDataView, string> Transformed = new();

    internal MixingTransformer(MixingEstimator.Options options, IMixPolicy policy, IAttentionSource? attention, IReadOnlyList<string> classNames,
        IHostEnvironment? environment = null)
    {
        _options = options;
        _environment = environment;
        Policy = policy;
        AttentionSource = attention;
        _classNames = classNames;
    }

    /// <summary>The policy this transformer applies.</summary>
    public IMixPolicy Policy { get; }

    /// <summary>The attention used by MergeMix/TransMix (the trained ViT when <c>Fit</c> trained one), else null.</summary>
    public IAttentionSource? AttentionSource { get; }

    /// <summary>True: at prediction time the mixer is an identity mapping (mixing needs a batch of labelled rows).</summary>
    public bool IsRowToRowMapper => true;

    /// <inheritdoc />
    public DataViewSchema GetOutputSchema(DataViewSchema inputSchema)
    {
        ImageColumns.ValidateImageColumn(inputSchema, _options.InputColumnName);
        ValidateLabel(inputSchema);
        var view = new AppendedColumnsDataView(new EmptyDataView(inputSchema), 0, OutputColumns(inputSchema, Array.Empty<float[]>(), Array.Empty<float[]>(), Array.Empty<float>()));
        return view.Schema;
    }

    /// <inheritdoc />
    public IDataView Transform(IDataView input)
    {
        ArgumentNullException.ThrowIfNull(input);
        ValidateLabel(input.Schema);
        var set = LabeledImageSet.FromDataView(input, _options.InputColumnName, _options.LabelColumnName);
        if (set.Count < 2)
            throw new InvalidOperationException($"Mixing needs at least 2 rows, but the data has {set.Count}.");
        if (AttentionSource is { PatchSize: var patch } && (set.Height % patch != 0 || set.Width % patch != 0))
            throw new ArgumentOutOfRangeException(_options.InputColumnName,
                $"Column '{_options.InputColumnName}' holds {set.Height}×{set.Width} images, which the attention source's {patch}-pixel patches do not divide; resize the images (ResizeImages) to a multiple of {patch}.");
        var (mixed, soft, lambda) = Mix(set);
        foreach (var view in DataLineage.SelfAndAncestors(input)) Transformed.AddOrUpdate(view, Policy.Name);
        return new AppendedColumnsDataView(input, set.Count, WarnIfSoftLabelsAreSkipped(), OutputColumns(input.Schema, mixed, soft, lambda));
    }

    /// <summary>The name of a mixer's policy when a mixer transformed <paramref name="data"/> or a view it derives from, else null.</summary>
    internal static string? MixerThatTransformed(IDataView data)
    {
        foreach (var view in DataLineage.SelfAndAncestors(data))
            if (Transformed.TryGetValue(view, out var policy)) return policy;
        return null;
    }

    // A consumer that reads the mixed images but never the soft labels (a hard-label trainer) learns each mixed image with
    // the row's own label; say so once, through the ML.NET log. A consumer that reads the soft labels first is not warned.
    private Action<IReadOnlyCollection<DataViewSchema.Column>>? WarnIfSoftLabelsAreSkipped()
    {
        if (_environment is null || _options.WriteMajorityLabel) return null;
        string image = _options.OutputColumnName ?? _options.InputColumnName, soft = _options.SoftLabelColumnName;
        int warned = 0, softRead = 0;
        return columns =>
        {
            if (columns.Any(c => c.Name == soft)) Volatile.Write(ref softRead, 1);
            if (Volatile.Read(ref softRead) == 1 || !columns.Any(c => c.Name == image) || Interlocked.Exchange(ref warned, 1) == 1) return;
            using var channel = _environment.Start("MixingTransformer");
            channel.Warning(MessageSensitivity.None,
                "The mixed images in '{0}' ({1}) are read without its soft labels '{2}': a trainer that reads only the key label '{3}' learns every " +
                "mixed image with the row's own class, even when λ < 0.5 and most of it is the partner. Use a trainer that reads '{2}' " +
                "(VisionTransformer with SoftLabelColumnName = \"{2}\"), or set MixingEstimator.Options.WriteMajorityLabel = true to write each " +
                "row's majority class into '{3}'.", image, Policy.Name, soft, _options.LabelColumnName);
        };
    }

    /// <summary>An identity mapper: prediction-time rows pass through unmixed.</summary>
    public IRowToRowMapper GetRowToRowMapper(DataViewSchema inputSchema) => new IdentityRowMapper(inputSchema);

    /// <summary>
    /// Writes the mixer into an ML.NET model file as an empty <see cref="TransformerChain{TLastTransformer}"/>: ML.NET's own
    /// identity, which loads without this library (a <c>CustomMapping</c> would need our assembly's factory at load time).
    /// A saved and re-loaded chain predicts exactly as the fitted one, but re-training from the loaded file will not mix.
    /// Keep your pipeline definition (estimators) to re-train with mixing.
    /// </summary>
    void ICanSaveModel.Save(ModelSaveContext ctx) => ((ICanSaveModel)new TransformerChain<ITransformer>()).Save(ctx);

    private (float[][] Mixed, float[][] Soft, float[] Lambda) Mix(LabeledImageSet set)
    {
        var device = TorchDevice.Resolve(_options.Device, nameof(MixingEstimator.Options.Device));
        int n = set.Count, size = set.ImageSize, classes = _classNames.Count;
        var mixed = new float[n][];
        var soft = new float[n][];
        var lambda = new float[n];
        var order = Enumerable.Range(0, n).ToArray();
        new Random(_options.Seed).Shuffle(order);
        using var generator = new Generator((ulong)_options.Seed, device);

        foreach (var (start, count) in Batches(n, _options.BatchSize))
        {
            using var scope = NewDisposeScope();
            var pixels = new float[count * size];
            var labels = new long[count];
            for (int b = 0; b < count; b++)
            {
                set.Image(order[start + b]).CopyTo(pixels.AsSpan(b * size, size));
                labels[b] = set.Labels[order[start + b]];
            }
            var images = tensor(pixels, new long[] { count, set.Channels, set.Height, set.Width }, device: device);
            using var result = Policy.Mix(images, tensor(labels, device: device), classes, generator, AttentionSource);
            var mixedRows = result.Mixed.cpu().contiguous().data<float>().ToArray();
            var softRows = result.SoftLabels.cpu().contiguous().data<float>().ToArray();
            var lambdaRows = result.Lambda.cpu().data<float>().ToArray();
            for (int b = 0; b < count; b++)
            {
                int row = order[start + b];
                mixed[row] = mixedRows.AsSpan(b * size, size).ToArray();
                soft[row] = softRows.AsSpan(b * classes, classes).ToArray();
                lambda[row] = lambdaRows[b];
            }
        }
        return (mixed, soft, lambda);
    }

    /// <summary>Consecutive groups of at most <paramref name="batchSize"/>; a trailing single row joins the group before it.</summary>
    internal static IEnumerable<(int Start, int Count)> Batches(int n, int batchSize)
    {
        for (int start = 0; start < n; start += batchSize)
        {
            int count = Math.Min(batchSize, n - start);
            if (n - (start + count) == 1) count++;
            yield return (start, count);
            if (count > batchSize) yield break;
        }
    }

    private AppendedColumnsDataView.ComputedColumn[] OutputColumns(DataViewSchema inputSchema, float[][] mixed, float[][] soft, float[] lambda)
    {
        var imageColumn = inputSchema[_options.InputColumnName];
        var slotNames = new DataViewSchema.Annotations.Builder();
        slotNames.Add("SlotNames", new VectorDataViewType(TextDataViewType.Instance, _classNames.Count),
            (ref VBuffer<ReadOnlyMemory<char>> value) => value = ImageColumns.KeyValues(_classNames));
        var columns = new AppendedColumnsDataView.ComputedColumn[]
        {
            new(_options.OutputColumnName ?? _options.InputColumnName, imageColumn.Type,
                new Func<long, VBuffer<float>>(r => new VBuffer<float>(mixed[r].Length, mixed[r]))),
            new(_options.SoftLabelColumnName, new VectorDataViewType(NumberDataViewType.Single, _classNames.Count),
                new Func<long, VBuffer<float>>(r => new VBuffer<float>(soft[r].Length, soft[r])), slotNames.ToAnnotations()),
            new(_options.MixRatioColumnName, NumberDataViewType.Single, new Func<long, float>(r => lambda[r])),
        };
        if (!_options.WriteMajorityLabel) return columns;
        var label = inputSchema[_options.LabelColumnName];
        return columns.Append(new AppendedColumnsDataView.ComputedColumn(label.Name, label.Type,
            new Func<long, uint>(r => soft.Length == 0 ? 0 : MajorityKey(soft[r])), label.Annotations)).ToArray();
    }

    // Key (1-based) of the largest soft label; ties go to the lower class, as ArgMax does elsewhere.
    private static uint MajorityKey(float[] soft)
    {
        int best = 0;
        for (int k = 1; k < soft.Length; k++) if (soft[k] > soft[best]) best = k;
        return (uint)best + 1;
    }

    private void ValidateLabel(DataViewSchema schema)
    {
        var names = ImageColumns.ValidateKeyLabel(schema, _options.LabelColumnName);
        if (names.Count != _classNames.Count)
            throw new ArgumentOutOfRangeException(_options.LabelColumnName,
                $"Label column '{_options.LabelColumnName}' has {names.Count} classes, but the mixer was fitted with {_classNames.Count}.");
        ImageColumns.CheckKeyNames(schema[_options.LabelColumnName], _classNames, "the mixer's fitting data", _options.LabelColumnName);
    }

    private sealed class IdentityRowMapper : IRowToRowMapper
    {
        public IdentityRowMapper(DataViewSchema schema) => InputSchema = schema;

        public DataViewSchema InputSchema { get; }

        public DataViewSchema OutputSchema => InputSchema;

        public IEnumerable<DataViewSchema.Column> GetDependencies(IEnumerable<DataViewSchema.Column> dependingColumns) => dependingColumns;

        public DataViewRow GetRow(DataViewRow input, IEnumerable<DataViewSchema.Column> activeColumns) => input;
    }

    private sealed class EmptyDataView : IDataView
    {
        public EmptyDataView(DataViewSchema schema) => Schema = schema;
        public bool CanShuffle => false;
        public DataViewSchema Schema { get; }
        public long? GetRowCount() => 0;
        public DataViewRowCursor GetRowCursor(IEnumerable<DataViewSchema.Column> columnsNeeded, Random? rand = null) =>
            throw new NotSupportedException("Schema-only view.");
        public DataViewRowCursor[] GetRowCursorSet(IEnumerable<DataViewSchema.Column> columnsNeeded, int n, Random? rand = null) =>
            throw new NotSupportedException("Schema-only view.");
    }
}
