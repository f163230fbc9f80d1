using Microsoft.ML;
using Microsoft.ML.Data;

namespace MergeMix.ML.Transforms;

/// <summary>A view computed from another one; lets lineage walks (<see cref="DataLineage"/>) pass through our own views.</summary>
internal interface IDerivedDataView
{
    IDataView Source { get; }
}

/// <summary>The views a data view was derived from, through ML.NET's transforms (IDataTransform) and ours.</summary>
internal static class DataLineage
{
    public static IEnumerable<IDataView> SelfAndAncestors(IDataView view)
    {
        var seen = new HashSet<IDataView>(ReferenceEqualityComparer.Instance);
        for (IDataView? current = view; current is not null && seen.Add(current);)
        {
            yield return current;
            current = current is IDerivedDataView derived ? derived.Source : MlNetSource(current);
        }
    }

    // ML.NET's transform views expose their input through IDataTransform.Source, an internal interface: read by reflection,
    // and a lineage that cannot be followed simply ends there.
    private static readonly System.Reflection.PropertyInfo? TransformSource = new[] { typeof(Microsoft.ML.Runtime.IHostEnvironment).Assembly, typeof(MLContext).Assembly, typeof(IDataView).Assembly }
        .Select(a => a.GetType("Microsoft.ML.Data.IDataTransform")).FirstOrDefault(t => t is not null)?.GetProperty("Source");

    private static IDataView? MlNetSource(IDataView view)
    {
        if (TransformSource?.DeclaringType is not { } transform || !transform.IsInstanceOfType(view)) return null;
        try
        {
            return TransformSource.GetValue(view) as IDataView;
        }
        catch (System.Reflection.TargetInvocationException)
        {
            return null;
        }
    }
}

/// <summary>An output column of a <see cref="BatchScorer{TInput}"/>.</summary>
internal sealed record ScoredColumn(string Name, DataViewType Type, DataViewSchema.Annotations? Annotations = null) : IAppendedColumn;

/// <summary>
/// The one scoring path of a model transformer: which input columns it reads, how one row's inputs are read and
/// validated, and how a batch of rows is scored. <see cref="BatchScoredDataView{TInput}"/> (Transform: lazy, a batch at
/// a time) and <see cref="BatchScoringRowMapper{TInput}"/> (prediction engines: one row) both run through it, so no entry
/// point is less strict than another and both give the same values.
/// </summary>
/// <typeparam name="TInput">One row's validated inputs.</typeparam>
internal abstract class BatchScorer<TInput>
{
    /// <summary>Columns written, in schema order.</summary>
    public abstract IReadOnlyList<ScoredColumn> Outputs { get; }

    /// <summary>Rows scored together by a Transform cursor (≥ 1).</summary>
    public abstract int BatchSize { get; }

    /// <summary>Names of the input columns needed to compute the outputs flagged in <paramref name="active"/>.</summary>
    public abstract IEnumerable<string> InputColumns(bool[] active);

    /// <summary>
    /// A reader of the current row of <paramref name="row"/>: it reads and validates that row's inputs; its argument is the
    /// row number used in error messages.
    /// </summary>
    public abstract Func<long, TInput> CreateReader(DataViewRow row, bool[] active);

    /// <summary>Per-cursor (or per-engine-row) state such as a sampling generator; disposed with it when disposable.</summary>
    public virtual object? CreateState(bool singleRows) => null;

    /// <summary>
    /// Scores <paramref name="rows"/> (row numbers from <paramref name="firstRow"/>): one array per output column (null for
    /// inactive ones), element type = the column's getter type, one element per row.
    /// </summary>
    public abstract Array?[] Score(IReadOnlyList<TInput> rows, long firstRow, bool[] active, object? state);

    internal bool[] ActiveOutputs(Func<string, bool> isActive) => Outputs.Select(o => isActive(o.Name)).ToArray();
}

/// <summary>
/// The lazy result of a model transformer's <c>Transform</c>: every source column passes through and the scorer's columns
/// are computed a batch of <see cref="BatchScorer{TInput}.BatchSize"/> rows at a time, only when a cursor asks for them.
/// </summary>
/// <remarks>
/// A cursor reads the scoring inputs with a second source cursor that runs at most one batch ahead of the pass-through
/// one; IDataView guarantees that cursors without a random source visit the same rows in the same order.
/// </remarks>
internal sealed class BatchScoredDataView<TInput> : IDataView, IDerivedDataView
{
    private readonly IDataView _source;
    private readonly BatchScorer<TInput> _scorer;
    private readonly AppendedSchema _layout;

    public BatchScoredDataView(IDataView source, BatchScorer<TInput> scorer)
    {
        _source = source;
        _scorer = scorer;
        _layout = new AppendedSchema(source.Schema, scorer.Outputs);
    }

    public IDataView Source => _source;

    public bool CanShuffle => false;

    public DataViewSchema Schema => _layout.Schema;

    public long? GetRowCount() => _source.GetRowCount();

    public DataViewRowCursor GetRowCursor(IEnumerable<DataViewSchema.Column> columnsNeeded, Random? rand = null)
    {
        var needed = columnsNeeded.ToArray();
        var active = new bool[_scorer.Outputs.Count];
        foreach (var c in needed)
            if (_layout.AppendedIndexOfOutput[c.Index] >= 0) active[_layout.AppendedIndexOfOutput[c.Index]] = true;
        var passThrough = _layout.SourceColumns(needed);
        DataViewRowCursor? ahead = null;
        if (active.Any(a => a))
        {
            var inputs = _scorer.InputColumns(active).Select(n => _source.Schema[n]);
            ahead = _source.GetRowCursor(inputs);
        }
        return new Cursor(this, _source.GetRowCursor(passThrough), ahead, active);
    }

    public DataViewRowCursor[] GetRowCursorSet(IEnumerable<DataViewSchema.Column> columnsNeeded, int n, Random? rand = null) =>
        new[] { GetRowCursor(columnsNeeded, rand) };

    private sealed class Cursor : DataViewRowCursor
    {
        private readonly BatchScoredDataView<TInput> _view;
        private readonly DataViewRowCursor _input;
        private readonly DataViewRowCursor? _ahead;
        private readonly Func<long, TInput>? _read;
        private readonly bool[] _active;
        private readonly object? _state;
        private readonly List<TInput> _batchInputs = new();
        private Array?[] _batch = Array.Empty<Array?>();
        private long _batchStart, _batchCount;
        private long _position = -1;

        public Cursor(BatchScoredDataView<TInput> view, DataViewRowCursor input, DataViewRowCursor? ahead, bool[] active)
        {
            _view = view;
            _input = input;
            _ahead = ahead;
            _active = active;
            if (ahead is not null)
            {
                _read = view._scorer.CreateReader(ahead, active);
                _state = view._scorer.CreateState(singleRows: false);
            }
        }

        public override DataViewSchema Schema => _view.Schema;

        public override long Position => _position;

        public override long Batch => 0;

        public override bool MoveNext()
        {
            if (!_input.MoveNext()) return false;
            _position++;
            return true;
        }

        public override ValueGetter<DataViewRowId> GetIdGetter() => _input.GetIdGetter();

        public override bool IsColumnActive(DataViewSchema.Column column)
        {
            int source = _view._layout.SourceIndexOfOutput[column.Index];
            return source < 0 ? _active[_view._layout.AppendedIndexOfOutput[column.Index]] : _input.IsColumnActive(_input.Schema[source]);
        }

        public override ValueGetter<TValue> GetGetter<TValue>(DataViewSchema.Column column)
        {
            int source = _view._layout.SourceIndexOfOutput[column.Index];
            if (source >= 0) return _input.GetGetter<TValue>(_input.Schema[source]);
            int output = _view._layout.AppendedIndexOfOutput[column.Index];
            var scored = _view._scorer.Outputs[output];
            if (!_active[output])
                throw new InvalidOperationException($"Column '{scored.Name}' was not requested when the cursor was created.");
            return (ref TValue value) =>
            {
                if (_position < 0) throw new InvalidOperationException("The cursor is not on a row: call MoveNext first.");
                if (_position >= _batchStart + _batchCount || _position < _batchStart) ScoreBatchAt(_position);
                ScoredValues.Get(_batch[output], (int)(_position - _batchStart), ref value, scored);
            };
        }

        // Reads the inputs of rows position .. position + BatchSize - 1 with the look-ahead cursor and scores them.
        private void ScoreBatchAt(long position)
        {
            var ahead = _ahead!;
            while (ahead.Position < position - 1)
                if (!ahead.MoveNext()) throw Nondeterministic();
            _batchInputs.Clear();
            while (_batchInputs.Count < _view._scorer.BatchSize && ahead.MoveNext())
                _batchInputs.Add(_read!(ahead.Position));
            if (_batchInputs.Count == 0) throw Nondeterministic();
            _batchStart = position;
            _batchCount = _batchInputs.Count;
            _batch = _view._scorer.Score(_batchInputs, position, _active, _state);
        }

        private static InvalidOperationException Nondeterministic() =>
            new("The source data view returned fewer rows to a second cursor than to the first; it must be deterministic.");

        protected override void Dispose(bool disposing)
        {
            if (disposing)
            {
                _input.Dispose();
                _ahead?.Dispose();
                (_state as IDisposable)?.Dispose();
            }
            base.Dispose(disposing);
        }
    }
}

internal static class ScoredValues
{
    /// <summary>
    /// Hands out one scored value. Vectors are copied into the caller's buffer (ML.NET callers may write into the buffer
    /// they get back, which must not change what a second read of the row returns).
    /// </summary>
    public static void Get<T>(Array? values, int index, ref T value, ScoredColumn column)
    {
        if (values is VBuffer<float>[] vectors && typeof(T) == typeof(VBuffer<float>))
        {
            vectors[index].CopyTo(ref System.Runtime.CompilerServices.Unsafe.As<T, VBuffer<float>>(ref value));
            return;
        }
        if (values is not T[] typed)
            throw new InvalidOperationException($"Column '{column.Name}' is of type {column.Type}, not {typeof(T).Name}.");
        value = typed[index];
    }
}

/// <summary>The prediction-engine side of a <see cref="BatchScorer{TInput}"/>: scores the current input row alone.</summary>
internal sealed class BatchScoringRowMapper<TInput> : IRowToRowMapper
{
    private readonly BatchScorer<TInput> _scorer;

    public BatchScoringRowMapper(BatchScorer<TInput> scorer, DataViewSchema input, DataViewSchema output)
    {
        _scorer = scorer;
        InputSchema = input;
        OutputSchema = output;
    }

    public DataViewSchema InputSchema { get; }

    public DataViewSchema OutputSchema { get; }

    public IEnumerable<DataViewSchema.Column> GetDependencies(IEnumerable<DataViewSchema.Column> dependingColumns)
    {
        var needed = dependingColumns.Select(c => c.Name).ToHashSet();
        var active = _scorer.ActiveOutputs(needed.Contains);
        var inputs = active.Any(a => a) ? _scorer.InputColumns(active).ToHashSet() : new HashSet<string>();
        var outputs = _scorer.Outputs.Select(o => o.Name).ToHashSet();
        return InputSchema.Where(c => (needed.Contains(c.Name) && !outputs.Contains(c.Name)) || inputs.Contains(c.Name));
    }

    public DataViewRow GetRow(DataViewRow input, IEnumerable<DataViewSchema.Column> activeColumns)
    {
        var active = _scorer.ActiveOutputs(name => activeColumns.Any(c => c.Name == name));
        return new Row(_scorer, input, OutputSchema, active);
    }

    private sealed class Row : DataViewRow
    {
        private readonly BatchScorer<TInput> _scorer;
        private readonly DataViewRow _input;
        private readonly DataViewSchema _schema;
        private readonly bool[] _active;
        private readonly Func<long, TInput>? _read;
        private readonly object? _state;
        private readonly Dictionary<string, int> _outputIndex;
        private long _scoredPosition = -1;
        private Array?[] _values = Array.Empty<Array?>();

        public Row(BatchScorer<TInput> scorer, DataViewRow input, DataViewSchema schema, bool[] active)
        {
            _scorer = scorer;
            _input = input;
            _schema = schema;
            _active = active;
            _outputIndex = scorer.Outputs.Select((o, i) => (o.Name, i)).ToDictionary(p => p.Name, p => p.i);
            if (active.Any(a => a))
            {
                _read = scorer.CreateReader(input, active);
                _state = scorer.CreateState(singleRows: true);
            }
        }

        public override DataViewSchema Schema => _schema;

        public override long Position => _input.Position;

        public override long Batch => _input.Batch;

        public override ValueGetter<DataViewRowId> GetIdGetter() => _input.GetIdGetter();

        public override bool IsColumnActive(DataViewSchema.Column column) =>
            _outputIndex.TryGetValue(column.Name, out int i) ? _active[i] : _input.IsColumnActive(_input.Schema[column.Name]);

        public override ValueGetter<T> GetGetter<T>(DataViewSchema.Column column)
        {
            if (!_outputIndex.TryGetValue(column.Name, out int output)) return _input.GetGetter<T>(_input.Schema[column.Name]);
            if (!_active[output]) throw new InvalidOperationException($"Column '{column.Name}' is not active.");
            return (ref T value) =>
            {
                if (_scoredPosition != _input.Position)
                {
                    // Forget the previous row first: a row that fails validation must never hand back its predecessor's values.
                    _scoredPosition = -1;
                    _values = _scorer.Score(new[] { _read!(_input.Position) }, _input.Position, _active, _state);
                    _scoredPosition = _input.Position;
                }
                ScoredValues.Get(_values[output], 0, ref value, _scorer.Outputs[output]);
            };
        }

        protected override void Dispose(bool disposing)
        {
            if (disposing) (_state as IDisposable)?.Dispose();
            base.Dispose(disposing);
        }
    }
}
