using System.Collections;
using System.Globalization;
using System.Reflection;
using System.Runtime.InteropServices;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using MergeMix.ML.Mixing;
using Microsoft.ML;
using TorchSharp;
using static TorchSharp.torch;

namespace MergeMix.ML.Runtime;

/// <summary>What a trainer does when its checkpoint was made with other data or other options.</summary>
public enum CheckpointMismatch
{
    /// <summary>Refuse to resume: throw an <see cref="InvalidOperationException"/> naming every difference.</summary>
    Fail,
    /// <summary>Resume anyway (a deliberate continuation, e.g. several runs sharing one SFT checkpoint); the
    /// differences are logged as a warning.</summary>
    Resume,
}

/// <summary>
/// What decides a training run's result, as sorted "name → value" entries: every option (read generically from the
/// options object, so options added later are covered without touching this code), content hashes of the data, the
/// tokenizer and the initial weights. A checkpoint stores it; resuming compares it with the current run's and names
/// what differs ("LearningRate: checkpoint 0.001, options 0.0005").
/// </summary>
internal sealed class TrainingFingerprint
{
    /// <summary>Name of the fingerprint file or archive entry next to a checkpoint.</summary>
    public const string FileName = "fingerprint.json";

    private const string DataPrefix = "Data.";
    private static readonly JsonSerializerOptions Json = new() { WriteIndented = true };

    public SortedDictionary<string, string> Entries { get; } = new(StringComparer.Ordinal);

    // What each option entry reads in a freshly constructed options object. Not written: it lets a checkpoint made
    // before an option existed (so it does not record it) match a run that leaves the new option at its default,
    // which is what the older code did, instead of refusing every checkpoint after a library upgrade.
    private readonly Dictionary<string, string> defaults = new(StringComparer.Ordinal);

    // False for the walk of a default value itself: only its entries are wanted, not defaults of the defaults.
    private bool recordDefaults = true;

    public void Add(string name, string value) => Entries[name] = value;

    /// <summary>Adds a data entry (compared as "data", not "options").</summary>
    public void AddData(string name, string value) => Entries[DataPrefix + name] = value;

    /// <summary>
    /// Adds every public field and settable property of <paramref name="options"/>, recursively for the library's
    /// own option and policy types, under <paramref name="prefix"/>. Members named in <paramref name="excluded"/>
    /// (top level only) and values that cannot decide a result (progress sinks, cancellation tokens, data views,
    /// delegates) are left out.
    /// </summary>
    public void AddOptions(string prefix, object? options, IEnumerable<string>? excluded = null)
    {
        var skip = new HashSet<string>(excluded ?? Array.Empty<string>(), StringComparer.Ordinal);
        AddValue(prefix, options, skip, depth: 0);
    }

    /// <summary>The differences from <paramref name="saved"/> (the checkpoint's), one line each; empty when they match.</summary>
    public IReadOnlyList<string> DifferencesFrom(TrainingFingerprint saved)
    {
        var lines = new List<string>();
        foreach (var name in saved.Entries.Keys.Union(Entries.Keys).Order(StringComparer.Ordinal))
        {
            saved.Entries.TryGetValue(name, out var before);
            Entries.TryGetValue(name, out var now);
            if (before == now) continue;
            if (before is null && now is not null && defaults.TryGetValue(name, out var fresh) && fresh == now) continue;
            string source = name.StartsWith(DataPrefix, StringComparison.Ordinal) ? "data" : "options";
            lines.Add($"{name}: checkpoint {before ?? "(not recorded)"}, {source} {now ?? "(none)"}");
        }
        return lines;
    }

    /// <summary>The differences limited to the data entries (those added with <see cref="AddData"/>).</summary>
    public TrainingFingerprint DataOnly()
    {
        var data = new TrainingFingerprint();
        foreach (var (name, value) in Entries.Where(e => e.Key.StartsWith(DataPrefix, StringComparison.Ordinal))) data.Entries[name] = value;
        return data;
    }

    /// <summary>The entries other than the data entries.</summary>
    public TrainingFingerprint WithoutData()
    {
        var rest = new TrainingFingerprint();
        foreach (var (name, value) in Entries.Where(e => !e.Key.StartsWith(DataPrefix, StringComparison.Ordinal))) rest.Entries[name] = value;
        return rest;
    }

    public TrainingFingerprint Merge(TrainingFingerprint other)
    {
        var merged = new TrainingFingerprint();
        foreach (var (name, value) in Entries) merged.Entries[name] = value;
        foreach (var (name, value) in other.Entries) merged.Entries[name] = value;
        foreach (var (name, value) in defaults) merged.defaults[name] = value;
        foreach (var (name, value) in other.defaults) merged.defaults[name] = value;
        return merged;
    }

    public void Write(Stream stream) => JsonSerializer.Serialize(stream, Entries, Json);

    public static TrainingFingerprint Read(Stream stream, string source)
    {
        SortedDictionary<string, string>? entries;
        try
        {
            entries = JsonSerializer.Deserialize<SortedDictionary<string, string>>(stream, Json);
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"The checkpoint fingerprint {source} is not valid JSON: {e.Message}", e);
        }
        var fingerprint = new TrainingFingerprint();
        foreach (var (name, value) in entries ?? new SortedDictionary<string, string>()) fingerprint.Entries[name] = value;
        return fingerprint;
    }

    /// <summary>The error thrown for a mismatch under <see cref="CheckpointMismatch.Fail"/>.</summary>
    public static InvalidOperationException MismatchError(string checkpoint, IReadOnlyList<string> differences, string optionName) => new(
        $"The checkpoint '{checkpoint}' was made with other data or options, so resuming from it would not give the result these settings ask for. " +
        $"Differences: {string.Join("; ", differences)}. Use another checkpoint folder or delete this one to start afresh, or set " +
        $"{optionName} = CheckpointMismatch.Resume to continue from it deliberately.");

    // ---- content hashes ----

    /// <summary>"N values, sha256 …" of raw floats.</summary>
    public static string Hash(ReadOnlySpan<float> values, string what) =>
        $"{values.Length} {what}, sha256 {Hex(SHA256.HashData(MemoryMarshal.AsBytes(values)))}";

    /// <summary>"N values, sha256 …" of integers.</summary>
    public static string Hash(ReadOnlySpan<int> values, string what) =>
        $"{values.Length} {what}, sha256 {Hex(SHA256.HashData(MemoryMarshal.AsBytes(values)))}";

    /// <summary>"N texts, sha256 …" of texts (length-prefixed, so ["ab", "c"] and ["a", "bc"] differ).</summary>
    public static string Hash(IReadOnlyList<string> texts, string what)
    {
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        Span<byte> length = stackalloc byte[4];
        foreach (var text in texts)
        {
            var bytes = Encoding.UTF8.GetBytes(text ?? "");
            BitConverter.TryWriteBytes(length, bytes.Length);
            hash.AppendData(length);
            hash.AppendData(bytes);
        }
        return $"{texts.Count} {what}, sha256 {Hex(hash.GetHashAndReset())}";
    }

    /// <summary>Shape, type and content hash of a tensor.</summary>
    public static string Hash(Tensor tensor)
    {
        using var scope = NewDisposeScope();
        var cpu = tensor.detach().cpu().contiguous();
        var bytes = cpu.bytes;
        return $"{cpu.dtype} [{string.Join(", ", cpu.shape)}], sha256 {Hex(SHA256.HashData(bytes))}";
    }

    /// <summary>Content hash of every parameter and buffer of <paramref name="module"/>, by name.</summary>
    public static string Hash(nn.Module module)
    {
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        using var scope = NewDisposeScope();
        int count = 0;
        foreach (var (name, tensor) in module.state_dict().OrderBy(p => p.Key, StringComparer.Ordinal))
        {
            hash.AppendData(Encoding.UTF8.GetBytes($"{name}:{tensor.dtype}:[{string.Join(",", tensor.shape)}]"));
            hash.AppendData(tensor.detach().cpu().contiguous().bytes);
            count++;
        }
        return $"{count} tensors, sha256 {Hex(hash.GetHashAndReset())}";
    }

    /// <summary>Vocabulary size and content hash of the tokenizer's saved form (vocabulary, merges, special tokens).</summary>
    public static string Hash(Alignment.MultimodalTokenizer tokenizer)
    {
        using var saved = new MemoryStream();
        tokenizer.Save(saved);
        return $"{tokenizer.VocabSize} tokens, sha256 {Hex(SHA256.HashData(saved.ToArray()))}";
    }

    /// <summary>Size and content hash of a file.</summary>
    public static string HashFile(string path)
    {
        if (!File.Exists(path)) return $"'{path}' (missing)";
        using var stream = File.OpenRead(path);
        return $"{stream.Length} bytes, sha256 {Hex(SHA256.HashData(stream))}";
    }

    // 16 bytes of the hash are plenty to tell runs apart and keep messages short.
    private static string Hex(byte[] hash) => Convert.ToHexString(hash, 0, 16).ToLowerInvariant();

    // ---- generic option walk ----

    private void AddValue(string name, object? value, HashSet<string> skip, int depth)
    {
        switch (value)
        {
            case null:
                Entries[name] = "null";
                return;
            case string text:
                Entries[name] = text;
                return;
            case Enum or bool:
                Entries[name] = value.ToString()!;
                return;
            case IFormattable number when value.GetType().IsPrimitive || value is decimal:
                Entries[name] = number.ToString(null, CultureInfo.InvariantCulture);
                return;
            case Tensor tensor:
                Entries[name] = Hash(tensor);
                return;
            case Alignment.MultimodalTokenizer tokenizer:
                Entries[name] = Hash(tokenizer);
                return;
            case nn.Module module:
                Entries[name] = $"{module.GetType().Name}, {Hash(module)}";
                return;
            case IEnumerable sequence when value.GetType().IsArray || value is IList:
                Entries[name] = "[" + string.Join(", ", sequence.Cast<object?>().Select(Format)) + "]";
                return;
        }
        var type = value.GetType();
        if (!IsWalked(type) || depth > 4)
        {
            Entries[name] = type.FullName ?? type.Name;
            return;
        }
        if (name.Length > 0 && !type.IsValueType) Entries[name] = type.Name;
        var fresh = recordDefaults ? FreshInstance(type) : null;
        const BindingFlags Public = BindingFlags.Public | BindingFlags.Instance;
        foreach (var field in type.GetFields(Public).OrderBy(f => f.Name, StringComparer.Ordinal))
            if (!skip.Contains(field.Name) && Decides(field.FieldType))
                AddMember(Join(name, field.Name), field.GetValue(value), fresh is null ? null : () => field.GetValue(fresh), depth);
        foreach (var property in type.GetProperties(Public).OrderBy(p => p.Name, StringComparer.Ordinal))
            if (!skip.Contains(property.Name) && property.CanRead && property.SetMethod is { IsPublic: true } && property.GetIndexParameters().Length == 0
                && Decides(property.PropertyType))
                AddMember(Join(name, property.Name), property.GetValue(value), fresh is null ? null : () => property.GetValue(fresh), depth);
    }

    private void AddMember(string name, object? value, Func<object?>? freshValue, int depth)
    {
        AddValue(name, value, Empty, depth + 1);
        if (freshValue is null) return;
        var walked = new TrainingFingerprint { recordDefaults = false };
        walked.AddValue(name, freshValue(), Empty, depth + 1);
        foreach (var (entry, text) in walked.Entries) defaults.TryAdd(entry, text);
    }

    // A default-constructed instance of an options type, or null where there is none to compare with.
    private static object? FreshInstance(Type type)
    {
        if (type.IsValueType || type.IsAbstract || type.GetConstructor(Type.EmptyTypes) is null) return null;
        try { return Activator.CreateInstance(type); }
        catch (TargetInvocationException) { return null; }
    }

    private static readonly HashSet<string> Empty = new();

    private static string Join(string prefix, string member) => prefix.Length == 0 ? member : $"{prefix}.{member}";

    private static string Format(object? item) => item switch
    {
        null => "null",
        IFormattable number => number.ToString(null, CultureInfo.InvariantCulture),
        _ => item.ToString() ?? "",
    };

    // Types whose members are walked: the library's own options and policies, and users' own mixing policies.
    private static bool IsWalked(Type type) =>
        (type.Namespace?.StartsWith("MergeMix", StringComparison.Ordinal) ?? false) || typeof(IMixPolicy).IsAssignableFrom(type);

    // Values that say how a run is observed or where it reads from, never what it computes.
    private static bool Decides(Type type) =>
        type != typeof(CancellationToken) && !typeof(Delegate).IsAssignableFrom(type) && !typeof(IDataView).IsAssignableFrom(type)
        && !(type.IsGenericType && type.GetGenericTypeDefinition() == typeof(IProgress<>));
}
