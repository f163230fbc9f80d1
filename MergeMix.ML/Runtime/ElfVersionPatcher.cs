using System.Buffers.Binary;
using System.Text;

namespace MergeMix.ML.Runtime;

/// <summary>
/// Marks version requirements of an ELF64 shared object as weak (VER_FLG_WEAK) in its <c>.gnu.version_r</c>
/// section, so the dynamic loader only warns when the version is missing instead of refusing the library.
/// </summary>
/// <remarks>
/// libLibTorchSharp.so of TorchSharp 0.107 is built with GCC 13, which plants a reference to
/// <c>std::ios_base_library_init()</c>@GLIBCXX_3.4.32 in every object that includes &lt;iostream&gt;. The symbol is a
/// link-time marker that is never called, so the only thing stopping the library from loading on a GCC 12 libstdc++
/// (Debian 12) is the version requirement itself. The layout follows the System V ABI "Symbol Versioning" chapter.
/// </remarks>
public static class ElfVersionPatcher
{
    private const uint ShtGnuVerneed = 0x6ffffffe;
    private const ushort VerFlagWeak = 0x2;

    /// <summary>Lists the version names required by <paramref name="elf"/>, with the file each comes from and whether it is weak.</summary>
    public static IReadOnlyList<(string File, string Version, bool Weak)> ReadVersionRequirements(byte[] elf)
    {
        var result = new List<(string, string, bool)>();
        foreach (var (file, version, flagsOffset) in EnumerateRequirements(elf))
            result.Add((file, version, (BinaryPrimitives.ReadUInt16LittleEndian(elf.AsSpan(flagsOffset)) & VerFlagWeak) != 0));
        return result;
    }

    /// <summary>
    /// Sets VER_FLG_WEAK on every requirement whose version name is in <paramref name="versions"/>.
    /// Returns how many entries were changed (0 when they were weak already or absent).
    /// </summary>
    public static int MarkWeak(byte[] elf, IEnumerable<string> versions)
    {
        var wanted = new HashSet<string>(versions, StringComparer.Ordinal);
        int changed = 0;
        foreach (var (_, version, flagsOffset) in EnumerateRequirements(elf))
        {
            if (!wanted.Contains(version)) continue;
            var span = elf.AsSpan(flagsOffset, 2);
            ushort flags = BinaryPrimitives.ReadUInt16LittleEndian(span);
            if ((flags & VerFlagWeak) != 0) continue;
            BinaryPrimitives.WriteUInt16LittleEndian(span, (ushort)(flags | VerFlagWeak));
            changed++;
        }
        return changed;
    }

    private static IEnumerable<(string File, string Version, int FlagsOffset)> EnumerateRequirements(byte[] elf)
    {
        if (elf.Length < 64 || elf[0] != 0x7f || elf[1] != (byte)'E' || elf[2] != (byte)'L' || elf[3] != (byte)'F')
            throw new InvalidDataException("Not an ELF file.");
        if (elf[4] != 2 || elf[5] != 1)
            throw new InvalidDataException("Only little-endian ELF64 files are supported.");
        var span = elf.AsSpan();
        long shoff = (long)BinaryPrimitives.ReadUInt64LittleEndian(span[0x28..]);
        int shentsize = BinaryPrimitives.ReadUInt16LittleEndian(span[0x3A..]);
        int shnum = BinaryPrimitives.ReadUInt16LittleEndian(span[0x3C..]);

        var list = new List<(string, string, int)>();
        for (int s = 0; s < shnum; s++)
        {
            int sh = checked((int)(shoff + (long)s * shentsize));
            if (BinaryPrimitives.ReadUInt32LittleEndian(span[(sh + 4)..]) != ShtGnuVerneed) continue;
            int offset = checked((int)BinaryPrimitives.ReadUInt64LittleEndian(span[(sh + 0x18)..]));
            int link = (int)BinaryPrimitives.ReadUInt32LittleEndian(span[(sh + 0x28)..]);
            int count = (int)BinaryPrimitives.ReadUInt32LittleEndian(span[(sh + 0x2C)..]); // sh_info = number of Verneed entries
            int strSh = checked((int)(shoff + (long)link * shentsize));
            int strOffset = checked((int)BinaryPrimitives.ReadUInt64LittleEndian(span[(strSh + 0x18)..]));

            int need = offset;
            for (int n = 0; n < count; n++)
            {
                int auxCount = BinaryPrimitives.ReadUInt16LittleEndian(span[(need + 2)..]);
                string file = ReadString(elf, strOffset + (int)BinaryPrimitives.ReadUInt32LittleEndian(span[(need + 4)..]));
                int aux = need + (int)BinaryPrimitives.ReadUInt32LittleEndian(span[(need + 8)..]);
                for (int a = 0; a < auxCount; a++)
                {
                    string name = ReadString(elf, strOffset + (int)BinaryPrimitives.ReadUInt32LittleEndian(span[(aux + 8)..]));
                    list.Add((file, name, aux + 4));
                    aux += (int)BinaryPrimitives.ReadUInt32LittleEndian(span[(aux + 12)..]);
                }
                int next = (int)BinaryPrimitives.ReadUInt32LittleEndian(span[(need + 12)..]);
                if (next == 0) break;
                need += next;
            }
        }
        return list;
    }

    private static string ReadString(byte[] elf, int offset)
    {
        int end = Array.IndexOf(elf, (byte)0, offset);
        return Encoding.ASCII.GetString(elf, offset, end - offset);
    }
}
