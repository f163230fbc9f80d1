using System.IO.Compression;

namespace MergeMix.ML.Data;

/// <summary>
/// Reads CIFAR-10 in its binary layout ("cifar-10-batches-bin"): files of 3073-byte records, each one label byte
/// (0..9) followed by the 32×32 red, green and blue planes, row-major. Files may be plain (<c>.bin</c>) or gzip
/// (<c>.bin.gz</c>). Pixels become floats 0..255 in the planar CHW layout of <see cref="LabeledImageSet"/>, which is
/// the record's own layout.
/// </summary>
public static class Cifar10Reader
{
    /// <summary>Image side in pixels.</summary>
    public const int ImageSide = 32;

    /// <summary>Bytes per record: one label byte plus 3·32·32 pixel bytes.</summary>
    public const int RecordSize = 1 + ImageBytes;

    /// <summary>Name of the optional class-name file (one name per line, line i names label i).</summary>
    public const string MetaFileName = "batches.meta.txt";

    /// <summary>Names of the five train batches, in the order <see cref="ReadTrain"/> joins them.</summary>
    public static IReadOnlyList<string> TrainBatchNames { get; } =
        Array.AsReadOnly(new[] { "data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5" });

    /// <summary>Name of the test batch.</summary>
    public const string TestBatchName = "test_batch";

    /// <summary>The standard class names, used when the folder has no <see cref="MetaFileName"/>.</summary>
    public static IReadOnlyList<string> DefaultClassNames { get; } = Array.AsReadOnly(new[]
        { "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck" });

    private const int ImageBytes = 3 * ImageSide * ImageSide;
    private const int ClassCount = 10;

    /// <summary>
    /// Reads one batch file (<c>.gz</c> → gzip, anything else → plain), with class names from
    /// <see cref="MetaFileName"/> next to it when present.
    /// </summary>
    /// <param name="path">The batch file.</param>
    /// <param name="maxImages">Read at most this many records from the start (≥ 1); null reads all. The rest of a gzip file is then not checked.</param>
    /// <exception cref="FileNotFoundException">The file does not exist.</exception>
    /// <exception cref="InvalidDataException">The length is not a multiple of <see cref="RecordSize"/>, a label byte is above 9, or the gzip stream is corrupt.</exception>
    public static LabeledImageSet Read(string path, int? maxImages = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        int limit = Limit(maxImages);
        var fullPath = Path.GetFullPath(path);
        var classNames = ReadClassNames(Path.GetDirectoryName(fullPath)!);
        return Decode(new[] { (fullPath, ReadRecords(fullPath, limit)) }, classNames);
    }

    /// <summary>Reads data_batch_1..5 of <paramref name="folder"/> (each <c>.bin</c> or <c>.bin.gz</c>), joined in that order.</summary>
    /// <param name="folder">The folder holding the batches.</param>
    /// <param name="maxImages">Read at most this many images in total, from the start of data_batch_1 (≥ 1); null reads all.</param>
    /// <exception cref="DirectoryNotFoundException">The folder does not exist.</exception>
    /// <exception cref="FileNotFoundException">A batch file is missing.</exception>
    /// <exception cref="InvalidDataException">See <see cref="Read"/>.</exception>
    public static LabeledImageSet ReadTrain(string folder, int? maxImages = null) => ReadBatches(folder, TrainBatchNames, maxImages);

    /// <summary>Reads test_batch (<c>.bin</c> or <c>.bin.gz</c>) of <paramref name="folder"/>, however many records it holds.</summary>
    /// <param name="folder">The folder holding the batch.</param>
    /// <param name="maxImages">Read at most this many images (≥ 1); null reads all.</param>
    /// <exception cref="DirectoryNotFoundException">The folder does not exist.</exception>
    /// <exception cref="FileNotFoundException">The batch file is missing.</exception>
    /// <exception cref="InvalidDataException">See <see cref="Read"/>.</exception>
    public static LabeledImageSet ReadTest(string folder, int? maxImages = null) => ReadBatches(folder, new[] { TestBatchName }, maxImages);

    /// <summary>
    /// The class names of <paramref name="folder"/>: the non-empty lines of its <see cref="MetaFileName"/> (exactly ten),
    /// or <see cref="DefaultClassNames"/> when that file is absent.
    /// </summary>
    /// <exception cref="InvalidDataException">The meta file does not hold exactly ten names.</exception>
    public static IReadOnlyList<string> ReadClassNames(string folder)
    {
        ArgumentException.ThrowIfNullOrEmpty(folder);
        var metaPath = Path.Combine(folder, MetaFileName);
        if (!File.Exists(metaPath))
            return DefaultClassNames;
        var names = File.ReadLines(metaPath).Select(l => l.Trim()).Where(l => l.Length > 0).ToArray();
        if (names.Length != ClassCount)
            throw new InvalidDataException($"'{metaPath}' must hold {ClassCount} class names (one per line), but holds {names.Length}.");
        return Array.AsReadOnly(names);
    }

    /// <summary>
    /// A fixed, class-balanced subset: <paramref name="perClass"/> images of every class, chosen at random for
    /// <paramref name="seed"/> and kept in their original order (for benchmark presets that must not change between runs).
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="perClass"/> is below 1 or above the size of some class.</exception>
    public static LabeledImageSet StratifiedSubset(LabeledImageSet set, int perClass, int seed)
    {
        ArgumentNullException.ThrowIfNull(set);
        if (perClass < 1)
            throw new ArgumentOutOfRangeException(nameof(perClass), $"{nameof(perClass)} must be at least 1, got {perClass}.");
        var members = new List<int>[set.ClassNames.Count];
        for (int c = 0; c < members.Length; c++)
            members[c] = new List<int>();
        for (int i = 0; i < set.Count; i++)
            members[set.Labels[i]].Add(i);

        var random = new Random(seed);
        var chosen = new List<int>(perClass * members.Length);
        for (int c = 0; c < members.Length; c++)
        {
            if (members[c].Count < perClass)
                throw new ArgumentOutOfRangeException(nameof(perClass),
                    $"{nameof(perClass)}={perClass}, but class '{set.ClassNames[c]}' has only {members[c].Count} images.");
            var pool = members[c].ToArray();
            random.Shuffle(pool);
            chosen.AddRange(pool.Take(perClass));
        }
        chosen.Sort();
        return set.Select(chosen);
    }

    private static LabeledImageSet ReadBatches(string folder, IReadOnlyList<string> batchNames, int? maxImages)
    {
        ArgumentException.ThrowIfNullOrEmpty(folder);
        int limit = Limit(maxImages);
        var fullFolder = Path.GetFullPath(folder);
        if (!Directory.Exists(fullFolder))
            throw new DirectoryNotFoundException($"CIFAR-10 folder '{fullFolder}' not found.");
        var classNames = ReadClassNames(fullFolder);
        var parts = new List<(string Path, Records Records)>();
        int remaining = limit;
        foreach (var name in batchNames)
        {
            var path = ResolveBatch(fullFolder, name);
            var records = ReadRecords(path, remaining);
            parts.Add((path, records));
            remaining -= records.Count;
            if (remaining == 0)
                break;
        }
        return Decode(parts, classNames);
    }

    private static string ResolveBatch(string folder, string name)
    {
        foreach (var extension in new[] { ".bin", ".bin.gz" })
        {
            var path = Path.Combine(folder, name + extension);
            if (File.Exists(path))
                return path;
        }
        var expected = Path.Combine(folder, name + ".bin.gz");
        throw new FileNotFoundException($"CIFAR-10 batch '{name}' not found: neither '{Path.Combine(folder, name + ".bin")}' nor '{expected}' exists.", expected);
    }

    private static int Limit(int? maxImages)
    {
        if (maxImages is < 1)
            throw new ArgumentOutOfRangeException(nameof(maxImages), $"{nameof(maxImages)} must be at least 1 (or null for all), got {maxImages}.");
        return maxImages ?? int.MaxValue;
    }

    private readonly record struct Records(byte[] Bytes, int Count);

    private static Records ReadRecords(string path, int limit)
    {
        if (!File.Exists(path))
            throw new FileNotFoundException($"CIFAR-10 batch file '{path}' not found.", path);
        bool gzip = path.EndsWith(".gz", StringComparison.OrdinalIgnoreCase);
        using var file = File.OpenRead(path);
        if (!gzip && file.Length % RecordSize != 0)
            throw BadLength(path, file.Length);
        using Stream stream = gzip ? new GZipStream(file, CompressionMode.Decompress) : file;

        // One spare record, so reaching the end of a full buffer does not trigger a resize.
        long expected = gzip ? DecompressedSizeHint(file) / RecordSize : file.Length / RecordSize;
        var bytes = new byte[(Math.Min(Math.Min(limit, expected), Array.MaxLength / RecordSize - 1) + 1) * RecordSize];
        int count = 0;
        try
        {
            while (count < limit)
            {
                if ((long)(count + 1) * RecordSize > bytes.Length)
                    Array.Resize(ref bytes, (int)Math.Min(2L * bytes.Length, Array.MaxLength / RecordSize * (long)RecordSize));
                int read = stream.ReadAtLeast(bytes.AsSpan(count * RecordSize, RecordSize), RecordSize, throwOnEndOfStream: false);
                if (read == 0)
                    break;
                if (read < RecordSize)
                    throw BadLength(path, (long)count * RecordSize + read);
                count++;
            }
        }
        catch (InvalidDataException e) when (!e.Message.Contains(path, StringComparison.Ordinal))
        {
            throw new InvalidDataException($"'{path}' is not a valid gzip file: {e.Message}", e);
        }
        return new Records(bytes, count);
    }

    /// <summary>The gzip trailer's ISIZE (uncompressed length mod 2³²), only a capacity hint; the stream is left at its start.</summary>
    private static long DecompressedSizeHint(FileStream file)
    {
        if (file.Length < 18)
            return 0;
        Span<byte> trailer = stackalloc byte[4];
        file.Seek(-4, SeekOrigin.End);
        file.ReadExactly(trailer);
        file.Seek(0, SeekOrigin.Begin);
        // A corrupt trailer must not cause a huge allocation; real image data compresses far less than 64:1.
        return Math.Min(System.Buffers.Binary.BinaryPrimitives.ReadUInt32LittleEndian(trailer), 64 * file.Length);
    }

    private static InvalidDataException BadLength(string path, long length) =>
        new($"'{path}' holds {length} bytes (decompressed), which is not a multiple of the CIFAR-10 record size {RecordSize}.");

    private static LabeledImageSet Decode(IReadOnlyList<(string Path, Records Records)> parts, IReadOnlyList<string> classNames)
    {
        long total = parts.Sum(p => (long)p.Records.Count);
        if (total * ImageBytes > Array.MaxLength)
            throw new InvalidOperationException($"{total} images do not fit in one array; pass maxImages.");
        var pixels = new float[total * ImageBytes];
        var labels = new int[total];
        int image = 0;
        foreach (var (path, records) in parts)
            for (int r = 0; r < records.Count; r++, image++)
            {
                var record = records.Bytes.AsSpan(r * RecordSize, RecordSize);
                if (record[0] >= ClassCount)
                    throw new InvalidDataException($"'{path}': record {r} has label {record[0]}; CIFAR-10 labels are 0..{ClassCount - 1}.");
                labels[image] = record[0];
                var target = pixels.AsSpan(image * ImageBytes, ImageBytes);
                var source = record[1..];
                for (int i = 0; i < ImageBytes; i++)
                    target[i] = source[i];
            }
        return new LabeledImageSet(pixels, labels, classNames, 3, ImageSide, ImageSide);
    }
}
