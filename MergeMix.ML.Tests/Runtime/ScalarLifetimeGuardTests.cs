namespace MergeMix.ML.Tests.Runtime;

/// <summary>
/// TorchSharp 0.107's Scalar finalizer race (README, Known issues): the library and the samples must keep every Scalar
/// they hand to libtorch alive. These tests fail, naming file:line and what to write, when new code brings back a
/// temporary Scalar.
/// </summary>
[TestClass]
public sealed class ScalarLifetimeGuardTests
{
    [TestMethod]
    public void LibraryAndSamplesKeepEveryScalarAlive()
    {
        var findings = ScalarLifetimeGuard.CheckProjects(RepoRoot(), "MergeMix.ML", "MergeMix.ML.Samples");
        if (findings.Count > 0)
            Assert.Fail($"{findings.Count} temporary TorchSharp Scalar(s) (TorchSharp 0.107 frees them in a finalizer, possibly while " +
                "libtorch still reads them: random 'Scalar.h' crashes). Keep each one alive until the native call returns:\n" +
                string.Join("\n", findings));
    }

    [TestMethod]
    public void GuardFlagsImplicitConversionsCastsAndToScalar()
    {
        var findings = ScalarLifetimeGuard.CheckSnippet("""
            using TorchSharp;
            using static TorchSharp.torch;
            static class C
            {
                static Tensor Scale(Tensor t, double w) => t * w;
                static Tensor Clamp(Tensor t) => t.clamp(min: 0);
                static Tensor Fill(Tensor t, Tensor m) => t.masked_fill(m, (Scalar)float.NegativeInfinity);
                static Tensor Add(Tensor t) => t.add(2.0.ToScalar(), 1.0.ToScalar());
            }
            """);
        CollectionAssert.AreEqual(new[] { 5, 6, 7, 8, 8 }, findings.Select(f => f.Line).ToArray(), string.Join("\n", findings));
        StringAssert.Contains(findings[0].ToString(), "Snippet.cs:5: `t * w`");
        StringAssert.Contains(findings[0].Fix, "t.mul(s)");
        StringAssert.Contains(findings[1].ToString(), "Snippet.cs:6: `0`");
        StringAssert.Contains(findings[1].Fix, "using var s = value.ToScalar();");
    }

    [TestMethod]
    public void GuardFlagsTorchSharpMethodsThatMakeTheirOwnScalar()
    {
        var findings = ScalarLifetimeGuard.CheckSnippet("""
            using TorchSharp;
            using static TorchSharp.torch;
            static class C
            {
                static Tensor Sum(Tensor a, Tensor b) => a + b;
                static Tensor Plus(Tensor a, Tensor b) => a.add(b);
                static Tensor Difference(Tensor a, Tensor b) => a - b;
            }
            """);
        CollectionAssert.AreEqual(new[] { 5, 6 }, findings.Select(f => f.Line).ToArray(), string.Join("\n", findings));
        StringAssert.Contains(findings[0].Fix, "a.add(b, Scalars.One)");
    }

    [TestMethod]
    public void GuardAcceptsUsingLocalsAndStaticReadonlyFields()
    {
        var findings = ScalarLifetimeGuard.CheckSnippet("""
            using TorchSharp;
            using static TorchSharp.torch;
            static class C
            {
                static readonly Scalar Half = 0.5;
                static Tensor Scale(Tensor t, double w)
                {
                    using var s = w.ToScalar();
                    using (var h = (Scalar)0.25) { t = t.mul(h); }
                    return t.mul(s).add(t, Half);
                }
            }
            """);
        Assert.AreEqual(0, findings.Count, string.Join("\n", findings));
    }

    [TestMethod]
    public void WaiverCoversOnlyItsLineAndNeedsAReason()
    {
        var findings = ScalarLifetimeGuard.CheckSnippet("""
            using TorchSharp;
            using static TorchSharp.torch;
            static class C
            {
                static Tensor A(Tensor t) => t * 0.5; // ScalarGuard:allow compared against upstream on purpose
                static Tensor B(Tensor t) => t * 0.5;
                static Tensor D(Tensor t) => t * 0.5; // ScalarGuard:allow because
            }
            """);
        CollectionAssert.AreEqual(new[] { 6, 7 }, findings.Select(f => f.Line).ToArray(), string.Join("\n", findings));
    }

    [TestMethod]
    public void IlScanFindsTorchSharpsInternalScalars()
    {
        var creators = TorchSharpScalarCreators.Load();
        Assert.IsTrue(creators.Creates("TorchSharp.torch.Tensor", "add"), "Tensor.add(Tensor) makes alpha = 1 internally");
        Assert.IsTrue(creators.Creates("TorchSharp.Modules.AdamW", "step"), "AdamW.step converts its hyper-parameters per parameter");
        Assert.IsFalse(creators.Creates("TorchSharp.torch.Tensor", "sub"), "Tensor.sub(Tensor) calls native code directly");
    }

    private static string RepoRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "MergeMix.sln"))) return dir.FullName;
        throw new DirectoryNotFoundException("MergeMix.sln not found above " + AppContext.BaseDirectory);
    }
}
