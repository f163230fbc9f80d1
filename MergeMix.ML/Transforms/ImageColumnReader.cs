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
            buffer.CopyTo(row);
            foreach (float v in row)
                if (!float.IsFinite(v)) throw new InvalidOperationException($"Row {count}: column '{columnName}' contains a NaN or infinite pixel.");
            pixels.AddRange(row);
            count++;
        }
        return pixels.ToArray();
    }
}
