namespace MergeMix.ML.Samples;

/// <summary>
/// Runs the handler on the reporting thread, inside the step or epoch that reports: <see cref="Progress{T}"/> would post
/// it to the thread pool, after training (and its checkpoint) may have moved on.
/// </summary>
internal sealed class SyncProgress<T>(Action<T> handler) : IProgress<T>
{
    public void Report(T value) => handler(value);
}
