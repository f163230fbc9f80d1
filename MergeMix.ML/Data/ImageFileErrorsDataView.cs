using Microsoft.ML;
using Microsoft.ML.Data;

namespace MergeMix.ML.Data;

/// <summary>
/// The view of <see cref="ImageFolderLoader.Load"/>: passes everything through, but when reading fails because an
/// image file cannot be decoded it throws an <see cref="InvalidDataException"/> naming that file. ML.NET's own error
/// ("Invalid input stream contents", wrapped by its parallel cursors as a splitter/consolidator failure) names no
/// file, so a user with 50 000 images could not tell which one is broken.
/// </summary>
/// <remarks>ML.NET decodes rows ahead on worker threads, so the failing row is not the cursor's position; it is found
/// by decoding the files from that position on until one fails (rows are in file order: the path source cannot shuffle).</remarks>
internal sealed class ImageFileErrorsDataView : IDataView
{
    private readonly IDataView inner;
    private readonly IReadOnlyList<string> files;

    public ImageFileErrorsDataView(IDataView inner, IReadOnlyList<string> files)
    {
        this.inner = inner;
        this.files = files;
    }

    public bool CanShuffle => false;

    public DataViewSchema Schema => inner.Schema;

    public long? GetRowCount() => inner.GetRowCount();

    public DataViewRowCursor GetRowCursor(IEnumerable<DataViewSchema.Column> columnsNeeded, Random? rand = null) =>
        new Cursor(inner.GetRowCursor(columnsNeeded), files);

    public DataViewRowCursor[] GetRowCursorSet(IEnumerable<DataViewSchema.Column> columnsNeeded, int n, Random? rand = null) =>
        new[] { GetRowCursor(columnsNeeded) };

    /// <summary>The first file from row <paramref name="from"/> on that does not decode, with the decoder's reason.</summary>
    private static (string File, string Reason)? FirstUnreadable(IReadOnlyList<string> files, long from)
    {
        for (long row = Math.Max(0, from); row < files.Count; row++)
        {
            try
            {
                using var image = MLImage.CreateFromFile(files[(int)row]);
            }
            catch (Exception e) when (e is ArgumentException or IOException or UnauthorizedAccessException or InvalidOperationException)
            {
                return (files[(int)row], Runtime.ExceptionMessages.WithoutParameter(e));
            }
        }
        return null;
    }

    private sealed class Cursor : DataViewRowCursor
    {
        private readonly DataViewRowCursor inner;
        private readonly IReadOnlyList<string> files;

        public Cursor(DataViewRowCursor inner, IReadOnlyList<string> files)
        {
            this.inner = inner;
            this.files = files;
        }

        public override DataViewSchema Schema => inner.Schema;

        public override long Position => inner.Position;

        public override long Batch => inner.Batch;

        public override ValueGetter<DataViewRowId> GetIdGetter() => inner.GetIdGetter();

        public override bool IsColumnActive(DataViewSchema.Column column) => inner.IsColumnActive(column);

        public override bool MoveNext()
        {
            long from = inner.Position + 1;
            try
            {
                return inner.MoveNext();
            }
            catch (Exception e) when (Explain(e, from) is { } explained)
            {
                throw explained;
            }
        }

        public override ValueGetter<TValue> GetGetter<TValue>(DataViewSchema.Column column)
        {
            var getter = inner.GetGetter<TValue>(column);
            return (ref TValue value) =>
            {
                try
                {
                    getter(ref value);
                }
                catch (Exception e) when (Explain(e, inner.Position) is { } explained)
                {
                    throw explained;
                }
            };
        }

        private InvalidDataException? Explain(Exception error, long from)
        {
            if (error is OperationCanceledException or OutOfMemoryException) return null;
            if (FirstUnreadable(files, from) is not { } unreadable) return null;
            return new InvalidDataException($"Image file '{unreadable.File}' could not be read as an image ({unreadable.Reason}); replace or remove it.", error);
        }

        protected override void Dispose(bool disposing)
        {
            if (disposing) inner.Dispose();
            base.Dispose(disposing);
        }
    }
}
