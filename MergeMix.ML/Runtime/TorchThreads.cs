using TorchSharp;

namespace MergeMix.ML.Runtime;

/// <summary>
/// torch's intra-op thread count is process-wide, so code that needs another count for a while sets it for a scope
/// and puts the caller's count back, leaving no trace on the caller's other torch work.
/// </summary>
public static class TorchThreads
{
    /// <summary>
    /// Sets <paramref name="threads"/> torch threads until the returned scope is disposed, then restores the previous
    /// count; 0 or less (or the current count) changes nothing.
    /// </summary>
    /// <example>
    /// <code language="csharp">
    /// using (MergeMix.ML.Runtime.TorchThreads.Use(1))
    ///     Console.WriteLine(TorchSharp.torch.get_num_threads());
    /// </code>
    /// </example>
    public static IDisposable Use(int threads)
    {
        int previous = torch.get_num_threads();
        if (threads <= 0 || threads == previous) return Unchanged.Instance;
        torch.set_num_threads(threads);
        return new Restore(previous);
    }

    private sealed class Restore(int previous) : IDisposable
    {
        public void Dispose() => torch.set_num_threads(previous);
    }

    private sealed class Unchanged : IDisposable
    {
        public static readonly Unchanged Instance = new();

        public void Dispose() { }
    }
}
