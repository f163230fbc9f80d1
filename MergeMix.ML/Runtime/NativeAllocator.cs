using System.Runtime.InteropServices;

namespace MergeMix.ML.Runtime;

/// <summary>
/// The process-level switch behind <see cref="Classification.VisionTransformerTrainerOptions.KeepNativeMemory"/>: glibc
/// malloc settings for CPU training. A training step frees hundreds of MB of activations at its end and allocates them
/// again in the next step; with glibc's defaults the freed memory goes back to the OS (heap trim, or munmap of blocks
/// above the dynamic mmap threshold) and every page is faulted in and zeroed again the next step, which costs a
/// two-pass MergeMix step far more than a one-pass step (README, "Step cost").
/// </summary>
/// <remarks>
/// The settings are process-wide and cannot be undone, so an application that wants to decide this once, at start-up,
/// calls <see cref="KeepFreedMemory"/> itself and sets the trainer option to false (or leaves it on, which then
/// changes nothing more):
/// <code language="csharp">
/// bool kept = MergeMix.ML.Runtime.NativeAllocator.KeepFreedMemory();
/// Console.WriteLine(kept ? "native memory kept between training steps" : "allocator left as it is (not glibc)");
/// </code>
/// </remarks>
public static class NativeAllocator
{
    private const int TrimThreshold = -1, MmapThreshold = -3;

    // Blocks up to 32 MiB (glibc's largest mmap threshold; batch-128 activations of the cifar10-small ViT are below
    // 13 MB) come from the heap, and the heap top is never trimmed, so the process keeps its peak step memory.
    private const int KeptBlockBytes = 32 << 20;

    private static readonly object Gate = new();
    private static bool applied;

    /// <summary>Whether <see cref="KeepFreedMemory"/> has put the settings in effect in this process.</summary>
    public static bool IsKeepingFreedMemory
    {
        get { lock (Gate) return applied; }
    }

    /// <summary>
    /// Applies the settings once per process on Linux with glibc; returns whether they are in effect (false on other
    /// systems and C libraries, where nothing is changed). Process-wide and not undone: the process keeps the memory
    /// of its largest step instead of returning it between steps.
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
