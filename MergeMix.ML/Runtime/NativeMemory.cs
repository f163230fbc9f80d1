using System.Runtime.InteropServices;

namespace MergeMix.ML.Runtime;

/// <summary>
/// glibc malloc settings for CPU training. A training step frees hundreds of MB of activations at its end and
/// allocates them again in the next step; with glibc's defaults the freed memory goes back to the OS (heap trim, or
/// munmap of blocks above the dynamic mmap threshold) and every page is faulted in and zeroed again the next step,
/// which costs a two-pass MergeMix step far more than a one-pass step (README, "Step cost").
/// </summary>
internal static class NativeMemory
{
    private const int TrimThreshold = -1, MmapThreshold = -3;

    // Blocks up to 32 MiB (glibc's largest mmap threshold; batch-128 activations of the cifar10-small ViT are below
    // 13 MB) come from the heap, and the heap top is never trimmed, so the process keeps its peak step memory.
    private const int KeptBlockBytes = 32 << 20;

    private static readonly object Gate = new();
    private static bool applied;

    /// <summary>
    /// Applies the settings once per process on Linux with glibc; returns whether they are in effect. Process-wide
    /// and not undone: the process keeps the memory of its largest step instead of returning it between steps.
    /// </summary>
    public static bool KeepFreedMemory()
    {
        lock (Gate)
        {
            if (applied) return true;
            if (!OperatingSystem.IsLinux()) return false;
            try
            {
                applied = mallopt(MmapThreshold, KeptBlockBytes) == 1 && mallopt(TrimThreshold, int.MaxValue) == 1;
            }
            catch (Exception e) when (e is EntryPointNotFoundException or DllNotFoundException)
            {
                // Not glibc (e.g. musl): its allocator has other knobs, and nothing here applies.
            }
            return applied;
        }
    }

    [DllImport("libc")]
    private static extern int mallopt(int param, int value);
}
