using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.Transforms;
using Microsoft.ML.Transforms.Image;

namespace MergeMix.ML.Data;

/// <summary>
/// Loads a folder tree with one sub-folder per class (class name = sub-folder name, classes sorted ordinally) through
/// the ML.NET image route: image paths → <c>LoadImages</c> → <c>ResizeImages</c> → <c>ExtractPixels</c> (planar CHW
/// floats 0..255) → <c>MapValueToKey</c>. Image files are found recursively inside each class folder.
/// </summary>
public static class ImageFolderLoader
{
    /// <summary>File extensions read as images (case-insensitive).</summary>
    public static IReadOnlyList<string> ImageExtensions { get; } = Array.AsReadOnly(new[] { ".png", ".jpg", ".jpeg", ".bmp" });

    /// <summary>Name of the text column with each image's full path, kept in the loaded data view.</summary>
    public const string ImagePathColumnName = "ImagePath";

    // Decoded images are only an intermediate step; a name users will not pick keeps it from clashing with theirs.
    private const string ImageColumnName = "ImageFolderLoader.Image";

    /// <summary>One image file and its class name.</summary>
    /// <param name="ImagePath">Full path of the file.</param>
    /// <param name="Label">Class name (the class sub-folder's name).</param>
    public sealed record ImageFile(string ImagePath, string Label);

    /// <summary>
    /// Lists the classes and their image files (sorted ordinally by path within each class, classes in class order).
    /// Without <paramref name="classNames"/> the classes are the sub-folders, sorted ordinally; with it (e.g. the training
    /// set's, <c>classifier.ClassNames</c>) the classes are exactly that list, in that order, so a tree that lacks a class
    /// keeps every other class's key. Hidden folders and files (name starting with '.', or the Hidden attribute, such as
    /// <c>.ipynb_checkpoints</c> or <c>._photo.jpg</c>) are skipped at every level.
    /// </summary>
    /// <exception cref="DirectoryNotFoundException"><paramref name="folder"/> does not exist.</exception>
    /// <exception cref="InvalidDataException">Fewer than two class folders (without a class list), no image at all, a class
    /// folder without images, or a folder the class list does not name.</exception>
    public static (IReadOnlyList<string> ClassNames, IReadOnlyList<ImageFile> Files) ListImages(string folder, IReadOnlyList<string>? classNames = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(folder);
        var root = Path.GetFullPath(folder);
        if (!Directory.Exists(root))
            throw new DirectoryNotFoundException($"Image folder '{root}' not found.");
        var classFolders = Directory.GetDirectories(root).Where(d => !IsHidden(d)).OrderBy(d => Path.GetFileName(d), StringComparer.Ordinal).ToArray();
        var folderNames = classFolders.Select(d => Path.GetFileName(d)!).ToArray();
        string[] classes;
        if (classNames is null)
        {
            classes = folderNames;
            if (classes.Length < 2)
                throw new InvalidDataException(
                    $"Image folder '{root}' must have one sub-folder per class and at least 2 classes, but has {classes.Length}" +
                    (classes.Length == 1 ? $" ('{classes[0]}')." : "."));
        }
        else
        {
            classes = classNames.ToArray();
            if (classes.Length < 2)
                throw new ArgumentException($"Need at least 2 class names, got {classes.Length}.", nameof(classNames));
            if (classes.Distinct(StringComparer.Ordinal).Count() != classes.Length)
                throw new ArgumentException($"Class names must be distinct: {string.Join(", ", classes)}.", nameof(classNames));
            var unknown = folderNames.Where(f => !classes.Contains(f, StringComparer.Ordinal)).ToArray();
            if (unknown.Length > 0)
                throw new InvalidDataException(
                    $"Image folder '{root}' has class folder(s) {string.Join(", ", unknown.Select(u => $"'{u}'"))} that the class list does not name " +
                    $"({string.Join(", ", classes)}); remove them or add them to the list.");
        }

        var files = new List<ImageFile>();
        var empty = new List<string>();
        foreach (var className in classes)
        {
            var classFolder = Path.Combine(root, className);
            if (!folderNames.Contains(className, StringComparer.Ordinal)) continue; // a class this tree lacks
            var images = VisibleFiles(classFolder).Where(IsImage).Order(StringComparer.Ordinal).ToArray();
            if (images.Length == 0)
                empty.Add(className);
            files.AddRange(images.Select(p => new ImageFile(p, className)));
        }
        if (files.Count == 0)
            throw new InvalidDataException($"Image folder '{root}' holds no images ({string.Join(", ", ImageExtensions)}) in its class folders.");
        if (empty.Count > 0)
            throw new InvalidDataException($"Image folder '{root}': class folder(s) {string.Join(", ", empty.Select(e => $"'{e}'"))} hold no images ({string.Join(", ", ImageExtensions)}).");
        return (Array.AsReadOnly(classes), files.AsReadOnly());
    }

    /// <summary>
    /// The ML.NET pipeline from a text <see cref="ImagePathColumnName"/> column and a text label column to
    /// <paramref name="featureColumnName"/> (<c>Vector&lt;Single&gt;</c> of dims 3, H, W, planar RGB, 0..255) and a key
    /// label column whose keys follow <paramref name="classNames"/> (KeyValues = the class names).
    /// </summary>
    /// <param name="mlContext">The ML.NET context.</param>
    /// <param name="classNames">Class names in key order (key k+1 = classNames[k]).</param>
    /// <param name="width">Image width after resizing.</param>
    /// <param name="height">Image height after resizing.</param>
    /// <param name="featureColumnName">Name of the pixel column.</param>
    /// <param name="labelColumnName">Name of the label column: text on input, key on output.</param>
    /// <param name="resizing">How images of another aspect ratio are fitted (see <c>ResizeImages</c>).</param>
    public static IEstimator<ITransformer> CreatePipeline(MLContext mlContext, IReadOnlyList<string> classNames, int width, int height,
        string featureColumnName = "Features", string labelColumnName = "Label",
        ImageResizingEstimator.ResizingKind resizing = ImageResizingEstimator.ResizingKind.IsoCrop)
    {
        ArgumentNullException.ThrowIfNull(mlContext);
        ArgumentNullException.ThrowIfNull(classNames);
        if (width < 1)
            throw new ArgumentOutOfRangeException(nameof(width), $"{nameof(width)} must be at least 1 pixel, got {width}.");
        if (height < 1)
            throw new ArgumentOutOfRangeException(nameof(height), $"{nameof(height)} must be at least 1 pixel, got {height}.");
        ArgumentException.ThrowIfNullOrEmpty(featureColumnName);
        ArgumentException.ThrowIfNullOrEmpty(labelColumnName);
        if (classNames.Count < 2)
            throw new ArgumentException($"Need at least 2 class names, got {classNames.Count}.", nameof(classNames));

        // keyData fixes the key order to ours; MapValueToKey would otherwise number classes by first occurrence.
        var keyData = mlContext.Data.LoadFromEnumerable(classNames.Select(n => new KeyRow { Value = n }));
        return mlContext.Transforms.LoadImages(ImageColumnName, imageFolder: null, inputColumnName: ImagePathColumnName)
            .Append(mlContext.Transforms.ResizeImages(ImageColumnName, width, height, ImageColumnName, resizing))
            .Append(mlContext.Transforms.ExtractPixels(featureColumnName, ImageColumnName))
            .Append(mlContext.Transforms.Conversion.MapValueToKey(labelColumnName, labelColumnName,
                keyOrdinality: ValueToKeyMappingEstimator.KeyOrdinality.ByOccurrence, keyData: keyData))
            .Append(mlContext.Transforms.DropColumns(ImageColumnName));
    }

    /// <summary>
    /// Loads the images of <paramref name="folder"/> as a lazy <see cref="IDataView"/> with columns
    /// <see cref="ImagePathColumnName"/> (text), <paramref name="labelColumnName"/> (key, KeyValues = class names) and
    /// <paramref name="featureColumnName"/> (<c>Vector&lt;Single&gt;</c> of dims 3, <paramref name="height"/>,
    /// <paramref name="width"/>, planar RGB, 0..255). Files are decoded when the view is read; a file that cannot be
    /// decoded then fails with an <see cref="InvalidDataException"/> naming its path.
    /// </summary>
    /// <remarks>Pass the training set's class list as <paramref name="classNames"/> when loading a validation or test tree
    /// (<c>classifier.ClassNames</c>, or <c>ImageColumns.ClassNamesOf(train.Schema["Label"])</c>): keys are compared by
    /// number, and a tree that lacks a class would otherwise number the others differently.</remarks>
    /// <exception cref="DirectoryNotFoundException"><paramref name="folder"/> does not exist.</exception>
    /// <exception cref="InvalidDataException">See <see cref="ListImages"/>.</exception>
    public static IDataView Load(MLContext mlContext, string folder, int width, int height,
        string featureColumnName = "Features", string labelColumnName = "Label",
        ImageResizingEstimator.ResizingKind resizing = ImageResizingEstimator.ResizingKind.IsoCrop, IReadOnlyList<string>? classNames = null)
    {
        ArgumentNullException.ThrowIfNull(mlContext);
        var (classes, files) = ListImages(folder, classNames);
        var pipeline = CreatePipeline(mlContext, classes, width, height, featureColumnName, labelColumnName, resizing);

        var definition = SchemaDefinition.Create(typeof(PathRow));
        definition[nameof(PathRow.Label)].ColumnName = labelColumnName;
        var paths = mlContext.Data.LoadFromEnumerable(files.Select(f => new PathRow { ImagePath = f.ImagePath, Label = f.Label }), definition);
        return new ImageFileErrorsDataView(pipeline.Fit(paths).Transform(paths), files.Select(f => f.ImagePath).ToArray());
    }

    /// <summary>
    /// Loads and decodes every image of <paramref name="folder"/> into a <see cref="LabeledImageSet"/> (through
    /// <see cref="Load"/> and <see cref="LabeledImageSet.FromDataView"/>), in <see cref="ListImages"/> order.
    /// </summary>
    /// <exception cref="DirectoryNotFoundException"><paramref name="folder"/> does not exist.</exception>
    /// <exception cref="InvalidDataException">See <see cref="ListImages"/>.</exception>
    public static LabeledImageSet LoadSet(MLContext mlContext, string folder, int width, int height,
        ImageResizingEstimator.ResizingKind resizing = ImageResizingEstimator.ResizingKind.IsoCrop, IReadOnlyList<string>? classNames = null) =>
        LabeledImageSet.FromDataView(Load(mlContext, folder, width, height, resizing: resizing, classNames: classNames));

    private static bool IsHidden(string path) =>
        Path.GetFileName(path).StartsWith('.') || (File.GetAttributes(path) & FileAttributes.Hidden) != 0;

    // Recursive listing that does not descend into hidden folders.
    private static IEnumerable<string> VisibleFiles(string folder)
    {
        foreach (var file in Directory.EnumerateFiles(folder))
            if (!IsHidden(file)) yield return file;
        foreach (var sub in Directory.EnumerateDirectories(folder))
            if (!IsHidden(sub))
                foreach (var file in VisibleFiles(sub)) yield return file;
    }

    private static bool IsImage(string path)
    {
        var extension = Path.GetExtension(path);
        foreach (var known in ImageExtensions)
            if (string.Equals(extension, known, StringComparison.OrdinalIgnoreCase))
                return true;
        return false;
    }

    private sealed class PathRow
    {
        public string ImagePath { get; set; } = "";
        public string Label { get; set; } = "";
    }

    private sealed class KeyRow
    {
        public string Value { get; set; } = "";
    }
}
