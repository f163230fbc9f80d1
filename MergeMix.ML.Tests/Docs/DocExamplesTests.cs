using System.Reflection;
using System.Text.RegularExpressions;
using System.Xml.Linq;
using MergeMix.ML.Tests.Data;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;

namespace MergeMix.ML.Tests.Docs;

/// <summary>
/// Every C# example a user can copy compiles against the library as built: the <c>```csharp</c> blocks of the Markdown
/// files and the <c>&lt;code&gt;</c> elements of the XML doc comments (read from the generated documentation file).
/// </summary>
/// <remarks>
/// An example is compiled alone, as top-level statements, with the library's namespaces imported and a few names it may
/// use without declaring them (<see cref="Givens"/>): an ML.NET context, training and test data, a pipeline. It must
/// declare anything else, and a local of its own shadows a given name.
/// </remarks>
[TestClass]
public sealed class DocExamplesTests
{
    /// <summary>Names an example may use as if the user had them already (mlContext, data, a pipeline, row classes).</summary>
    private const string Givens = """
        public static class DocGivens
        {
            public static Microsoft.ML.MLContext ml = new(seed: 0);
            public static Microsoft.ML.MLContext mlContext = ml;
            public static Microsoft.ML.IDataView train = null!, test = null!;
            public static Microsoft.ML.IEstimator<Microsoft.ML.ITransformer> pipeline = null!;
        }

        public sealed class ImageInput
        {
            [Microsoft.ML.Data.VectorType(3, 32, 32)] public float[] Features { get; set; } = System.Array.Empty<float>();
        }

        public sealed class ImagePrediction
        {
            public float[] Score { get; set; } = System.Array.Empty<float>();
            public uint PredictedLabel { get; set; }
        }
        """;

    private sealed record Example(string Where, string Code);

    private static IEnumerable<Example> MarkdownExamples(string root)
    {
        var files = Directory.EnumerateFiles(root, "*.md", SearchOption.AllDirectories)
            .Where(f => !f.Split(Path.DirectorySeparatorChar).Any(part => part is "bin" or "obj" or ".git" or "out"))
            .OrderBy(f => f, StringComparer.Ordinal);
        foreach (var file in files)
        {
            var lines = File.ReadAllLines(file);
            for (int i = 0; i < lines.Length; i++)
            {
                if (!Regex.IsMatch(lines[i].Trim(), @"^```\s*(csharp|cs|c#)\s*$", RegexOptions.IgnoreCase)) continue;
                int start = i + 1;
                int end = start;
                while (end < lines.Length && lines[end].Trim() != "```") end++;
                yield return new Example($"{Path.GetRelativePath(root, file)}:{start}", string.Join('\n', lines[start..end]));
                i = end;
            }
        }
    }

    private static IEnumerable<Example> XmlDocExamples(string xmlPath)
    {
        var doc = XDocument.Load(xmlPath);
        foreach (var member in doc.Descendants("member"))
            foreach (var code in member.Descendants("code"))
                yield return new Example($"<code> of {member.Attribute("name")?.Value}", code.Value);
    }

    private static IReadOnlyList<string> CompileErrors(Example example, IReadOnlyList<MetadataReference> references, IEnumerable<string> namespaces)
    {
        var options = new CSharpParseOptions(LanguageVersion.Latest);
        var usings = string.Concat(new[] { "System", "System.Collections.Generic", "System.IO", "System.Linq", "System.Threading", "Microsoft.ML",
                "Microsoft.ML.Data", "Microsoft.ML.Transforms", "Microsoft.ML.Transforms.Image" }
            .Concat(namespaces).Select(n => $"global using global::{n};\n")) + "global using static DocGivens;\n";
        var trees = new[]
        {
            CSharpSyntaxTree.ParseText(example.Code, options, path: example.Where),
            CSharpSyntaxTree.ParseText(usings, options, path: "Usings.g.cs"),
            CSharpSyntaxTree.ParseText(Givens, options, path: "Givens.g.cs"),
        };
        var compilation = CSharpCompilation.Create("DocExample", trees, references,
            new CSharpCompilationOptions(OutputKind.ConsoleApplication, nullableContextOptions: NullableContextOptions.Enable));
        return compilation.GetDiagnostics().Where(d => d.Severity == DiagnosticSeverity.Error)
            .Select(d => $"{example.Where}: {d.GetMessage()} (`{Snippet(d)}`)").ToList();
    }

    private static string Snippet(Diagnostic d) => d.Location.SourceTree?.GetText().ToString(d.Location.SourceSpan) ?? "";

    private static List<MetadataReference> References() =>
        ((string)AppContext.GetData("TRUSTED_PLATFORM_ASSEMBLIES")!).Split(Path.PathSeparator)
        .Select(p => (MetadataReference)MetadataReference.CreateFromFile(p)).ToList();

    private static IEnumerable<string> LibraryNamespaces() => typeof(MergeMix.ML.Transforms.MixingEstimator).Assembly.GetExportedTypes()
        .Select(t => t.Namespace!).Where(n => n is not null).Distinct().Order(StringComparer.Ordinal);

    [TestMethod]
    public void EveryCSharpExampleInTheMarkdownFilesCompiles()
    {
        var examples = MarkdownExamples(TestFolders.RepositoryRoot()).ToList();
        Assert.IsTrue(examples.Count >= 2, $"found {examples.Count} examples");
        var references = References();
        var errors = examples.SelectMany(e => CompileErrors(e, references, LibraryNamespaces())).ToList();
        Assert.AreEqual(0, errors.Count, string.Join("\n", errors));
    }

    [TestMethod]
    public void EveryCodeExampleInTheXmlDocsCompiles()
    {
        var xml = Path.ChangeExtension(typeof(MergeMix.ML.Transforms.MixingEstimator).Assembly.Location, ".xml");
        Assert.IsTrue(File.Exists(xml), $"no documentation file at {xml}");
        var examples = XmlDocExamples(xml).ToList();
        Assert.IsTrue(examples.Any(e => e.Where.Contains("MixingEstimator", StringComparison.Ordinal)), "the MixingEstimator example was not found");
        var references = References();
        var errors = examples.SelectMany(e => CompileErrors(e, references, LibraryNamespaces())).ToList();
        Assert.AreEqual(0, errors.Count, string.Join("\n", errors));
    }

    [TestMethod]
    public void ABrokenExampleIsReportedWithItsPlace()
    {
        var errors = CompileErrors(new Example("README.md:1", "var p = ml.Transforms.MergeMix(new MixingEstimator.Options());"), References(), LibraryNamespaces());
        Assert.AreEqual(1, errors.Count, string.Join("\n", errors));
        StringAssert.StartsWith(errors[0], "README.md:1: ");
    }
}
