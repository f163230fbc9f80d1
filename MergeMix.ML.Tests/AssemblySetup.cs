using MergeMix.ML.Runtime;
using static TorchSharp.torch;

namespace MergeMix.ML.Tests;

[TestClass]
public static class AssemblySetup
{
    /// <summary>
    /// Loads the native bridge up front (tests may call TorchSharp before touching any MergeMix.ML type) and runs every
    /// test's tiny models on one intra-op thread: with ops this small, two threads coordinating cost more than they
    /// save, and on a busy 2-core machine they made a forward + backward up to ~100× slower. Tests run one at a time,
    /// so the setting is the whole run's.
    /// </summary>
    [AssemblyInitialize]
    public static void LoadTorch(TestContext _)
    {
        TorchNativeLoader.EnsureLoaded();
        set_num_threads(1);
    }
}
