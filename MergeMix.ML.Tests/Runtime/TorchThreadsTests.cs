using MergeMix.ML.Runtime;
using static TorchSharp.torch;

namespace MergeMix.ML.Tests.Runtime;

[TestClass]
public sealed class TorchThreadsTests
{
    [TestMethod]
    public void UseSetsTheCountForItsScopeAndRestoresThePreviousOne()
    {
        int before = get_num_threads();
        using (TorchThreads.Use(before + 1))
            Assert.AreEqual(before + 1, get_num_threads());
        Assert.AreEqual(before, get_num_threads());
        using (TorchThreads.Use(0))
            Assert.AreEqual(before, get_num_threads(), "0 keeps the current count");
        Assert.AreEqual(before, get_num_threads());
    }
}
