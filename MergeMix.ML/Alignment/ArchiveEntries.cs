using System.IO.Compression;
using System.Text;

namespace MergeMix.ML.Alignment;

/// <summary>Binary entries of the zip archives written by <see cref="MultimodalLm"/> and <see cref="PreferenceTrainer"/>.</summary>
internal static class ArchiveEntries
{
    /// <summary>Writes an entry through a BinaryWriter that leaves the entry stream to this method (TorchSharp's savers close theirs otherwise).</summary>
    public static void Write(ZipArchive zip, string name, Action<BinaryWriter> write)
    {
        using var stream = zip.CreateEntry(name).Open();
        using var writer = new BinaryWriter(stream, Encoding.UTF8, leaveOpen: true);
        write(writer);
    }

    /// <summary>Reads an entry from a seekable in-memory copy (zip entry streams cannot seek).</summary>
    public static void Read(ZipArchive zip, string name, string archiveKind, Action<BinaryReader> read)
    {
        using var copy = new MemoryStream();
        using (var stream = Get(zip, name, archiveKind).Open()) stream.CopyTo(copy);
        copy.Position = 0;
        using var reader = new BinaryReader(copy, Encoding.UTF8, leaveOpen: true);
        read(reader);
    }

    /// <summary>The entry called <paramref name="name"/>, or an <see cref="InvalidDataException"/> naming what the archive should be.</summary>
    public static ZipArchiveEntry Get(ZipArchive zip, string name, string archiveKind) =>
        zip.GetEntry(name) ?? throw new InvalidDataException($"the {archiveKind} has no '{name}' entry; was it written by this library?");
}
