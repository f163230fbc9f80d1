using static TorchSharp.torch;

namespace MergeMix.ML.Tests.Alignment;

/// <summary>
/// Runs a test class's tiny models on one intra-op thread and restores the previous count afterwards. With ops this
/// small, OpenMP's spin-waiting across two threads costs far more than it saves, and on a busy 2-core machine it
/// made a forward + backward ~100× slower.
/// </summary>
internal static class SingleTorchThread
{
    private static int saved;

    public static void Enter()
    {
        saved = get_num_threads();
        set_num_threads(1);
    }

    public static void Exit() => set_num_threads(saved);
}
