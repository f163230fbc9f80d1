using Microsoft.ML;
using Microsoft.ML.Data;

namespace MergeMix.ML.Data;

/// <summary>Validation and schema helpers for image and label columns, shared by the mixers, trainers and readers.</summary>
public static class ImageColumns
{
    /// <summary>Shape of an image column.</summary>
    /// <param name="Channels">Number of channels.</param>
    /// <param name="Height">Height in pixels.</param>
    /// <param name="Width">Width in pixels.</param>
    public readonly record struct ImageShape(int Channels, int Height, int Width);

    /// <summary>
    /// Checks that <paramref name="columnName"/> exists and is a known-size <c>Vector&lt;Single&gt;</c> holding a planar
    /// CHW image, and returns its shape. The shape comes from the vector's dims (C, H, W) when it has three, otherwise
    /// from <paramref name="height"/>/<paramref name="width"/> (3 channels assumed when neither tells).
    /// </summary>
    public static ImageShape ValidateImageColumn(DataViewSchema schema, string columnName, int? height = null, int? width = null)
    {
        var column = schema.GetColumnOrNull(columnName)
            ?? throw new ArgumentOutOfRangeException(nameof(columnName),
                $"Image column '{columnName}' not found. Available columns: {string.Join(", ", schema.Select(c => c.Name))}.");
        if (column.Type is not VectorDataViewType { ItemType: NumberDataViewType } vector || vector.ItemType != NumberDataViewType.Single || !vector.IsKnownSize)
            throw new ArgumentOutOfRangeException(nameof(columnName),
                $"Image column '{columnName}' must be a known-size vector of Single (as ExtractPixels produces), but is {column.Type}.");
        return ShapeOf(columnName, vector, height, width);
    }

    /// <summary>Same as <see cref="ValidateImageColumn(DataViewSchema, string, int?, int?)"/> for an estimator's input <see cref="SchemaShape"/>.</summary>
    public static void ValidateImageColumn(SchemaShape inputSchema, string columnName)
    {
        if (!TryFind(inputSchema, columnName, out var column))
            throw new ArgumentOutOfRangeException(nameof(columnName),
                $"Image column '{columnName}' not found. Available columns: {string.Join(", ", inputSchema.Select(c => c.Name))}.");
        if (column.Kind != SchemaShape.Column.VectorKind.Vector || column.ItemType != NumberDataViewType.Single)
            throw new ArgumentOutOfRangeException(nameof(columnName),
                $"Image column '{columnName}' must be a known-size vector of Single (as ExtractPixels produces), but is {column.Kind} of {column.ItemType}.");
    }

    /// <summary>Checks that <paramref name="columnName"/> is a key-typed label column (see <see cref="ValidateKeyLabel(DataViewSchema, string)"/>).</summary>
    public static void ValidateKeyLabel(SchemaShape inputSchema, string columnName)
    {
        if (!TryFind(inputSchema, columnName, out var column))
            throw new ArgumentOutOfRangeException(nameof(columnName),
                $"Label column '{columnName}' not found. Available columns: {string.Join(", ", inputSchema.Select(c => c.Name))}.");
        if (!column.IsKey || column.Kind != SchemaShape.Column.VectorKind.Scalar)
            throw new ArgumentOutOfRangeException(nameof(columnName),
                $"Label column '{columnName}' must be a key type (use mlContext.Transforms.Conversion.MapValueToKey(\"{columnName}\")), but is {column.Kind} of {column.ItemType}.");
    }

    /// <summary>
    /// Checks that <paramref name="columnName"/> exists and is a scalar <c>Key&lt;UInt32&gt;</c> of known cardinality, and
    /// returns its class names (its KeyValues annotation, or "0".."K-1" when it has none).
    /// </summary>
    public static IReadOnlyList<string> ValidateKeyLabel(DataViewSchema schema, string columnName)
    {
        var column = schema.GetColumnOrNull(columnName)
            ?? throw new ArgumentOutOfRangeException(nameof(columnName),
                $"Label column '{columnName}' not found. Available columns: {string.Join(", ", schema.Select(c => c.Name))}.");
        if (column.Type is not KeyDataViewType key || key.RawType != typeof(uint) || key.Count == 0)
            throw new ArgumentOutOfRangeException(nameof(columnName),
                $"Label column '{columnName}' must be a key type of known cardinality (use mlContext.Transforms.Conversion.MapValueToKey(\"{columnName}\")), but is {column.Type}.");
        if (key.Count < 2 || key.Count > int.MaxValue)
            throw new ArgumentOutOfRangeException(nameof(columnName), $"Label column '{columnName}' has {key.Count} classes; need at least 2.");
        return ClassNamesOf(column);
    }

    /// <summary>The text KeyValues of a key column, or "0".."K-1" when it has none (or non-text ones).</summary>
    public static IReadOnlyList<string> ClassNamesOf(DataViewSchema.Column keyColumn)
    {
        int count = (int)((KeyDataViewType)keyColumn.Type).Count;
        if (keyColumn.Annotations.Schema.GetColumnOrNull(LabeledImageSet.AnnotationKeyValues) is { Type: VectorDataViewType { ItemType: TextDataViewType } })
        {
            VBuffer<ReadOnlyMemory<char>> values = default;
            keyColumn.Annotations.GetValue(LabeledImageSet.AnnotationKeyValues, ref values);
            return values.DenseValues().Select(v => v.ToString()).ToArray();
        }
        return Enumerable.Range(0, count).Select(i => i.ToString(System.Globalization.CultureInfo.InvariantCulture)).ToArray();
    }

    /// <summary>
    /// Checks that key label column <paramref name="column"/> numbers the classes as <paramref name="expected"/> does
    /// (<paramref name="owner"/>: "the classifier", "the training data", ...). ML.NET compares keys by number, so data
    /// whose keys name other classes (a folder tree that lacks a class, another sort order) would give wrong metrics
    /// and wrong soft labels without any error. A key column without KeyValues is checked by its class count only.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException">The key names differ; the message names the column and the first difference.</exception>
    public static void CheckKeyNames(DataViewSchema.Column column, IReadOnlyList<string> expected, string owner, string parameterName)
    {
        ArgumentNullException.ThrowIfNull(expected);
        if (column.Type is not KeyDataViewType key) return;
        bool named = column.Annotations.Schema.GetColumnOrNull(LabeledImageSet.AnnotationKeyValues) is { Type: VectorDataViewType { ItemType: TextDataViewType } };
        if (!named)
        {
            if (key.Count != (ulong)expected.Count)
                throw new ArgumentOutOfRangeException(parameterName,
                    $"Label column '{column.Name}' has {key.Count} keys, but {owner} has {expected.Count} classes ({string.Join(", ", expected)}).");
            return;
        }
        var actual = ClassNamesOf(column);
        if (actual.SequenceEqual(expected, StringComparer.Ordinal)) return;
        var parts = new List<string>();
        int first = Enumerable.Range(0, Math.Min(actual.Count, expected.Count)).FirstOrDefault(i => actual[i] != expected[i], -1);
        parts.Add(first >= 0
            ? $"has key {first + 1} = '{actual[first]}', but {owner}'s key {first + 1} is '{expected[first]}'"
            : $"has {actual.Count} keys, but {owner} has {expected.Count}");
        var onlyData = actual.Except(expected, StringComparer.Ordinal).ToArray();
        var onlyExpected = expected.Except(actual, StringComparer.Ordinal).ToArray();
        if (onlyData.Length > 0) parts.Add($"only in the data: {string.Join(", ", onlyData.Select(n => $"'{n}'"))}");
        if (onlyExpected.Length > 0) parts.Add($"only in {owner}: {string.Join(", ", onlyExpected.Select(n => $"'{n}'"))}");
        throw new ArgumentOutOfRangeException(parameterName,
            $"Label column '{column.Name}' {string.Join("; ", parts)}. Keys are compared by number, so the results would be wrong. " +
            "Give the data the training class list: ImageFolderLoader.Load(..., classNames: classifier.ClassNames), or " +
            "MapValueToKey(..., keyData: a view of those names) with KeyOrdinality.ByOccurrence.");
    }

    /// <summary>The schema of an image column (dims C, H, W) and a key label column with <paramref name="classNames"/> as KeyValues.</summary>
    public static DataViewSchema BuildSchema(string imageColumnName, string labelColumnName, int channels, int height, int width, IReadOnlyList<string> classNames)
    {
        var builder = new DataViewSchema.Builder();
        builder.AddColumn(imageColumnName, new VectorDataViewType(NumberDataViewType.Single, channels, height, width));
        var annotations = new DataViewSchema.Annotations.Builder();
        annotations.Add(LabeledImageSet.AnnotationKeyValues, new VectorDataViewType(TextDataViewType.Instance, classNames.Count),
            (ref VBuffer<ReadOnlyMemory<char>> value) => value = KeyValues(classNames));
        builder.AddColumn(labelColumnName, new KeyDataViewType(typeof(uint), classNames.Count), annotations.ToAnnotations());
        return builder.ToSchema();
    }

    /// <summary>Class names as the VBuffer ML.NET uses for KeyValues annotations.</summary>
    public static VBuffer<ReadOnlyMemory<char>> KeyValues(IReadOnlyList<string> classNames) =>
        new(classNames.Count, classNames.Select(n => n.AsMemory()).ToArray());

    /// <summary>
    /// Copies one row's image into <paramref name="destination"/> (C·H·W floats), checking what every entry point checks:
    /// the value count matches the column's shape and every value is finite. Errors name the column and the row.
    /// </summary>
    internal static void ReadPixels(in VBuffer<float> image, Span<float> destination, string columnName, ImageShape shape, long row)
    {
        if (image.Length != destination.Length)
            throw new InvalidOperationException(
                $"Column '{columnName}', row {row}: the image has {image.Length} values, but the column holds {shape.Channels}×{shape.Height}×{shape.Width} = {destination.Length}.");
        image.CopyTo(destination);
        for (int i = 0; i < destination.Length; i++)
            if (!float.IsFinite(destination[i]))
                throw new InvalidOperationException(
                    $"Column '{columnName}', row {row}: value {i} is {(float.IsNaN(destination[i]) ? "NaN" : destination[i] > 0 ? "+∞" : "−∞")}; images must hold finite pixels.");
    }

    /// <summary>Finds a column of an estimator's input shape by name (SchemaShape's own lookup is internal).</summary>
    public static bool TryFind(SchemaShape shape, string name, out SchemaShape.Column column)
    {
        foreach (var c in shape)
            if (c.Name == name) { column = c; return true; }
        column = default;
        return false;
    }

    private static bool IsChannelCount(int size) => size is 1 or 3 or 4;

    private static ImageShape ShapeOf(string columnName, VectorDataViewType vector, int? height, int? width)
    {
        var dims = vector.Dimensions;
        if (dims.Length == 3 && dims.All(d => d > 0))
        {
            // [H, W, C] is what ExtractPixels writes with interleavePixelColors: true; read as C×H×W it would give
            // H channels of W-pixel-high images, so it is refused rather than misread.
            if (IsChannelCount(dims[2]) && !IsChannelCount(dims[0]))
                throw new ArgumentOutOfRangeException(nameof(columnName),
                    $"Image column '{columnName}' holds {dims[0]}×{dims[1]}×{dims[2]} values, which look like interleaved pixels (H×W×C); " +
                    "the images must be planar C×H×W: extract them with mlContext.Transforms.ExtractPixels(..., interleavePixelColors: false), the default.");
            if ((height is { } h && h != dims[1]) || (width is { } w && w != dims[2]))
                throw new ArgumentOutOfRangeException(nameof(columnName),
                    $"Image column '{columnName}' holds {dims[0]}×{dims[1]}×{dims[2]} images, but {height}×{width} was expected.");
            return new ImageShape(dims[0], dims[1], dims[2]);
        }
        int size = vector.Size;
        if (height is { } hh && width is { } ww)
        {
            if (size % (hh * ww) != 0)
                throw new ArgumentOutOfRangeException(nameof(columnName),
                    $"Image column '{columnName}' has {size} values, which is not a multiple of {hh}×{ww}.");
            return new ImageShape(size / (hh * ww), hh, ww);
        }
        int side = (int)Math.Round(Math.Sqrt(size / 3.0));
        if (side * side * 3 != size)
            throw new ArgumentOutOfRangeException(nameof(columnName),
                $"Image column '{columnName}' has {size} values with no C×H×W dimensions; it is not 3×S×S either — pass the image height and width.");
        return new ImageShape(3, side, side);
    }
}
