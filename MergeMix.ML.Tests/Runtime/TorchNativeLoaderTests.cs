using System.Text;
using MergeMix.ML.Runtime;
using TorchSharp;

namespace MergeMix.ML.Tests.Runtime;

[TestClass]
public sealed class TorchNativeLoaderTests
{
    [TestMethod]
    public void TensorsWorkAfterLoad()
    {
        var status = TorchNativeLoader.EnsureLoaded();
        Assert.IsTrue(status.Action is TorchNativeAction.NotNeeded or TorchNativeAction.Patched, status.Message);
        using var a = torch.tensor(new float[] { 1, 2, 3, 4 }, new long[] { 2, 2 }, requires_grad: true);
        using var y = a.matmul(a).sum();
        y.backward();
        // d/dA sum(A·A) = G·Aᵀ + Aᵀ·G with G = ones: [[3,7],[3,7]] + [[4,4],[6,6]].
        CollectionAssert.AreEqual(new float[] { 7, 11, 9, 13 }, a.grad!.data<float>().ToArray());
    }

    [TestMethod]
    public void PatchedCopyOnlyWhenSystemLacksVersion()
    {
        var status = TorchNativeLoader.EnsureLoaded();
        Assert.IsNotNull(status.BridgePath, status.Message);
        byte[] bridge = File.ReadAllBytes(status.BridgePath!);
        var requirements = ElfVersionPatcher.ReadVersionRequirements(bridge);
        Assert.IsTrue(requirements.Any(r => r.File.StartsWith("libstdc++") && r.Version == "GLIBCXX_3.4.32" && !r.Weak),
            "the shipped bridge must be untouched (strong requirement still present)");

        // A libstdc++ that defines the version needs no patch; one that lacks it needs exactly that version.
        string allNeeded = string.Concat(requirements.Where(r => r.File.StartsWith("libstdc++")).Select(r => r.Version + "\0"));
        var modern = Encoding.ASCII.GetBytes(allNeeded);
        var lacking = Encoding.ASCII.GetBytes(allNeeded.Replace("GLIBCXX_3.4.32\0", ""));
        CollectionAssert.AreEqual(Array.Empty<string>(), TorchNativeLoader.MissingVersions(bridge, modern).ToArray());
        CollectionAssert.AreEqual(new[] { "GLIBCXX_3.4.32" }, TorchNativeLoader.MissingVersions(bridge, lacking).ToArray());

        if (status.Action == TorchNativeAction.Patched)
        {
            var patched = ElfVersionPatcher.ReadVersionRequirements(File.ReadAllBytes(status.PatchedPath!));
            Assert.IsTrue(patched.Single(r => r.Version == "GLIBCXX_3.4.32").Weak);
            Assert.AreEqual(requirements.Count, patched.Count);
            Assert.AreEqual(requirements.Count(r => r.Weak) + 1, patched.Count(r => r.Weak), "only the missing version changes");
            Assert.IsFalse(status.PatchedPath!.Contains(".nuget"), "the NuGet cache is never written");
        }
    }

    [TestMethod]
    public void OpenMpWaitsArePassiveUnlessTheUserChoseOtherwise()
    {
        TorchNativeLoader.EnsureLoaded();
        // .NET's view is the environment the process started with: what the user set, if anything.
        string expected = Environment.GetEnvironmentVariable("OMP_WAIT_POLICY") ?? "PASSIVE";
        Assert.AreEqual(expected, TorchNativeLoader.OpenMpWaitPolicy);
    }

    [TestMethod]
    public void MarkWeakIsIdempotent()
    {
        byte[] bridge = File.ReadAllBytes(TorchNativeLoader.EnsureLoaded().BridgePath!);
        Assert.AreEqual(1, ElfVersionPatcher.MarkWeak(bridge, new[] { "GLIBCXX_3.4.32" }));
        Assert.AreEqual(0, ElfVersionPatcher.MarkWeak(bridge, new[] { "GLIBCXX_3.4.32" }));
    }

    [TestMethod]
    public void RejectsNonElf()
    {
        var ex = Assert.ThrowsExactly<InvalidDataException>(() => ElfVersionPatcher.ReadVersionRequirements(new byte[100]));
        StringAssert.Contains(ex.Message, "ELF");
    }
}
