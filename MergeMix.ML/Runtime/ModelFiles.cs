using System.IO.Compression;
using System.Text;
using TorchSharp;
using static TorchSharp.torch;

namespace MergeMix.ML.Runtime;

/// <summary>
/// Loading of the library's model files and of TorchSharp weights with errors that say which file and which tensor:
/// .NET's zip reader says "End of Central Directory record could not be found" and TorchSharp's loader "Mismatched
/// tensor shape", neither naming what it was reading.
/// </summary>
internal static class ModelFiles
{
    /// <summary>
    /// Opens <paramref name="path"/> and runs <paramref name="load"/> on it; a file that is missing, not a complete
    /// zip archive, or holds content that does not fit fails naming the file.
    /// </summary>
    public static T Load<T>(string path, string kind, Func<Stream, T> load)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        if (!File.Exists(path)) throw new FileNotFoundException($"{kind} '{path}' was not found.", path);
        using var file = File.OpenRead(path);
        try
        {
            return load(file);
        }
        catch (Exception e) when (e is InvalidDataException or EndOfStreamException && !e.Message.Contains(path, StringComparison.Ordinal))
        {
            throw new InvalidDataException($"{kind} '{path}' cannot be loaded: {e.Message}", e);
        }
    }

    /// <summary>Opens <paramref name="stream"/> as a zip archive, saying what was expected when it is not one.</summary>
    public static ZipArchive OpenArchive(Stream stream, string kind)
    {
        try
        {
            return new ZipArchive(stream, ZipArchiveMode.Read, leaveOpen: true);
        }
        catch (InvalidDataException e)
        {
            throw new InvalidDataException($"it is not a complete zip archive, as a {kind} is: the file is truncated or of another kind ({e.Message})", e);
        }
    }

    /// <summary>
    /// Loads weights written by TorchSharp's <c>Module.save</c> into <paramref name="module"/> after checking every
    /// tensor's name, type and shape against the module; a mismatch throws an <see cref="InvalidDataException"/>
    /// naming the tensors ("'head.weight' is [10, 64] in the file but [6, 64] in the model") and
    /// <paramref name="source"/>. Reusable by any loader of saved weights.
    /// </summary>
    public static void LoadWeights(nn.Module module, Stream stream, string source, bool strict = true)
    {
        ArgumentNullException.ThrowIfNull(module);
        ArgumentNullException.ThrowIfNull(stream);
        var seekable = stream.CanSeek ? stream : Copy(stream);
        long start = seekable.Position;
        using (var reader = new BinaryReader(seekable, Encoding.UTF8, leaveOpen: true))
        {
            var problems = Mismatches(module, ReadEntries(reader, source), strict);
            if (problems.Count > 0)
                throw new InvalidDataException(
                    $"The weights in {source} do not fit the model: {string.Join("; ", problems.Take(5))}" +
                    (problems.Count > 5 ? $"; and {problems.Count - 5} more" : "") + ". Build the model with the options the weights were saved with.");
        }
        seekable.Position = start;
        using (var reader = new BinaryReader(seekable, Encoding.UTF8, leaveOpen: true)) module.load(reader, strict);
        if (!ReferenceEquals(seekable, stream)) seekable.Dispose();
    }

    private static MemoryStream Copy(Stream stream)
    {
        var copy = new MemoryStream();
        stream.CopyTo(copy);
        copy.Position = 0;
        return copy;
    }

    private sealed record Entry(string Name, ScalarType Type, long[] Shape);

    // TorchSharp's format: LEB128 entry count, then per tensor its name, LEB128 dtype, rank, dimensions, then the raw bytes.
    private static List<Entry> ReadEntries(BinaryReader reader, string source)
    {
        var entries = new List<Entry>();
        try
        {
            long count = Decode(reader);
            for (long i = 0; i < count; i++)
            {
                string name = reader.ReadString();
                var type = (ScalarType)Decode(reader);
                var shape = new long[Decode(reader)];
                long elements = 1;
                for (int d = 0; d < shape.Length; d++) elements *= shape[d] = Decode(reader);
                entries.Add(new Entry(name, type, shape));
                reader.BaseStream.Seek(elements * ElementSize(type), SeekOrigin.Current);
                if (reader.BaseStream.Position > reader.BaseStream.Length) throw new EndOfStreamException();
            }
        }
        catch (Exception e) when (e is EndOfStreamException or ArgumentOutOfRangeException or OverflowException or IOException)
        {
            throw new InvalidDataException($"The weights in {source} are truncated or are not TorchSharp weights (after {entries.Count} tensors).", e);
        }
        return entries;
    }

    private static List<string> Mismatches(nn.Module module, List<Entry> entries, bool strict)
    {
        var problems = new List<string>();
        var expected = module.state_dict();
        static string Shape(IEnumerable<long> shape) => $"[{string.Join(", ", shape)}]";
        foreach (var entry in entries)
        {
            if (!expected.TryGetValue(entry.Name, out var tensor))
            {
                if (strict) problems.Add($"'{entry.Name}' {Shape(entry.Shape)} is in the file but not in the model");
                continue;
            }
            if (!tensor.shape.SequenceEqual(entry.Shape))
                problems.Add($"'{entry.Name}' is {Shape(entry.Shape)} in the file but {Shape(tensor.shape)} in the model");
            else if (tensor.dtype != entry.Type)
                problems.Add($"'{entry.Name}' is {entry.Type} in the file but {tensor.dtype} in the model");
        }
        if (strict)
        {
            var saved = entries.Select(e => e.Name).ToHashSet(StringComparer.Ordinal);
            problems.AddRange(expected.Keys.Where(k => !saved.Contains(k)).Select(k => $"'{k}' {Shape(expected[k].shape)} is in the model but not in the file"));
        }
        return problems;
    }

    private static long Decode(BinaryReader reader)
    {
        long value = 0;
        for (int shift = 0; ; shift += 7)
        {
            if (shift > 63) throw new OverflowException("LEB128 value too long.");
            byte b = reader.ReadByte();
            value |= (long)(b & 0x7F) << shift;
            if ((b & 0x80) == 0) return value;
        }
    }

    private static long ElementSize(ScalarType type)
    {
        using var probe = empty(0, dtype: type);
        return probe.ElementSize;
    }
}
