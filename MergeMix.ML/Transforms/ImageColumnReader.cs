using MergeMix.ML.Data;
using Microsoft.ML;
using Microsoft.ML.Data;

namespace MergeMix.ML.Transforms;

/// <summary>Reads an image column (no label needed) into one contiguous buffer.</summary>
internal static class ImageColumnReader
{
    public static float[] ReadAll(IDataView data, string columnName, ImageColumns.ImageShape shape, out int count)
    {
        int size = shape.Channels * shape.Height * shape.Width;
        var column = data.Schema[columnName];
        var pixels = new List<float>();
        var row = new float[size];
        VBuffer<float> buffer = default;
        count = 0;
        using var cursor = data.GetRowCursor(new[] { column });
        var getter = cursor.GetGetter<VBuffer<float>>(column);
        while (cursor.MoveNext())
        {
            getter(ref buffer);
            ImageColumns.ReadPixels(buffer, row, columnName, shape, count);
            pixels.AddRange(row);
            count++;
        }
        return pixels.ToArray();
    }
}
