using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using Microsoft.ML.Tokenizers;

namespace MergeMix.ML.Alignment;

/// <summary>
/// A byte-level BPE tokenizer (GPT-2 conventions, on Microsoft.ML.Tokenizers' <see cref="BpeTokenizer"/>) with the
/// four special tokens a small multimodal LM needs, each one id: <c>&lt;pad&gt;</c>, <c>&lt;eos&gt;</c>,
/// <c>&lt;image&gt;</c> and <c>&lt;unk&gt;</c>.
/// </summary>
/// <remarks>
/// <para>Byte-level: a space is part of the following word (shown as 'Ġ' in the vocabulary), so
/// <see cref="Decode"/> gives back exactly the encoded text, punctuation spacing included.</para>
/// <para>Unknown pieces (characters whose bytes are not in the vocabulary): by default <see cref="Encode"/> throws an
/// <see cref="ArgumentException"/> naming the text and the piece, because silently dropping or replacing text would
/// corrupt training targets. With <see cref="MapsUnknownToUnk"/> each run of unknown characters becomes one
/// <c>&lt;unk&gt;</c> id instead. Text that contains a special token literally (e.g. "&lt;eos&gt;") encodes to its id.</para>
/// </remarks>
public sealed class MultimodalTokenizer
{
    /// <summary>Padding token (never a training target).</summary>
    public const string PadToken = "<pad>";
    /// <summary>End-of-sequence token, appended to every answer.</summary>
    public const string EosToken = "<eos>";
    /// <summary>Image marker: opens every text, right after the image patch embeddings.</summary>
    public const string ImageToken = "<image>";
    /// <summary>Unknown-piece token, used only when <see cref="MapsUnknownToUnk"/> is true.</summary>
    public const string UnknownToken = "<unk>";

    private static readonly string[] Specials = { PadToken, EosToken, ImageToken, UnknownToken };
    private const string FormatName = "mergemix-bpe-v1";
    private const string VocabFileName = "vocab.json";
    private const string MergesFileName = "merges.txt";
    private const string ConfigFileName = "tokenizer_config.json";

    // GPT-2's split: words, numbers and punctuation runs keep their leading space; extra whitespace stays separate.
    private static readonly Regex PreTokenPattern =
        new(@" ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+", RegexOptions.Compiled | RegexOptions.CultureInvariant);

    private readonly Dictionary<string, int> _vocab;
    private readonly string[] _merges;
    private readonly BpeTokenizer _bpe;
    private readonly HashSet<int> _specialIds;

    private MultimodalTokenizer(Dictionary<string, int> vocab, IReadOnlyList<string> merges, bool mapUnknownToUnk)
    {
        _vocab = vocab;
        _merges = merges.ToArray();
        MapsUnknownToUnk = mapUnknownToUnk;
        var specials = Specials.ToDictionary(s => s, s => vocab[s]);
        _bpe = BpeTokenizer.Create(new BpeOptions(vocab)
        {
            Merges = _merges,
            SpecialTokens = specials,
            // The unknown token is always configured so that Encode can see (and report) unknown pieces.
            UnknownToken = UnknownToken,
            FuseUnknownTokens = true,
            ByteLevel = true,
            PreTokenizer = new RegexPreTokenizer(PreTokenPattern, specials),
        });
        PadId = vocab[PadToken];
        EosId = vocab[EosToken];
        ImageId = vocab[ImageToken];
        UnknownId = vocab[UnknownToken];
        _specialIds = new HashSet<int>(specials.Values);
        VocabSize = vocab.Values.Max() + 1;
    }

    /// <summary>Id of <see cref="PadToken"/>.</summary>
    public int PadId { get; }
    /// <summary>Id of <see cref="EosToken"/>.</summary>
    public int EosId { get; }
    /// <summary>Id of <see cref="ImageToken"/>.</summary>
    public int ImageId { get; }
    /// <summary>Id of <see cref="UnknownToken"/>.</summary>
    public int UnknownId { get; }
    /// <summary>Size of the embedding / output layer: the largest id + 1 (special tokens included).</summary>
    public int VocabSize { get; }
    /// <summary>True: unknown pieces encode to <see cref="UnknownId"/>; false: <see cref="Encode"/> throws.</summary>
    public bool MapsUnknownToUnk { get; }
    /// <summary>The underlying Microsoft.ML.Tokenizers model (for token strings, offsets, counting).</summary>
    public BpeTokenizer Bpe => _bpe;
    /// <summary>Token string → id, special tokens included.</summary>
    public IReadOnlyDictionary<string, int> Vocabulary => _vocab;
    /// <summary>BPE merges ("left right"), highest priority first.</summary>
    public IReadOnlyList<string> Merges => _merges;

    /// <summary>
    /// Learns a byte-level BPE vocabulary from <paramref name="texts"/> in memory: the alphabet is every byte-level
    /// character of the corpus (plus the space), then the most frequent adjacent pair is merged repeatedly, so with
    /// enough merges every corpus word (with its leading space) ends up a single token, while new words made of known
    /// characters still encode as pieces. Deterministic: ties go to the ordinally smallest pair.
    /// </summary>
    /// <param name="texts">Training sentences (prompts and answers). Special-token strings inside them are skipped.</param>
    /// <param name="maxMerges">Upper bound on the number of merges (≥ 0); learning also stops when no pair is left.</param>
    /// <param name="mapUnknownToUnk">See <see cref="MapsUnknownToUnk"/>.</param>
    public static MultimodalTokenizer CreateFromCorpus(IEnumerable<string> texts, int maxMerges = 10_000, bool mapUnknownToUnk = false)
    {
        ArgumentNullException.ThrowIfNull(texts);
        if (maxMerges < 0) throw new ArgumentOutOfRangeException(nameof(maxMerges), maxMerges, "maxMerges must be ≥ 0.");

        var wordCounts = new Dictionary<string, int>(StringComparer.Ordinal);
        int textCount = 0;
        bool hasContent = false;
        foreach (string text in texts)
        {
            if (text is null) throw new ArgumentException($"texts[{textCount}] is null.", nameof(texts));
            textCount++;
            foreach (string chunk in SplitOnSpecials(text))
                foreach (Match m in PreTokenPattern.Matches(chunk))
                {
                    hasContent |= !string.IsNullOrWhiteSpace(m.Value);
                    string word = ByteLevel.Encode(m.Value);
                    wordCounts[word] = wordCounts.GetValueOrDefault(word) + 1;
                }
        }
        if (!hasContent)
            throw new ArgumentException("texts contain no words; the tokenizer needs a non-empty corpus.", nameof(texts));

        var alphabet = new SortedSet<string>(StringComparer.Ordinal) { ByteLevel.Encode(" ") };
        foreach (string word in wordCounts.Keys)
            foreach (char c in word) alphabet.Add(c.ToString());

        var vocab = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (string s in Specials) vocab[s] = vocab.Count;
        foreach (string s in alphabet) vocab[s] = vocab.Count;

        var merges = LearnMerges(wordCounts, maxMerges);
        foreach (string merge in merges)
        {
            string token = merge.Replace(" ", "", StringComparison.Ordinal);
            if (!vocab.ContainsKey(token)) vocab[token] = vocab.Count;
        }
        return new MultimodalTokenizer(vocab, merges, mapUnknownToUnk);
    }

    /// <summary>
    /// Loads a GPT-2/RoBERTa-style byte-level BPE from a Hugging Face <c>vocab.json</c> (token → id) and
    /// <c>merges.txt</c> ("left right" per line, an optional "#version" header). Special tokens missing from the
    /// vocabulary get new ids after the largest one.
    /// </summary>
    /// <exception cref="FileNotFoundException">A file does not exist (the message names it).</exception>
    public static MultimodalTokenizer FromFiles(string vocabJsonPath, string mergesTxtPath, bool mapUnknownToUnk = false)
    {
        ArgumentException.ThrowIfNullOrEmpty(vocabJsonPath);
        ArgumentException.ThrowIfNullOrEmpty(mergesTxtPath);
        if (!File.Exists(vocabJsonPath))
            throw new FileNotFoundException($"BPE vocabulary file '{vocabJsonPath}' (vocab.json, token → id) was not found.", vocabJsonPath);
        if (!File.Exists(mergesTxtPath))
            throw new FileNotFoundException($"BPE merges file '{mergesTxtPath}' (merges.txt) was not found.", mergesTxtPath);
        var vocab = ReadVocab(File.ReadAllText(vocabJsonPath), vocabJsonPath);
        var merges = ParseMerges(File.ReadAllLines(mergesTxtPath), mergesTxtPath);
        return FromParts(vocab, merges, mapUnknownToUnk);
    }

    /// <summary>
    /// Encodes text to ids (no special tokens are added).
    /// </summary>
    /// <exception cref="ArgumentException">The text contains a piece outside the vocabulary and
    /// <see cref="MapsUnknownToUnk"/> is false; the message names the text and the piece.</exception>
    public int[] Encode(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        var tokens = _bpe.EncodeToTokens(text, out _);
        var ids = new int[tokens.Count];
        for (int i = 0; i < tokens.Count; i++)
        {
            var t = tokens[i];
            if (t.Id == UnknownId && !MapsUnknownToUnk)
            {
                var (offset, length) = t.Offset.GetOffsetAndLength(text.Length);
                string piece = text.Substring(offset, length);
                if (piece != UnknownToken)
                    throw new ArgumentException(
                        $"text \"{text}\" contains \"{Escape(piece)}\" (at {offset}), which the tokenizer's vocabulary cannot encode. " +
                        "Build the tokenizer from a corpus that covers these characters, or create it with mapUnknownToUnk: true.",
                        nameof(text));
            }
            ids[i] = t.Id;
        }
        return ids;
    }

    /// <summary>Decodes ids to text, skipping the special tokens (pad, eos, image, unk).</summary>
    /// <exception cref="ArgumentOutOfRangeException">An id is outside [0, <see cref="VocabSize"/>).</exception>
    public string Decode(IEnumerable<int> ids)
    {
        ArgumentNullException.ThrowIfNull(ids);
        var list = ids as IReadOnlyList<int> ?? ids.ToArray();
        foreach (int id in list)
            if (id < 0 || id >= VocabSize)
                throw new ArgumentOutOfRangeException(nameof(ids), id, $"token id {id} is outside [0, {VocabSize}).");
        return _bpe.Decode(list, considerSpecialTokens: false);
    }

    /// <summary>True for the ids of the four special tokens.</summary>
    public bool IsSpecial(int id) => _specialIds.Contains(id);

    /// <summary>
    /// Writes <c>vocab.json</c>, <c>merges.txt</c> (loadable with <see cref="FromFiles"/>) and
    /// <c>tokenizer_config.json</c> into <paramref name="folder"/> (created if needed).
    /// </summary>
    public void Save(string folder)
    {
        ArgumentException.ThrowIfNullOrEmpty(folder);
        Directory.CreateDirectory(folder);
        File.WriteAllText(Path.Combine(folder, VocabFileName), JsonSerializer.Serialize(OrderedVocab()));
        File.WriteAllLines(Path.Combine(folder, MergesFileName), _merges.Prepend("#version: 0.2"));
        File.WriteAllText(Path.Combine(folder, ConfigFileName), JsonSerializer.Serialize(new Config(FormatName, MapsUnknownToUnk, null, null)));
    }

    /// <summary>Writes the whole tokenizer as one UTF-8 JSON document to <paramref name="stream"/> (left open).</summary>
    public void Save(Stream stream)
    {
        ArgumentNullException.ThrowIfNull(stream);
        using var writer = new Utf8JsonWriter(stream);
        JsonSerializer.Serialize(writer, new Config(FormatName, MapsUnknownToUnk, OrderedVocab(), _merges));
    }

    /// <summary>Loads a tokenizer saved with <see cref="Save(string)"/>.</summary>
    public static MultimodalTokenizer Load(string folder)
    {
        ArgumentException.ThrowIfNullOrEmpty(folder);
        string configPath = Path.Combine(folder, ConfigFileName);
        if (!File.Exists(configPath))
            throw new FileNotFoundException($"'{configPath}' was not found; is '{folder}' a folder written by MultimodalTokenizer.Save?", configPath);
        var config = ReadConfig(File.ReadAllText(configPath), configPath);
        return FromFiles(Path.Combine(folder, VocabFileName), Path.Combine(folder, MergesFileName), config.MapUnknownToUnk);
    }

    /// <summary>Loads a tokenizer written by <see cref="Save(Stream)"/>; reads the stream to its end and leaves it open.</summary>
    public static MultimodalTokenizer Load(Stream stream)
    {
        ArgumentNullException.ThrowIfNull(stream);
        using var reader = new StreamReader(stream, Encoding.UTF8, leaveOpen: true);
        var config = ReadConfig(reader.ReadToEnd(), "stream");
        if (config.Vocab is null || config.Merges is null)
            throw new InvalidDataException("the tokenizer stream has no vocab or merges; it was not written by MultimodalTokenizer.Save(Stream).");
        return FromParts(new Dictionary<string, int>(config.Vocab, StringComparer.Ordinal),
            ParseMerges(config.Merges, "stream"), config.MapUnknownToUnk);
    }

    private static MultimodalTokenizer FromParts(Dictionary<string, int> vocab, List<string> merges, bool mapUnknownToUnk)
    {
        int next = vocab.Count == 0 ? 0 : vocab.Values.Max() + 1;
        foreach (string s in Specials)
            if (!vocab.ContainsKey(s)) vocab[s] = next++;
        var duplicate = vocab.GroupBy(kv => kv.Value).FirstOrDefault(g => g.Count() > 1);
        if (duplicate is not null)
            throw new InvalidDataException($"vocabulary id {duplicate.Key} is used by more than one token ({string.Join(", ", duplicate.Select(kv => kv.Key))}).");
        return new MultimodalTokenizer(vocab, merges, mapUnknownToUnk);
    }

    private static List<string> LearnMerges(Dictionary<string, int> wordCounts, int maxMerges)
    {
        var words = wordCounts
            .OrderBy(kv => kv.Key, StringComparer.Ordinal)
            .Select(kv => (Symbols: kv.Key.Select(c => c.ToString()).ToList(), Count: kv.Value))
            .ToList();
        var merges = new List<string>();
        while (merges.Count < maxMerges)
        {
            var pairCounts = new Dictionary<(string, string), int>();
            foreach (var (symbols, count) in words)
                for (int i = 0; i + 1 < symbols.Count; i++)
                {
                    var pair = (symbols[i], symbols[i + 1]);
                    pairCounts[pair] = pairCounts.GetValueOrDefault(pair) + count;
                }
            if (pairCounts.Count == 0) break;

            var best = pairCounts.First();
            foreach (var kv in pairCounts)
                if (kv.Value > best.Value || (kv.Value == best.Value && ComparePairs(kv.Key, best.Key) < 0))
                    best = kv;
            var (left, right) = best.Key;
            merges.Add(left + " " + right);
            string merged = left + right;
            foreach (var (symbols, _) in words)
                for (int i = 0; i + 1 < symbols.Count; i++)
                    if (symbols[i] == left && symbols[i + 1] == right)
                    {
                        symbols[i] = merged;
                        symbols.RemoveAt(i + 1);
                    }
        }
        return merges;
    }

    private static int ComparePairs((string, string) a, (string, string) b)
    {
        int c = string.CompareOrdinal(a.Item1, b.Item1);
        return c != 0 ? c : string.CompareOrdinal(a.Item2, b.Item2);
    }

    private static IEnumerable<string> SplitOnSpecials(string text)
    {
        int start = 0;
        while (start < text.Length)
        {
            int best = -1, bestLength = 0;
            foreach (string s in Specials)
            {
                int at = text.IndexOf(s, start, StringComparison.Ordinal);
                if (at >= 0 && (best < 0 || at < best)) { best = at; bestLength = s.Length; }
            }
            if (best < 0) { yield return text[start..]; yield break; }
            if (best > start) yield return text[start..best];
            start = best + bestLength;
        }
    }

    private Dictionary<string, int> OrderedVocab()
    {
        var ordered = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (var kv in _vocab.OrderBy(kv => kv.Value)) ordered[kv.Key] = kv.Value;
        return ordered;
    }

    private static Dictionary<string, int> ReadVocab(string json, string source)
    {
        try
        {
            return JsonSerializer.Deserialize<Dictionary<string, int>>(json) is { } v
                ? new Dictionary<string, int>(v, StringComparer.Ordinal)
                : throw new InvalidDataException($"'{source}' holds JSON null instead of a token → id object.");
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"'{source}' is not a JSON object of token → id: {e.Message}", e);
        }
    }

    private static List<string> ParseMerges(IEnumerable<string> lines, string source)
    {
        var merges = new List<string>();
        int lineNumber = 0;
        foreach (string raw in lines)
        {
            lineNumber++;
            string line = raw.TrimEnd('\r');
            if (line.Length == 0 || (lineNumber == 1 && line.StartsWith("#version", StringComparison.Ordinal))) continue;
            if (line.Split(' ').Length != 2)
                throw new InvalidDataException($"'{source}' line {lineNumber}: \"{line}\" is not a merge of the form \"left right\".");
            merges.Add(line);
        }
        return merges;
    }

    private static Config ReadConfig(string json, string source)
    {
        Config? config;
        try { config = JsonSerializer.Deserialize<Config>(json); }
        catch (JsonException e) { throw new InvalidDataException($"'{source}' is not a MultimodalTokenizer configuration: {e.Message}", e); }
        if (config is null || config.Format != FormatName)
            throw new InvalidDataException($"'{source}' has format '{config?.Format}', expected '{FormatName}'.");
        return config;
    }

    private static string Escape(string piece) =>
        piece.Replace("\n", "\\n", StringComparison.Ordinal).Replace("\r", "\\r", StringComparison.Ordinal).Replace("\t", "\\t", StringComparison.Ordinal);

    private sealed record Config(string Format, bool MapUnknownToUnk, Dictionary<string, int>? Vocab, string[]? Merges);

    /// <summary>GPT-2's reversible byte ↔ printable-character map, used to learn merges in the vocabulary's alphabet.</summary>
    private static class ByteLevel
    {
        private static readonly char[] ByteToChar = BuildTable();

        public static string Encode(string text)
        {
            var bytes = Encoding.UTF8.GetBytes(text);
            var chars = new char[bytes.Length];
            for (int i = 0; i < bytes.Length; i++) chars[i] = ByteToChar[bytes[i]];
            return new string(chars);
        }

        private static char[] BuildTable()
        {
            // Printable Latin-1 bytes map to themselves; the others are moved to 256 + n, keeping every char visible.
            var table = new char[256];
            int next = 0;
            for (int b = 0; b < 256; b++)
            {
                bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
                table[b] = printable ? (char)b : (char)(256 + next++);
            }
            return table;
        }
    }
}
