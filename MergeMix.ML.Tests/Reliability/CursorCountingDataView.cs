using Microsoft.ML;

namespace MergeMix.ML.Tests.Reliability;

/// <summary>Wraps a data view and counts the cursors opened on it, to prove that an error came before any row was read.</summary>
internal sealed class CursorCountingDataView : IDataView
{
    private readonly IDataView inner;
    private int cursors;

    public CursorCountingDataView(IDataView inner) => this.inner = inner;

    public int Cursors => Volatile.Read(ref cursors);

    public bool CanShuffle => inner.CanShuffle;

    public DataViewSchema Schema => inner.Schema;

    public long? GetRowCount() => inner.GetRowCount();

    public DataViewRowCursor GetRowCursor(IEnumerable<DataViewSchema.Column> columnsNeeded, Random? rand = null)
    {
        Interlocked.Increment(ref cursors);
        return inner.GetRowCursor(columnsNeeded, rand);
    }

    public DataViewRowCursor[] GetRowCursorSet(IEnumerable<DataViewSchema.Column> columnsNeeded, int n, Random? rand = null)
    {
        Interlocked.Increment(ref cursors);
        return inner.GetRowCursorSet(columnsNeeded, n, rand);
    }
}
