using System.Collections.Immutable;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;
using Microsoft.CodeAnalysis.CSharp.Syntax;
using Microsoft.CodeAnalysis.Operations;
using Mono.Cecil;
using Mono.Cecil.Cil;
using TorchSharp;

namespace MergeMix.ML.Tests.Runtime;

/// <summary>
/// Finds code that hands libtorch a TorchSharp <see cref="Scalar"/> nobody keeps alive. TorchSharp 0.107 passes a
/// Scalar's handle to native code without <c>GC.KeepAlive</c>, so a temporary Scalar (<c>t * 0.5</c>, <c>a + b</c>,
/// <c>clamp(min: 0)</c>) can be finalized while libtorch reads it: "Exception raised from toFloat at
/// c10/core/Scalar.h" or a native abort, at random. The check compiles our sources with Roslyn and uses the semantic
/// model, so it sees the conversions the compiler inserts; which TorchSharp methods create Scalars internally is read
/// from the IL of the TorchSharp.dll the tests run with, so an upgrade re-checks itself.
/// </summary>
internal static class ScalarLifetimeGuard
{
    public sealed record Finding(string File, int Line, string Code, string Problem, string Fix)
    {
        public override string ToString() => $"{File}:{Line}: `{Code}`: {Problem} Write instead: {Fix}";
    }

    public const string ScalarTypeName = "TorchSharp.Scalar";

    private const string KeepAliveAdvice =
        "a cached scalar (`Scalars.One`, `Scalars.Zero`, ... or a `static readonly Scalar` field) or " +
        "`using var s = value.ToScalar();` declared before the call, then pass `s`";

    private const string WithNumber =
        "the method with a kept-alive Scalar s (cached, or `using var s = value.ToScalar();` before the call): " +
        "`t.mul(s)`, `t.div(s)`, `t.sub(s)`, `t.add(s, Scalars.One)`, `Scalars.OneMinus(t)` for `1 - t`";

    /// <summary>What to write instead of a TorchSharp method that makes a temporary Scalar of its own.</summary>
    private static string Replacement(IMethodSymbol method)
    {
        bool tensorsOnly = method.Parameters.All(p => p.Type.Name is "Tensor" or "Func");
        return method.Name switch
        {
            "op_Addition" when tensorsOnly => "`a.add(b, Scalars.One)` (Tensor + Tensor calls add(b), which makes alpha = 1 as a temporary Scalar)",
            "add" or "add_" => $"`a.{method.Name}(b, Scalars.One)` (the overload without alpha makes alpha = 1 as a temporary Scalar)",
            "op_Addition" or "op_Subtraction" or "op_Multiply" or "op_Division" => WithNumber + " (the operators taking a .NET number convert it inside TorchSharp)",
            "arange" => "`Scalars.Arange(start, stop, dtype, device)` (the short arange overloads make start = 0 and step = 1 as temporary Scalars)",
            "softplus" => "`z.log_sigmoid().neg()` for softplus(−z), `x.neg().log_sigmoid().neg()` for softplus(x) (softplus converts β and threshold)",
            "square" => "`t.pow(Scalars.Two)` (square() is pow(2) with a temporary Scalar)",
            "step" => "`new MergeMix.ML.Runtime.KeptAliveAdamW(...)` instead of `optim.AdamW(...)` (TorchSharp's optimizers make Scalars of their hyper-parameters per parameter and step)",
            _ => "an overload that takes each Scalar as an argument, given kept-alive scalars (cached, or `using var s = value.ToScalar();`)",
        };
    }

    /// <summary>Checks every .cs file under the given project folders (compiled in order, each referencing the previous).</summary>
    public static IReadOnlyList<Finding> CheckProjects(string repoRoot, params string[] projectFolders)
    {
        var findings = new List<Finding>();
        var creators = TorchSharpScalarCreators.Load();
        var references = PlatformReferences(projectFolders);
        var previous = new List<MetadataReference>();
        foreach (var folder in projectFolders)
        {
            var dir = Path.Combine(repoRoot, folder);
            var files = Directory.EnumerateFiles(dir, "*.cs", SearchOption.AllDirectories)
                .Where(f => !IsBuildOutput(dir, f)).OrderBy(f => f, StringComparer.Ordinal).ToList();
            var trees = files.Select(f => CSharpSyntaxTree.ParseText(File.ReadAllText(f), ParseOptions, path: Path.GetRelativePath(repoRoot, f))).ToList();
            trees.Add(CSharpSyntaxTree.ParseText(ImplicitUsings, ParseOptions, path: $"{folder}/ImplicitUsings.g.cs"));
            var isExe = File.ReadAllText(Directory.GetFiles(dir, "*.csproj").Single()).Contains("<OutputType>Exe</OutputType>");
            var compilation = CSharpCompilation.Create(folder, trees, references.Concat(previous),
                new CSharpCompilationOptions(isExe ? OutputKind.ConsoleApplication : OutputKind.DynamicallyLinkedLibrary,
                    nullableContextOptions: NullableContextOptions.Enable, allowUnsafe: true));
            var errors = compilation.GetDiagnostics().Where(d => d.Severity == DiagnosticSeverity.Error).Take(5).ToList();
            if (errors.Count > 0)
                throw new InvalidOperationException($"The Scalar guard could not compile {folder} (it must see every call): " + string.Join("; ", errors));
            foreach (var tree in trees)
                findings.AddRange(CheckTree(compilation.GetSemanticModel(tree), creators));
            previous.Add(compilation.ToMetadataReference());
        }
        return findings;
    }

    /// <summary>Checks one snippet (for the guard's own tests).</summary>
    public static IReadOnlyList<Finding> CheckSnippet(string source)
    {
        var tree = CSharpSyntaxTree.ParseText(source, ParseOptions, path: "Snippet.cs");
        var usings = CSharpSyntaxTree.ParseText(ImplicitUsings, ParseOptions, path: "ImplicitUsings.g.cs");
        var compilation = CSharpCompilation.Create("Snippet", [tree, usings], PlatformReferences(),
            new CSharpCompilationOptions(OutputKind.DynamicallyLinkedLibrary, nullableContextOptions: NullableContextOptions.Enable));
        var errors = compilation.GetDiagnostics().Where(d => d.Severity == DiagnosticSeverity.Error).ToList();
        if (errors.Count > 0) throw new InvalidOperationException(string.Join("; ", errors));
        return CheckTree(compilation.GetSemanticModel(tree), TorchSharpScalarCreators.Load()).ToList();
    }

    private static readonly CSharpParseOptions ParseOptions = new(LanguageVersion.Preview);

    // What ImplicitUsings=enable adds for Microsoft.NET.Sdk projects.
    private const string ImplicitUsings =
        "global using global::System; global using global::System.Collections.Generic; global using global::System.IO; " +
        "global using global::System.Linq; global using global::System.Net.Http; global using global::System.Threading; " +
        "global using global::System.Threading.Tasks;";

    private static bool IsBuildOutput(string projectDir, string file)
    {
        var relative = Path.GetRelativePath(projectDir, file).Replace('\\', '/');
        return relative.StartsWith("obj/", StringComparison.Ordinal) || relative.StartsWith("bin/", StringComparison.Ordinal);
    }

    private static List<MetadataReference> PlatformReferences(params string[] exclude)
    {
        var paths = ((string)AppContext.GetData("TRUSTED_PLATFORM_ASSEMBLIES")!).Split(Path.PathSeparator);
        return paths.Where(p => !exclude.Contains(Path.GetFileNameWithoutExtension(p)))
            .Select(p => (MetadataReference)MetadataReference.CreateFromFile(p)).ToList();
    }

    /// <summary>
    /// A line comment that waives the findings of its own line: <c>// ScalarGuard:allow</c> and why (at least three
    /// words), for code that must run TorchSharp's racy path on purpose, such as a benchmark against upstream AdamW.
    /// </summary>
    public const string Waiver = "// ScalarGuard:allow";

    private static IEnumerable<Finding> CheckTree(SemanticModel model, TorchSharpScalarCreators creators)
    {
        var text = model.SyntaxTree.GetText();
        return Unwaived(model, creators).Where(f => !IsWaived(text.Lines[f.Line - 1].ToString()));
    }

    private static bool IsWaived(string line)
    {
        int at = line.IndexOf(Waiver, StringComparison.Ordinal);
        return at >= 0 && line[(at + Waiver.Length)..].Split(' ', StringSplitOptions.RemoveEmptyEntries).Length >= 3;
    }

    private static IEnumerable<Finding> Unwaived(SemanticModel model, TorchSharpScalarCreators creators)
    {
        var scalar = model.Compilation.GetTypeByMetadataName(ScalarTypeName)
            ?? throw new InvalidOperationException("TorchSharp.Scalar is not referenced.");
        var root = model.SyntaxTree.GetRoot();
        foreach (var node in root.DescendantNodes())
        {
            if (node is ExpressionSyntax expression && CreatesUnheldScalar(model, expression, scalar) is { } what && !IsKeptAlive(model, expression))
                yield return At(expression, what, KeepAliveAdvice);

            foreach (var method in CalledMethods(model, node))
            {
                if (creators.Creates(method) is not { } internalCall) continue;
                yield return At(node, $"TorchSharp's {Describe(method)} creates a temporary Scalar internally ({internalCall}), which the GC may free while libtorch reads it.",
                    Replacement(method));
            }
        }
    }

    /// <summary>Names the conversion when <paramref name="expression"/> turns a non-Scalar into a new Scalar.</summary>
    private static string? CreatesUnheldScalar(SemanticModel model, ExpressionSyntax expression, INamedTypeSymbol scalar)
    {
        if (expression is CastExpressionSyntax cast && SymbolEqualityComparer.Default.Equals(model.GetTypeInfo(cast).Type, scalar)
            && !IsScalar(model.GetTypeInfo(cast.Expression).Type, scalar))
            return $"casting {model.GetTypeInfo(cast.Expression).Type?.ToDisplayString() ?? "a value"} to a temporary TorchSharp.Scalar that the GC may finalize while libtorch reads it (TorchSharp 0.107 race).";
        if (expression.Parent is CastExpressionSyntax) return null;
        if (expression.Parent is MemberAccessExpressionSyntax access && access.Name == expression) return null;
        var info = model.GetTypeInfo(expression);
        if (IsScalar(info.ConvertedType, scalar) && info.Type is { } from && !IsScalar(from, scalar)
            && model.GetConversion(expression).IsUserDefined)
            return $"the implicit conversion of {from.ToDisplayString()} to TorchSharp.Scalar creates a temporary Scalar that the GC may finalize while libtorch reads it (TorchSharp 0.107 race).";
        if (expression is InvocationExpressionSyntax && model.GetSymbolInfo(expression).Symbol is IMethodSymbol { Name: "ToScalar" } m
            && m.ContainingType.ToDisplayString() == "TorchSharp.ScalarExtensionMethods")
            return "ToScalar() makes a Scalar that nothing keeps alive past this expression.";
        return null;
    }

    private static bool IsScalar(ITypeSymbol? type, INamedTypeSymbol scalar) =>
        type is not null && SymbolEqualityComparer.Default.Equals(type.WithNullableAnnotation(NullableAnnotation.NotAnnotated), scalar);

    /// <summary>A Scalar lives as long as a `using` local or a static readonly field that holds it.</summary>
    private static bool IsKeptAlive(SemanticModel model, ExpressionSyntax expression)
    {
        if (expression.Parent is not EqualsValueClauseSyntax { Parent: VariableDeclaratorSyntax { Parent: VariableDeclarationSyntax declaration } })
            return false;
        return declaration.Parent switch
        {
            LocalDeclarationStatementSyntax local => local.UsingKeyword != default,
            UsingStatementSyntax => true,
            FieldDeclarationSyntax field => field.Modifiers.Any(SyntaxKind.StaticKeyword) && field.Modifiers.Any(SyntaxKind.ReadOnlyKeyword),
            _ => false,
        };
    }

    private static IEnumerable<IMethodSymbol> CalledMethods(SemanticModel model, SyntaxNode node)
    {
        var operation = model.GetOperation(node);
        if (operation is null || operation.Syntax != node) yield break;
        switch (operation)
        {
            case IInvocationOperation invocation:
                yield return invocation.TargetMethod;
                // Module.call dispatches to the receiver's forward, which the call graph cannot see.
                if (invocation.TargetMethod.Name == "call" && invocation.Instance?.Type is INamedTypeSymbol receiver)
                    foreach (var forward in receiver.GetMembers("forward").OfType<IMethodSymbol>())
                        yield return forward;
                break;
            case IBinaryOperation { OperatorMethod: { } op }: yield return op; break;
            case IUnaryOperation { OperatorMethod: { } op }: yield return op; break;
            case ICompoundAssignmentOperation { OperatorMethod: { } op }: yield return op; break;
            case IObjectCreationOperation { Constructor: { } ctor }: yield return ctor; break;
            case IPropertyReferenceOperation property:
                if (property.Property.GetMethod is { } get) yield return get;
                if (property.Property.SetMethod is { } set) yield return set;
                break;
        }
    }

    private static string Describe(IMethodSymbol method) =>
        method.MethodKind is MethodKind.UserDefinedOperator ? $"operator {method.ContainingType.Name}.{method.Name}" : method.ToDisplayString();

    private static Finding At(SyntaxNode node, string problem, string fix)
    {
        var span = node.GetLocation().GetLineSpan();
        var code = node.ToString().ReplaceLineEndings(" ");
        return new Finding(span.Path.Replace('\\', '/'), span.StartLinePosition.Line + 1, code.Length > 80 ? code[..77] + "..." : code, problem, fix);
    }
}

/// <summary>
/// The TorchSharp methods that create a Scalar in their own body (an implicit conversion or ToScalar) and dispose
/// fewer than they create, plus every TorchSharp method that calls one (lambdas and iterators included), read from IL.
/// </summary>
internal sealed class TorchSharpScalarCreators
{
    private static readonly Lazy<TorchSharpScalarCreators> Instance = new(() => new TorchSharpScalarCreators(typeof(torch).Assembly.Location));
    private readonly Dictionary<string, string> creators; // method key → the call inside TorchSharp that makes the Scalar

    public static TorchSharpScalarCreators Load() => Instance.Value;

    public int Count => creators.Count;

    private TorchSharpScalarCreators(string assemblyPath)
    {
        using var module = ModuleDefinition.ReadModule(assemblyPath);
        var methods = module.GetTypes().SelectMany(t => t.Methods).Where(m => m.HasBody).ToList();
        var callers = new Dictionary<MethodDefinition, List<MethodDefinition>>();
        var pending = new Queue<MethodDefinition>();
        creators = new Dictionary<string, string>(StringComparer.Ordinal);
        var origin = new Dictionary<MethodDefinition, string>();
        foreach (var method in methods)
        {
            int made = 0, disposed = 0;
            foreach (var instruction in method.Body.Instructions)
            {
                if (instruction.Operand is not MethodReference callee) continue;
                var type = callee.DeclaringType.FullName;
                if ((type == ScalarLifetimeGuard.ScalarTypeName && callee.Name == "op_Implicit") ||
                    (type == "TorchSharp.ScalarExtensionMethods" && callee.Name == "ToScalar"))
                    made++;
                else if (type == ScalarLifetimeGuard.ScalarTypeName && callee.Name == "Dispose")
                    disposed++;
                if (instruction.OpCode.Code is not (Code.Call or Code.Callvirt or Code.Newobj or Code.Ldftn or Code.Ldvirtftn)) continue;
                if (callee.Resolve() is not { } target || target.Module != module) continue;
                foreach (var reached in Reached(target))
                {
                    if (!callers.TryGetValue(reached, out var list)) callers[reached] = list = [];
                    list.Add(method);
                }
            }
            // The conversion operators and ToScalar themselves hand their result to the caller, which the Roslyn side checks.
            if (made > disposed && !IsScalarFactory(method))
            {
                origin[method] = $"{method.DeclaringType.Name}.{method.Name} converts a number to Scalar";
                pending.Enqueue(method);
            }
        }
        while (pending.TryDequeue(out var method))
        {
            if (!callers.TryGetValue(method, out var list)) continue;
            foreach (var caller in list)
                if (origin.TryAdd(caller, origin[method])) pending.Enqueue(caller);
        }
        foreach (var (method, why) in origin)
            if (!IsCompilerGenerated(method.DeclaringType)) creators.TryAdd(Key(method), why);
    }

    private static bool IsScalarFactory(MethodDefinition method) =>
        (method.DeclaringType.FullName == ScalarLifetimeGuard.ScalarTypeName && method.Name == "op_Implicit") ||
        (method.DeclaringType.FullName == "TorchSharp.ScalarExtensionMethods" && method.Name == "ToScalar");

    // A new closure or iterator object "reaches" all of its methods (MoveNext, the lambda bodies).
    private static IEnumerable<MethodDefinition> Reached(MethodDefinition target)
    {
        yield return target;
        if (target.IsConstructor && IsCompilerGenerated(target.DeclaringType))
            foreach (var m in target.DeclaringType.Methods.Where(m => m.HasBody && !m.IsConstructor))
                yield return m;
    }

    private static bool IsCompilerGenerated(TypeDefinition type)
    {
        for (var t = type; t is not null; t = t.DeclaringType)
            if (t.Name.Contains('<')) return true;
        return false;
    }

    /// <summary>The call inside TorchSharp that creates the Scalar, or null when <paramref name="method"/> makes none.</summary>
    public string? Creates(IMethodSymbol method)
    {
        var original = (method.ReducedFrom ?? method).OriginalDefinition;
        if (original.ContainingAssembly?.Name != "TorchSharp") return null;
        return creators.TryGetValue(Key(original), out var why) ? why : null;
    }

    public bool Creates(string typeName, string methodName) =>
        creators.Keys.Any(k => k.StartsWith(typeName + "::" + methodName + "(", StringComparison.Ordinal));

    private static string Key(MethodDefinition method)
    {
        var parameters = string.Join(",", method.Parameters.Select(p => TypeName(p.ParameterType)));
        return $"{TypeChain(method.DeclaringType)}::{method.Name}({parameters})";
    }

    private static string TypeChain(TypeDefinition type) =>
        type.DeclaringType is { } outer ? TypeChain(outer) + "." + type.Name : type.Namespace + "." + type.Name;

    private static string TypeName(TypeReference type) => type switch
    {
        ByReferenceType r => TypeName(r.ElementType) + "&",
        ArrayType a => TypeName(a.ElementType) + "[]",
        PointerType p => TypeName(p.ElementType) + "*",
        GenericInstanceType g => g.ElementType.Name,
        RequiredModifierType m => TypeName(m.ElementType),
        OptionalModifierType m => TypeName(m.ElementType),
        _ => type.Name,
    };

    private static string Key(IMethodSymbol method)
    {
        var parameters = string.Join(",", method.Parameters.Select(p => TypeName(p.Type) + (p.RefKind == RefKind.None ? "" : "&")));
        return $"{TypeChain(method.ContainingType)}::{method.MetadataName}({parameters})";
    }

    private static string TypeChain(INamedTypeSymbol type) =>
        type.ContainingType is { } outer ? TypeChain(outer) + "." + type.MetadataName : type.ContainingNamespace.ToDisplayString() + "." + type.MetadataName;

    private static string TypeName(ITypeSymbol type) => type switch
    {
        IArrayTypeSymbol a => TypeName(a.ElementType) + "[]",
        IPointerTypeSymbol p => TypeName(p.PointedAtType) + "*",
        ITypeParameterSymbol t => t.Name,
        _ => type.MetadataName,
    };
}
