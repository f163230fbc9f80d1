using MergeMix.ML.Runtime;

namespace MergeMix.ML.Tests;

[TestClass]
public static class AssemblySetup
{
    // Tests may call TorchSharp before touching any MergeMix.ML type, so load the native bridge up front.
    [AssemblyInitialize]
    public static void LoadTorch(TestContext _) => TorchNativeLoader.EnsureLoaded();
}
