using Microsoft.ML;
using Microsoft.ML.Data;

namespace MergeMix.ML.Transforms;

/// <summary>
/// An <see cref="IDataView"/> that passes every column of its source through and adds (or replaces) columns whose
/// values were computed up front, one per source row, in the source's cursor order.
/// </summary>
/// <remarks>
/// Mixing pairs rows, so its results cannot be produced row by row; computing them eagerly and re-attaching them by
/// row position keeps every other column of the user's data (paths, ids, ...) intact without copying it.
/// Relies on IDataView's guarantee that unshuffled cursors visit rows in the same order.
/// </remarks>
internal sealed class AppendedColumnsDataView : IDataView, IDerivedDataView
{
    private readonly IDataView _source;
    private readonly ComputedColumn[] _computed;
    private readonly AppendedSchema _layout;
    private readonly long _rowCount;
    private readonly Action<IReadOnlyCollection<DataViewSchema.Column>>? _onCursor;

    /// <summary>A column to add: its name, type, optional annotations and a getter of the value of row <c>r</c>.</summary>
    internal sealed record ComputedColumn(string Name, DataViewType Type, Delegate ValueOfRow, DataViewSchema.Annotations? Annotations = null) : IAppendedColumn;

    public AppendedColumnsDataView(IDataView source, long rowCount, params ComputedColumn[] computed) : this(source, rowCount, null, computed)
    {
    }

    /// <param name="source">The data whose columns pass through.</param>
    /// <param name="rowCount">Rows of <paramref name="source"/>.</param>
    /// <param name="onCursor">Called with the columns every new cursor reads (e.g. to tell whether a consumer reads the soft labels).</param>
    /// <param name="computed">The added columns.</param>
    public AppendedColumnsDataView(IDataView source, long rowCount, Action<IReadOnlyCollection<DataViewSchema.Column>>? onCursor, params ComputedColumn[] computed)
    {
        _onCursor = onCursor;
        _source = source;
        _computed = computed;
        _rowCount = rowCount;
        _layout = new AppendedSchema(source.Schema, computed);
    }

    public IDataView Source => _source;

    public bool CanShuffle => false;

    public DataViewSchema Schema => _layout.Schema;

    public long? GetRowCount() => _rowCount;

    public DataViewRowCursor GetRowCursor(IEnumerable<DataViewSchema.Column> columnsNeeded, Random? rand = null)
    {
        columnsNeeded = columnsNeeded.ToArray();
        _onCursor?.Invoke((IReadOnlyCollection<DataViewSchema.Column>)columnsNeeded);
        return new Cursor(this, _source.GetRowCursor(_layout.SourceColumns(columnsNeeded)));
    }

    public DataViewRowCursor[] GetRowCursorSet(IEnumerable<DataViewSchema.Column> columnsNeeded, int n, Random? rand = null) =>
        new[] { GetRowCursor(columnsNeeded, rand) };

    private sealed class Cursor : DataViewRowCursor
    {
        private readonly AppendedColumnsDataView _view;
        private readonly DataViewRowCursor _input;
        private long _position = -1;

        public Cursor(AppendedColumnsDataView view, DataViewRowCursor input)
        {
            _view = view;
            _input = input;
        }

        public override DataViewSchema Schema => _view.Schema;

        public override long Position => _position;

        public override long Batch => 0;

        public override bool MoveNext()
        {
            if (!_input.MoveNext()) return false;
            _position++;
            if (_position >= _view._rowCount)
                throw new InvalidOperationException("The source data view returned more rows than when the mixed columns were computed; it must be deterministic.");
            return true;
        }

        public override ValueGetter<DataViewRowId> GetIdGetter() => _input.GetIdGetter();

        public override bool IsColumnActive(DataViewSchema.Column column)
        {
            int source = _view._layout.SourceIndexOfOutput[column.Index];
            return source < 0 || _input.IsColumnActive(_input.Schema[source]);
        }

        public override ValueGetter<TValue> GetGetter<TValue>(DataViewSchema.Column column)
        {
            int source = _view._layout.SourceIndexOfOutput[column.Index];
            if (source >= 0) return _input.GetGetter<TValue>(_input.Schema[source]);
            var computed = _view._computed[_view._layout.AppendedIndexOfOutput[column.Index]];
            if (computed.ValueOfRow is not Func<long, TValue> valueOfRow)
                throw new InvalidOperationException($"Column '{column.Name}' is of type {computed.Type}, not {typeof(TValue).Name}.");
            return (ref TValue value) => value = valueOfRow(_position);
        }

        protected override void Dispose(bool disposing)
        {
            if (disposing) _input.Dispose();
            base.Dispose(disposing);
        }
    }
}

/// <summary>A column that a view adds after (or in place of) its source's columns.</summary>
internal interface IAppendedColumn
{
    string Name { get; }
    DataViewType Type { get; }
    DataViewSchema.Annotations? Annotations { get; }
}

/// <summary>
/// The schema of a view that passes its source's visible columns through, less those an appended column of the same name
/// replaces, and appends its own columns after them; and where each output column comes from.
/// </summary>
internal sealed class AppendedSchema
{
    private readonly DataViewSchema _source;

    public AppendedSchema(DataViewSchema source, IReadOnlyList<IAppendedColumn> appended)
    {
        _source = source;
        var names = appended.Select(c => c.Name).ToHashSet();
        var builder = new DataViewSchema.Builder();
        var sourceIndex = new List<int>();
        var appendedIndex = new List<int>();
        foreach (var column in source)
        {
            if (names.Contains(column.Name) || column.IsHidden) continue;
            builder.AddColumn(column.Name, column.Type, column.Annotations);
            sourceIndex.Add(column.Index);
            appendedIndex.Add(-1);
        }
        for (int i = 0; i < appended.Count; i++)
        {
            builder.AddColumn(appended[i].Name, appended[i].Type, appended[i].Annotations);
            sourceIndex.Add(-1);
            appendedIndex.Add(i);
        }
        Schema = builder.ToSchema();
        SourceIndexOfOutput = sourceIndex.ToArray();
        AppendedIndexOfOutput = appendedIndex.ToArray();
    }

    public DataViewSchema Schema { get; }

    /// <summary>The source column index of each output column; -1 for appended ones.</summary>
    public int[] SourceIndexOfOutput { get; }

    /// <summary>The index in the appended columns of each output column; -1 for passed-through ones.</summary>
    public int[] AppendedIndexOfOutput { get; }

    /// <summary>The source columns that the passed-through columns among <paramref name="columnsNeeded"/> read.</summary>
    public IEnumerable<DataViewSchema.Column> SourceColumns(IEnumerable<DataViewSchema.Column> columnsNeeded) =>
        columnsNeeded.Select(c => SourceIndexOfOutput[c.Index]).Where(i => i >= 0).Select(i => _source[i]);
}
