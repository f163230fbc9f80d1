using Microsoft.ML;
using Microsoft.ML.Data;

namespace MergeMix.ML.Data;

/// <summary>
/// A set of same-sized images with integer class labels, held in one contiguous planar CHW float buffer — the layout
/// ML.NET's <c>ExtractPixels</c> produces by default (index <c>c·H·W + y·W + x</c>, channels R, G, B).
/// </summary>
/// <remarks>
/// This is the hand-over format between our readers (synthetic set, CIFAR-10, image folders), the ML.NET columns and
/// the TorchSharp tensors: one copy of the pixels, no per-row objects.
/// </remarks>
public sealed class LabeledImageSet
{
    /// <summary>Creates a set. <paramref name="pixels"/> holds <c>labels.Length</c> images of <c>channels·height·width</c> floats each.</summary>
    public LabeledImageSet(float[] pixels, int[] labels, IReadOnlyList<string> classNames, int channels, int height, int width)
    {
        ArgumentNullException.ThrowIfNull(pixels);
        ArgumentNullException.ThrowIfNull(labels);
        ArgumentNullException.ThrowIfNull(classNames);
        if (channels <= 0 || height <= 0 || width <= 0)
            throw new ArgumentOutOfRangeException(nameof(channels), $"Image shape must be positive, got {channels}×{height}×{width}.");
        if (classNames.Count < 2)
            throw new ArgumentException($"Need at least 2 classes, got {classNames.Count}.", nameof(classNames));
        long imageSize = (long)channels * height * width;
        if (pixels.LongLength != imageSize * labels.Length)
            throw new ArgumentException($"Expected {labels.Length} images × {imageSize} floats = {imageSize * labels.Length}, got {pixels.LongLength}.", nameof(pixels));
        for (int i = 0; i < labels.Length; i++)
            if ((uint)labels[i] >= (uint)classNames.Count)
                throw new ArgumentOutOfRangeException(nameof(labels), $"Label {labels[i]} of row {i} is outside [0, {classNames.Count}).");
        Pixels = pixels;
        Labels = labels;
        ClassNames = classNames;
        Channels = channels;
        Height = height;
        Width = width;
    }

    /// <summary>All pixels, image after image, planar CHW.</summary>
    public float[] Pixels { get; }

    /// <summary>Class index (0-based) of each image.</summary>
    public int[] Labels { get; }

    /// <summary>Class names; index i names label i.</summary>
    public IReadOnlyList<string> ClassNames { get; }

    /// <summary>Number of channels (3 for RGB).</summary>
    public int Channels { get; }

    /// <summary>Image height in pixels.</summary>
    public int Height { get; }

    /// <summary>Image width in pixels.</summary>
    public int Width { get; }

    /// <summary>Number of images.</summary>
    public int Count => Labels.Length;

    /// <summary>Floats per image (C·H·W).</summary>
    public int ImageSize => Channels * Height * Width;

    /// <summary>The pixels of image <paramref name="index"/>.</summary>
    public ReadOnlySpan<float> Image(int index) => Pixels.AsSpan(index * ImageSize, ImageSize);

    /// <summary>A new set with the images at <paramref name="indices"/>, in that order (pixels are copied).</summary>
    public LabeledImageSet Select(IReadOnlyList<int> indices)
    {
        var pixels = new float[(long)indices.Count * ImageSize];
        var labels = new int[indices.Count];
        for (int i = 0; i < indices.Count; i++)
        {
            Image(indices[i]).CopyTo(pixels.AsSpan(i * ImageSize, ImageSize));
            labels[i] = Labels[indices[i]];
        }
        return new LabeledImageSet(pixels, labels, ClassNames, Channels, Height, Width);
    }

    /// <summary>
    /// Splits off a class-stratified share of the images (e.g. a validation set carved from train), deterministically
    /// for <paramref name="seed"/>. Returns (kept, heldOut).
    /// </summary>
    public (LabeledImageSet Kept, LabeledImageSet HeldOut) StratifiedSplit(double heldOutFraction, int seed)
    {
        if (heldOutFraction <= 0 || heldOutFraction >= 1)
            throw new ArgumentOutOfRangeException(nameof(heldOutFraction), $"Must be in (0, 1), got {heldOutFraction}.");
        var random = new Random(seed);
        var rest = new List<int>();
        var heldOut = new List<int>();
        foreach (var group in Enumerable.Range(0, Count).GroupBy(i => Labels[i]).OrderBy(g => g.Key))
        {
            var members = group.ToArray();
            random.Shuffle(members);
            int take = (int)Math.Round(members.Length * heldOutFraction);
            heldOut.AddRange(members.Take(take));
            rest.AddRange(members.Skip(take));
        }
        rest.Sort();
        heldOut.Sort();
        return (Select(rest), Select(heldOut));
    }

    /// <summary>
    /// Builds an <see cref="IDataView"/> with an image column (known-size <c>Vector&lt;Single&gt;</c> of dims C, H, W)
    /// and a key-typed label column (<c>Key&lt;UInt32&gt;</c> of cardinality K with the class names as KeyValues), the
    /// shape <c>LoadImages → ResizeImages → ExtractPixels → MapValueToKey</c> would give.
    /// </summary>
    public IDataView ToDataView(MLContext mlContext, string imageColumnName = "Features", string labelColumnName = "Label")
    {
        ArgumentNullException.ThrowIfNull(mlContext);
        var schema = ImageColumns.BuildSchema(imageColumnName, labelColumnName, Channels, Height, Width, ClassNames);
        var rows = Enumerable.Range(0, Count).Select(i => new ImageRow { Image = Image(i).ToArray(), Label = (uint)Labels[i] });
        var definition = SchemaDefinition.Create(typeof(ImageRow));
        var image = definition[nameof(ImageRow.Image)];
        var label = definition[nameof(ImageRow.Label)];
        image.ColumnName = imageColumnName;
        image.ColumnType = schema[imageColumnName].Type;
        label.ColumnName = labelColumnName;
        label.ColumnType = schema[labelColumnName].Type;
        label.AddAnnotation(AnnotationKeyValues, ImageColumns.KeyValues(ClassNames), new VectorDataViewType(TextDataViewType.Instance, ClassNames.Count));
        return mlContext.Data.LoadFromEnumerable(rows, definition);
    }

    /// <summary>
    /// Reads every row of <paramref name="data"/> into a set, validating the columns: the image column must be a
    /// known-size float vector of <c>channels·H·W</c> values (shape taken from its dimensions, or from
    /// <paramref name="height"/>/<paramref name="width"/> when the vector is flat), the label column a key type.
    /// </summary>
    public static LabeledImageSet FromDataView(IDataView data, string imageColumnName = "Features", string labelColumnName = "Label",
        int? height = null, int? width = null)
    {
        ArgumentNullException.ThrowIfNull(data);
        var shape = ImageColumns.ValidateImageColumn(data.Schema, imageColumnName, height, width);
        var classNames = ImageColumns.ValidateKeyLabel(data.Schema, labelColumnName);
        var imageColumn = data.Schema[imageColumnName];
        var labelColumn = data.Schema[labelColumnName];
        int size = shape.Channels * shape.Height * shape.Width;

        var pixels = new List<float>();
        var labels = new List<int>();
        using var cursor = data.GetRowCursor(new[] { imageColumn, labelColumn });
        var imageGetter = cursor.GetGetter<VBuffer<float>>(imageColumn);
        var labelGetter = cursor.GetGetter<uint>(labelColumn);
        VBuffer<float> buffer = default;
        uint key = 0;
        var dense = new float[size];
        while (cursor.MoveNext())
        {
            imageGetter(ref buffer);
            labelGetter(ref key);
            if (key == 0)
                throw new InvalidOperationException($"Row {labels.Count}: column '{labelColumnName}' has a missing key value (0).");
            ImageColumns.ReadPixels(buffer, dense, imageColumnName, shape, labels.Count);
            pixels.AddRange(dense);
            labels.Add((int)key - 1);
        }
        if (labels.Count == 0)
            throw new InvalidOperationException($"The data view has no rows (columns '{imageColumnName}', '{labelColumnName}').");
        return new LabeledImageSet(pixels.ToArray(), labels.ToArray(), classNames, shape.Channels, shape.Height, shape.Width);
    }

    internal const string AnnotationKeyValues = "KeyValues";

    private sealed class ImageRow
    {
        public float[] Image { get; set; } = Array.Empty<float>();
        // LoadFromEnumerable treats a POCO key value as 0-based and adds one (0 stays reserved for "missing").
        public uint Label { get; set; }
    }
}
