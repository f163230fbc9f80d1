using System.Reflection;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Security.Cryptography;
using System.Text;

namespace MergeMix.ML.Runtime;

/// <summary>
/// Makes TorchSharp's native bridge loadable on Linux systems whose libstdc++ is older than the one it was built
/// against (Debian 12 ships GCC 12's libstdc++; libLibTorchSharp.so of TorchSharp 0.107 asks for GLIBCXX_3.4.32).
/// </summary>
/// <remarks>
/// Runs automatically when the MergeMix.ML assembly loads. Where every libstdc++ version the bridge asks for is
/// present, it does nothing. Otherwise it writes a copy of the bridge with the missing version requirements marked
/// weak into a private cache folder (the NuGet cache and the app folder are never modified), loads libtorch from the
/// app's native folder, then the patched copy, and points TorchSharp's <c>LibTorchSharp</c> imports at it.
/// <para>
/// It also sets <c>OMP_WAIT_POLICY=PASSIVE</c> (unless the variable is already set) before libtorch's OpenMP runtime
/// starts: with the default spinning policy, torch's worker threads busy-wait at every parallel region, and as soon as
/// another process competes for the cores (CI, a second training run) a training step became 10–30× slower here.
/// </para>
/// </remarks>
public static class TorchNativeLoader
{
    private const string BridgeFileName = "libLibTorchSharp.so";
    private static readonly object Gate = new();
    private static TorchNativeStatus? _status;

    /// <summary>What the loader did in this process (null before <see cref="EnsureLoaded"/> ran).</summary>
    public static TorchNativeStatus? Status => _status;

#pragma warning disable CA2255 // a module initializer is the one hook that runs before any TorchSharp call of ours
    [ModuleInitializer]
    internal static void OnAssemblyLoad() => EnsureLoaded();
#pragma warning restore CA2255

    /// <summary>Applies the fix if this machine needs it. Safe to call many times; only the first call does work.</summary>
    public static TorchNativeStatus EnsureLoaded()
    {
        lock (Gate)
        {
            if (_status is { } done) return done;
            try
            {
                _status = Load();
            }
            catch (Exception ex)
            {
                // Never break start-up: TorchSharp's own loader then reports whatever is wrong.
                _status = new TorchNativeStatus(TorchNativeAction.Failed, null, null, Array.Empty<string>(), ex.Message);
            }
            return _status;
        }
    }

    private static TorchNativeStatus Load()
    {
        if (!OperatingSystem.IsLinux())
            return new TorchNativeStatus(TorchNativeAction.NotNeeded, null, null, Array.Empty<string>(), "not Linux");
        UsePassiveOpenMpWaits();

        string? bridge = FindBridge();
        if (bridge is null)
            return new TorchNativeStatus(TorchNativeAction.BridgeNotFound, null, null, Array.Empty<string>(),
                $"{BridgeFileName} not found next to the app; reference a TorchSharp backend package (TorchSharp-cpu or TorchSharp-cuda-linux).");

        byte[] original = File.ReadAllBytes(bridge);
        string? libstdcxx = FindLibStdCxx();
        byte[] libstdcxxBytes = libstdcxx is null ? Array.Empty<byte>() : File.ReadAllBytes(libstdcxx);
        var missing = MissingVersions(original, libstdcxxBytes);
        if (missing.Count == 0)
            return new TorchNativeStatus(TorchNativeAction.NotNeeded, bridge, null, missing, "system libstdc++ is new enough");

        string patched = WritePatchedCopy(bridge, original, missing);
        string folder = Path.GetDirectoryName(bridge)!;
        foreach (var dependency in new[] { "libc10.so", "libc10_cuda.so", "libtorch_cpu.so", "libtorch_cuda.so", "libtorch.so" })
        {
            string path = Path.Combine(folder, dependency);
            if (File.Exists(path)) NativeLibrary.Load(path);
        }
        IntPtr handle = NativeLibrary.Load(patched);
        NativeLibrary.SetDllImportResolver(typeof(TorchSharp.torch).Assembly, (name, _, _) =>
            name == "LibTorchSharp" || name == BridgeFileName ? handle : IntPtr.Zero);
        return new TorchNativeStatus(TorchNativeAction.Patched, bridge, patched, missing,
            $"marked {string.Join(", ", missing)} weak because {libstdcxx ?? "libstdc++"} lacks them");
    }

    /// <summary>The OpenMP wait policy libtorch will see (the native environment, which .NET's own API does not change).</summary>
    public static string? OpenMpWaitPolicy => Marshal.PtrToStringAnsi(getenv(OpenMpWaitPolicyVariable));

    private const string OpenMpWaitPolicyVariable = "OMP_WAIT_POLICY";

    private static void UsePassiveOpenMpWaits()
    {
        // Environment.SetEnvironmentVariable only updates .NET's copy on Unix; OpenMP reads the C environment.
        if (getenv(OpenMpWaitPolicyVariable) == IntPtr.Zero) setenv(OpenMpWaitPolicyVariable, "PASSIVE", 0);
    }

    [DllImport("libc", CharSet = CharSet.Ansi)]
    private static extern IntPtr getenv(string name);

    [DllImport("libc", CharSet = CharSet.Ansi)]
    private static extern int setenv(string name, string value, int overwrite);

    /// <summary>Version names the bridge needs from libstdc++ that <paramref name="libstdcxx"/> (file bytes) does not define.</summary>
    internal static IReadOnlyList<string> MissingVersions(byte[] bridge, byte[] libstdcxx) =>
        ElfVersionPatcher.ReadVersionRequirements(bridge)
            .Where(r => r.File.StartsWith("libstdc++", StringComparison.Ordinal) && !r.Weak)
            .Select(r => r.Version)
            .Where(v => !Contains(libstdcxx, Encoding.ASCII.GetBytes(v + "\0")))
            .Distinct()
            .ToList();

    private static bool Contains(byte[] haystack, byte[] needle) => haystack.AsSpan().IndexOf(needle) >= 0;

    private static string WritePatchedCopy(string bridge, byte[] original, IReadOnlyList<string> missing)
    {
        string hash = Convert.ToHexString(SHA256.HashData(original))[..16].ToLowerInvariant();
        string root = Environment.GetEnvironmentVariable("MERGEMIX_NATIVE_CACHE")
                      ?? Path.Combine(Path.GetTempPath(), $"mergemix-native-{Environment.UserName}");
        string dir = Path.Combine(root, hash);
        string target = Path.Combine(dir, BridgeFileName);
        if (File.Exists(target)) return target;

        Directory.CreateDirectory(dir);
        byte[] copy = (byte[])original.Clone();
        ElfVersionPatcher.MarkWeak(copy, missing);
        // Write then rename, so a concurrent process never loads a half-written file.
        string temp = Path.Combine(dir, $"{BridgeFileName}.{Environment.ProcessId}.tmp");
        File.WriteAllBytes(temp, copy);
        File.Move(temp, target, overwrite: true);
        return target;
    }

    private static string? FindBridge()
    {
        var folders = new List<string> { AppContext.BaseDirectory, Path.Combine(AppContext.BaseDirectory, "runtimes", RuntimeInformation.RuntimeIdentifier, "native"),
            Path.Combine(AppContext.BaseDirectory, "runtimes", "linux-x64", "native") };
        if (AppContext.GetData("NATIVE_DLL_SEARCH_DIRECTORIES") is string searchDirs)
            folders.AddRange(searchDirs.Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries));
        var torchAssembly = typeof(TorchSharp.torch).Assembly.Location;
        if (!string.IsNullOrEmpty(torchAssembly)) folders.Add(Path.GetDirectoryName(torchAssembly)!);
        return folders.Select(f => Path.Combine(f, BridgeFileName)).FirstOrDefault(File.Exists);
    }

    private static string? FindLibStdCxx()
    {
        // The runtime host usually has libstdc++ mapped already: that is exactly the copy the bridge will bind to.
        try
        {
            foreach (var line in File.ReadLines("/proc/self/maps"))
            {
                int slash = line.IndexOf('/');
                if (slash >= 0 && line.Contains("libstdc++.so", StringComparison.Ordinal)) return line[slash..].Trim();
            }
        }
        catch (IOException) { }
        string[] dirs = { "/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu", "/lib/aarch64-linux-gnu", "/usr/lib/aarch64-linux-gnu", "/usr/lib64", "/lib64", "/usr/lib" };
        return dirs.Select(d => Path.Combine(d, "libstdc++.so.6")).FirstOrDefault(File.Exists);
    }
}

/// <summary>What <see cref="TorchNativeLoader"/> did.</summary>
public enum TorchNativeAction
{
    /// <summary>The system can load TorchSharp's bridge as shipped.</summary>
    NotNeeded,
    /// <summary>A patched copy of the bridge was loaded.</summary>
    Patched,
    /// <summary>No bridge next to the app (no backend package referenced).</summary>
    BridgeNotFound,
    /// <summary>The fix was needed but could not be applied; see the message.</summary>
    Failed,
}

/// <summary>Outcome of <see cref="TorchNativeLoader.EnsureLoaded"/>.</summary>
/// <param name="Action">What was done.</param>
/// <param name="BridgePath">The app's libLibTorchSharp.so, when found.</param>
/// <param name="PatchedPath">The patched copy that was loaded, when one was needed.</param>
/// <param name="MissingVersions">libstdc++ versions the bridge wants and the system lacks.</param>
/// <param name="Message">A sentence for logs.</param>
public sealed record TorchNativeStatus(TorchNativeAction Action, string? BridgePath, string? PatchedPath,
    IReadOnlyList<string> MissingVersions, string Message);
