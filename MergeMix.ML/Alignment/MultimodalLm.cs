using MergeMix.ML.Runtime;
using System.IO.Compression;
using System.Text.Json;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace MergeMix.ML.Alignment;

/// <summary>
/// A tiny LLaVA-style multimodal language model: <see cref="VisionEncoder"/> → 2-layer GELU projector → decoder-only
/// pre-LN transformer with causal attention over [image tokens ; text], learned absolute positions, and a
/// language-model head.
/// </summary>
/// <remarks>
/// Texts follow <see cref="TextBatch"/>'s layout (<c>&lt;image&gt; prompt answer &lt;eos&gt;</c>). The image tokens
/// sit before the text and are always attended; <see cref="forward(Tensor, Tensor, Tensor?)"/> returns logits for
/// the text positions only, so <see cref="SequenceLogProbs.Compute"/> applies to them directly.
/// </remarks>
public sealed class MultimodalLm : nn.Module<Tensor, Tensor, Tensor>
{
    private const string FormatName = "mergemix-mmlm-v1";
    private const string ArchiveKind = "model archive";
    private static readonly JsonSerializerOptions JsonOptions = new() { IncludeFields = true, WriteIndented = true };

    private readonly VisionEncoder vision;
    private readonly Sequential projector;
    private readonly Embedding tokenEmbedding;
    private readonly Embedding positionEmbedding;
    private readonly Dropout embeddingDropout;
    private readonly ModuleList<DecoderBlock> blocks;
    private readonly LayerNorm finalNorm;
    private readonly Linear lmHead;

    /// <summary>
    /// Builds the model around <paramref name="visionEncoder"/> (which becomes a submodule: its weights are trained
    /// and saved with the model) for the vocabulary of <paramref name="tokenizer"/>.
    /// </summary>
    public MultimodalLm(VisionEncoder visionEncoder, MultimodalTokenizer tokenizer, MultimodalLmOptions? options = null)
        : base(nameof(MultimodalLm))
    {
        ArgumentNullException.ThrowIfNull(visionEncoder);
        ArgumentNullException.ThrowIfNull(tokenizer);
        Options = (options ?? new MultimodalLmOptions()).Clone();
        Options.Validate();
        if (visionEncoder.FeatureDim < 1 || visionEncoder.TokenCount < 1)
            throw new ArgumentException(
                $"visionEncoder reports FeatureDim = {visionEncoder.FeatureDim} and TokenCount = {visionEncoder.TokenCount}; both must be ≥ 1.",
                nameof(visionEncoder));
        Tokenizer = tokenizer;
        ImageTokenCount = visionEncoder.TokenCount;

        int d = Options.ModelDim;
        vision = visionEncoder;
        projector = Sequential(Linear(visionEncoder.FeatureDim, d), GELU(), Linear(d, d));
        tokenEmbedding = Embedding(tokenizer.VocabSize, d);
        positionEmbedding = Embedding(ImageTokenCount + Options.MaxTextLength, d);
        embeddingDropout = Dropout(Options.Dropout);
        blocks = new ModuleList<DecoderBlock>(
            Enumerable.Range(0, Options.Layers).Select(i => new DecoderBlock($"block{i}", d, Options.Heads, Options.MlpRatio, Options.Dropout)).ToArray());
        finalNorm = LayerNorm(d);
        lmHead = Linear(d, tokenizer.VocabSize);
        RegisterComponents();
        InitializeWeights(Options.InitSeed);
    }

    /// <summary>The architecture (a copy; changing it has no effect).</summary>
    public MultimodalLmOptions Options { get; }

    /// <summary>The tokenizer whose ids the model reads and writes.</summary>
    public MultimodalTokenizer Tokenizer { get; }

    /// <summary>Number of image positions before the text (the vision encoder's <see cref="VisionEncoder.TokenCount"/>).</summary>
    public int ImageTokenCount { get; }

    /// <summary>The injected vision encoder.</summary>
    public VisionEncoder Vision => vision;

    /// <summary>Device of the model's parameters.</summary>
    public Device Device => parameters().First().device;

    /// <summary>Text logits for right-padded (or unpadded) texts; see <see cref="forward(Tensor, Tensor, Tensor?)"/>.</summary>
    public override Tensor forward(Tensor images, Tensor inputIds) => forward(images, inputIds, null);

    /// <summary>
    /// Runs the model.
    /// </summary>
    /// <param name="images">float [B, 3, H, W], on the model's device.</param>
    /// <param name="inputIds">int64 [B, T] text ids, T ≤ <see cref="MultimodalLmOptions.MaxTextLength"/>.</param>
    /// <param name="attentionMask">Optional int64/bool [B, T], 1 on real tokens. Needed only for left padding: padded
    /// keys are then ignored and text positions count real tokens only. With right padding (as <see cref="TextBatch"/>
    /// builds it) causal attention already keeps real tokens away from later padding.</param>
    /// <returns>float [B, T, V] logits for the text positions (image positions dropped); position t predicts token t + 1.</returns>
    public Tensor forward(Tensor images, Tensor inputIds, Tensor? attentionMask)
    {
        CheckInputs(images, inputIds, attentionMask);
        using var scope = NewDisposeScope();
        long batch = inputIds.shape[0], length = inputIds.shape[1];
        var prefix = EncodeImages(images);
        Tensor textPositions;
        Tensor? keyValid = null;
        if (attentionMask is null)
        {
            textPositions = Scalars.Arange(length, ScalarType.Int64, inputIds.device).unsqueeze(0).expand(batch, length);
        }
        else
        {
            var valid = attentionMask.to_type(ScalarType.Bool);
            textPositions = valid.to_type(ScalarType.Int64).cumsum(1).sub(Scalars.One).clamp_min(Scalars.Zero);
            keyValid = cat(new[] { ones(batch, ImageTokenCount, ScalarType.Bool, device: valid.device), valid }, 1);
        }
        var hidden = Decode(prefix, inputIds, textPositions, keyValid, cache: null);
        var text = hidden[.., ImageTokenCount.., ..];
        return lmHead.forward(finalNorm.forward(text)).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// Autoregressive generation with a key/value cache; the model is switched to eval mode (and back) and no
    /// gradient is recorded.
    /// </summary>
    /// <param name="images">float [B, 3, H, W].</param>
    /// <param name="promptIds">One non-empty prompt per image, normally <see cref="TextBatch.PromptIds"/> (image marker + prompt).
    /// Prompts of different lengths are left-padded internally.</param>
    /// <param name="maxNewTokens">Most tokens to generate per row (≥ 1); generation also ends at the context limit
    /// (texts never exceed <see cref="MultimodalLmOptions.MaxTextLength"/>).</param>
    /// <param name="temperature">0 = greedy (argmax); &gt; 0 samples from softmax(logits / temperature).</param>
    /// <param name="generator">Random source for sampling; null = a generator seeded with 0 (greedy decoding uses none).</param>
    /// <param name="stopId">Token that ends a row (not included in the output); null = the tokenizer's eos.</param>
    /// <param name="topK">Sampling only: keep the k most likely tokens (0 = all), as Hugging Face's <c>top_k</c>.</param>
    /// <param name="topP">Sampling only: keep the smallest set of most likely tokens whose probability reaches p (nucleus
    /// sampling, Hugging Face's <c>top_p</c>; 1 = all). Applied after <paramref name="topK"/>, both after the temperature.</param>
    /// <returns>The generated ids per row, without prompt, padding or stop token.</returns>
    /// <remarks>Greedy decoding (temperature 0) ignores <paramref name="topK"/> and <paramref name="topP"/>, as Hugging Face
    /// does without <c>do_sample</c>. Sampling with the same seeded <paramref name="generator"/> repeats exactly.</remarks>
    public int[][] Generate(Tensor images, IReadOnlyList<int[]> promptIds, int maxNewTokens, double temperature = 0,
        Generator? generator = null, int? stopId = null, int topK = 0, double topP = 1.0)
    {
        SamplingFilter.Check(topK, topP);
        ArgumentNullException.ThrowIfNull(images);
        ArgumentNullException.ThrowIfNull(promptIds);
        if (images.dim() != 4 || images.shape[0] != promptIds.Count)
            throw new ArgumentException(
                $"images must be [B, 3, H, W] with B = promptIds.Count = {promptIds.Count}, got [{string.Join(", ", images.shape)}].", nameof(images));
        if (maxNewTokens < 1) throw new ArgumentOutOfRangeException(nameof(maxNewTokens), maxNewTokens, "maxNewTokens must be ≥ 1.");
        if (!(temperature >= 0) || double.IsInfinity(temperature))
            throw new ArgumentOutOfRangeException(nameof(temperature), temperature, "temperature must be finite and ≥ 0 (0 = greedy).");
        int stop = stopId ?? Tokenizer.EosId;
        if (stop < 0 || stop >= Tokenizer.VocabSize)
            throw new ArgumentOutOfRangeException(nameof(stopId), stop, $"stopId must lie in [0, {Tokenizer.VocabSize}).");
        int longest = 0;
        for (int i = 0; i < promptIds.Count; i++)
        {
            var p = promptIds[i] ?? throw new ArgumentException($"promptIds[{i}] is null.", nameof(promptIds));
            if (p.Length == 0) throw new ArgumentException($"promptIds[{i}] is empty; start it with the image marker (TextBatch.PromptIds).", nameof(promptIds));
            foreach (int id in p)
                if (id < 0 || id >= Tokenizer.VocabSize)
                    throw new ArgumentException($"promptIds[{i}] contains id {id}, outside [0, {Tokenizer.VocabSize}).", nameof(promptIds));
            longest = Math.Max(longest, p.Length);
        }
        if (longest >= Options.MaxTextLength)
            throw new ArgumentException(
                $"the longest prompt has {longest} tokens, leaving no room to generate within MaxTextLength = {Options.MaxTextLength}.", nameof(promptIds));
        int steps = Math.Min(maxNewTokens, Options.MaxTextLength - longest);

        int batch = promptIds.Count;
        var device = Device;
        var ids = new long[batch * longest];
        var mask = new long[batch * longest];
        Array.Fill(ids, Tokenizer.PadId);
        for (int i = 0; i < batch; i++)
        {
            int offset = longest - promptIds[i].Length;
            for (int j = 0; j < promptIds[i].Length; j++)
            {
                ids[i * longest + offset + j] = promptIds[i][j];
                mask[i * longest + offset + j] = 1;
            }
        }

        var outputs = Enumerable.Range(0, batch).Select(_ => new List<int>()).ToArray();
        var finished = new bool[batch];
        bool wasTraining = training;
        eval();
        using var localGenerator = generator is null && temperature > 0 ? new Generator(0, device) : null;
        try
        {
            using var noGrad = no_grad();
            using var outer = NewDisposeScope();
            var cache = Enumerable.Range(0, blocks.Count).Select(_ => new LayerCache()).ToArray();
            var inputIds = tensor(ids, new long[] { batch, longest }, device: device);
            var valid = tensor(mask, new long[] { batch, longest }, device: device).to_type(ScalarType.Bool);
            var keyValid = cat(new[] { ones(batch, ImageTokenCount, ScalarType.Bool, device: device), valid }, 1);
            var positions = valid.to_type(ScalarType.Int64).cumsum(1).sub(Scalars.One).clamp_min(Scalars.Zero);
            var hidden = Decode(EncodeImages(images), inputIds, positions, keyValid, cache);
            var nextPositions = positions.narrow(1, longest - 1, 1).add(Scalars.One, Scalars.One);

            for (int step = 0; step < steps; step++)
            {
                using var inner = NewDisposeScope();
                var logits = lmHead.forward(finalNorm.forward(hidden.select(1, -1)));
                var next = temperature == 0
                    ? logits.argmax(-1)
                    : SamplingFilter.Apply(logits, temperature, topK, topP).softmax(-1).multinomial(1, generator: generator ?? localGenerator).squeeze(-1);
                var chosen = next.cpu().data<long>().ToArray();
                for (int i = 0; i < batch; i++)
                {
                    if (finished[i]) { chosen[i] = Tokenizer.PadId; continue; }
                    if (chosen[i] == stop) { finished[i] = true; chosen[i] = Tokenizer.PadId; continue; }
                    outputs[i].Add((int)chosen[i]);
                }
                if (finished.All(f => f) || step == steps - 1) break;

                var token = tensor(chosen, new long[] { batch, 1 }, device: device);
                keyValid = cat(new[] { keyValid, ones(batch, 1, ScalarType.Bool, device: device) }, 1).MoveToOuterDisposeScope();
                hidden = Decode(null, token, nextPositions, keyValid, cache).MoveToOuterDisposeScope();
                nextPositions = nextPositions.add(Scalars.One, Scalars.One).MoveToOuterDisposeScope();
                foreach (var layer in cache) layer.MoveToOuterDisposeScope();
            }
        }
        finally
        {
            train(wasTraining);
        }
        return outputs.Select(o => o.ToArray()).ToArray();
    }

    /// <summary>Greedy or sampled captions for string prompts (formatted with <paramref name="template"/>, null = raw);
    /// decodes the generated ids (specials skipped). See <see cref="Generate"/> for the sampling options.</summary>
    public string[] GenerateText(Tensor images, IReadOnlyList<string> prompts, int maxNewTokens, double temperature = 0, Generator? generator = null,
        int topK = 0, double topP = 1.0, PromptTemplate? template = null)
    {
        ArgumentNullException.ThrowIfNull(prompts);
        var ids = prompts.Select(p => TextBatch.PromptIds(Tokenizer, (template ?? PromptTemplate.Raw).Apply(p))).ToArray();
        return Generate(images, ids, maxNewTokens, temperature, generator, topK: topK, topP: topP).Select(Tokenizer.Decode).ToArray();
    }

    /// <summary>
    /// Writes one zip archive: <c>options.json</c> (architecture and vision-encoder shape), <c>tokenizer.json</c> and
    /// <c>model.bin</c> (TorchSharp weights of the whole model, vision encoder included).
    /// </summary>
    public void Save(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        using var file = File.Create(path);
        Save(file);
    }

    /// <summary>Writes the zip archive of <see cref="Save(string)"/> to <paramref name="stream"/>, leaving it open.</summary>
    public void Save(Stream stream)
    {
        ArgumentNullException.ThrowIfNull(stream);
        using var zip = new ZipArchive(stream, ZipArchiveMode.Create, leaveOpen: true);
        using (var entry = zip.CreateEntry("options.json").Open())
            JsonSerializer.Serialize(entry, new SavedHeader(FormatName, Options, vision.FeatureDim, vision.TokenCount, Tokenizer.VocabSize), JsonOptions);
        using (var entry = zip.CreateEntry("tokenizer.json").Open())
            Tokenizer.Save(entry);
        ArchiveEntries.Write(zip, "model.bin", w => save(w));
    }

    /// <summary>
    /// Loads a model saved with <see cref="Save(string)"/>. <paramref name="visionEncoder"/> must be a freshly built
    /// encoder of the same architecture (its weights are overwritten). The model is returned on the CPU.
    /// </summary>
    /// <param name="path">The archive.</param>
    /// <param name="visionEncoder">A fresh encoder of the saved architecture.</param>
    /// <param name="baseTokenizer">The Microsoft.ML.Tokenizers tokenizer the model's tokenizer wrapped
    /// (<see cref="MultimodalTokenizer.FromTokenizer"/>); not needed for the in-code BPE or a Tiktoken encoding.</param>
    public static MultimodalLm Load(string path, VisionEncoder visionEncoder, Microsoft.ML.Tokenizers.Tokenizer? baseTokenizer = null)
    {
        return ModelFiles.Load(path, "saved multimodal model", file => Load(file, visionEncoder, baseTokenizer));
    }

    /// <summary>Loads a model from a stream holding the archive of <see cref="Save(Stream)"/>; the stream is left open.</summary>
    public static MultimodalLm Load(Stream stream, VisionEncoder visionEncoder, Microsoft.ML.Tokenizers.Tokenizer? baseTokenizer = null)
    {
        ArgumentNullException.ThrowIfNull(stream);
        ArgumentNullException.ThrowIfNull(visionEncoder);
        using var zip = ModelFiles.OpenArchive(stream, "saved multimodal model");
        SavedHeader header;
        using (var entry = ArchiveEntries.Get(zip, "options.json", ArchiveKind).Open())
            header = JsonSerializer.Deserialize<SavedHeader>(entry, JsonOptions)
                ?? throw new InvalidDataException("options.json of the model archive is empty.");
        if (header.Format != FormatName)
            throw new InvalidDataException($"the model archive has format '{header.Format}', expected '{FormatName}'.");
        if (header.VisionFeatureDim != visionEncoder.FeatureDim || header.VisionTokenCount != visionEncoder.TokenCount)
            throw new ArgumentException(
                $"the saved model expects a vision encoder with FeatureDim = {header.VisionFeatureDim} and TokenCount = {header.VisionTokenCount}; " +
                $"the given one has {visionEncoder.FeatureDim} and {visionEncoder.TokenCount}.", nameof(visionEncoder));
        MultimodalTokenizer tokenizer;
        using (var entry = ArchiveEntries.Get(zip, "tokenizer.json", ArchiveKind).Open())
            tokenizer = MultimodalTokenizer.Load(entry, baseTokenizer);
        var model = new MultimodalLm(visionEncoder, tokenizer, header.Options);
        try
        {
            ArchiveEntries.Read(zip, "model.bin", ArchiveKind, r => ModelFiles.LoadWeights(model, r.BaseStream, "model.bin"));
        }
        catch
        {
            model.Dispose();
            throw;
        }
        return model;
    }

    internal Tensor EncodeImages(Tensor images)
    {
        var features = vision.forward(images);
        if (features.dim() != 3 || features.shape[0] != images.shape[0] || features.shape[1] != ImageTokenCount || features.shape[2] != vision.FeatureDim)
            throw new InvalidOperationException(
                $"the vision encoder ({vision.GetType().Name}) returned [{string.Join(", ", features.shape)}], " +
                $"expected [{images.shape[0]}, {ImageTokenCount}, {vision.FeatureDim}] (B, TokenCount, FeatureDim).");
        return projector.forward(features);
    }

    // Runs the decoder on [prefix ; text] (prefix = projected image tokens, or null when continuing from a cache).
    // keyValid (bool [B, Lk], all keys including cached ones) is null only for the plain causal fast path.
    private Tensor Decode(Tensor? prefix, Tensor ids, Tensor textPositions, Tensor? keyValid, LayerCache[]? cache)
    {
        using var imageTokens = ImageTokenCount.ToScalar();
        var x = tokenEmbedding.forward(ids).add(positionEmbedding.forward(textPositions.add(imageTokens, Scalars.One)), Scalars.One);
        if (prefix is not null)
        {
            var imagePositions = Scalars.Arange(ImageTokenCount, ScalarType.Int64, ids.device);
            x = cat(new[] { prefix.add(positionEmbedding.forward(imagePositions).unsqueeze(0), Scalars.One), x }, 1);
        }
        x = embeddingDropout.forward(x);

        long queries = x.shape[1];
        long keys = queries + (cache is null ? 0 : cache[0].Length);
        Tensor? mask = null;
        bool causal = keyValid is null && cache is null;
        if (!causal)
        {
            // Query q (the last `queries` of `keys` positions) sees key k ≤ its own position.
            mask = ones(queries, keys, ScalarType.Bool, device: x.device).tril(keys - queries).unsqueeze(0).unsqueeze(0);
            if (keyValid is not null) mask = mask.logical_and(keyValid.unsqueeze(1).unsqueeze(1));
        }
        for (int i = 0; i < blocks.Count; i++)
            x = blocks[i].Forward(x, mask, causal, cache?[i]);
        return x;
    }

    private void CheckInputs(Tensor images, Tensor inputIds, Tensor? attentionMask)
    {
        ArgumentNullException.ThrowIfNull(images);
        ArgumentNullException.ThrowIfNull(inputIds);
        if (inputIds.dim() != 2 || inputIds.dtype != ScalarType.Int64)
            throw new ArgumentException($"inputIds must be int64 [B, T], got {inputIds.dtype} [{string.Join(", ", inputIds.shape)}].", nameof(inputIds));
        if (inputIds.shape[1] < 1 || inputIds.shape[1] > Options.MaxTextLength)
            throw new ArgumentException(
                $"inputIds has {inputIds.shape[1]} text positions; the model accepts 1 to MaxTextLength = {Options.MaxTextLength}.", nameof(inputIds));
        if (images.dim() != 4 || images.shape[0] != inputIds.shape[0])
            throw new ArgumentException(
                $"images must be [B, 3, H, W] with B = {inputIds.shape[0]} (rows of inputIds), got [{string.Join(", ", images.shape)}].", nameof(images));
        if (attentionMask is not null && !attentionMask.shape.SequenceEqual(inputIds.shape))
            throw new ArgumentException(
                $"attentionMask must have the shape of inputIds [{string.Join(", ", inputIds.shape)}], got [{string.Join(", ", attentionMask.shape)}].",
                nameof(attentionMask));
    }

    private void InitializeWeights(long seed)
    {
        // GPT-2 style: N(0, 0.02) weights, zero biases; seeded so that two models built with the same options match.
        using var generator = new Generator((ulong)seed);
        using var noGrad = no_grad();
        foreach (var module in new Module[] { projector, tokenEmbedding, positionEmbedding, blocks, lmHead })
            foreach (var (name, p) in module.named_parameters())
            {
                if (name.EndsWith("bias", StringComparison.Ordinal)) p.zero_();
                else if (!name.Contains("norm", StringComparison.Ordinal)) p.normal_(0, 0.02, generator);
            }
    }

    private sealed record SavedHeader(string Format, MultimodalLmOptions Options, int VisionFeatureDim, int VisionTokenCount, int VocabSize);

    /// <summary>Keys and values of one decoder block for the tokens processed so far ([B, H, L, head dim]).</summary>
    private sealed class LayerCache
    {
        public Tensor? Keys;
        public Tensor? Values;
        public long Length => Keys?.shape[2] ?? 0;

        public void MoveToOuterDisposeScope()
        {
            Keys?.MoveToOuterDisposeScope();
            Values?.MoveToOuterDisposeScope();
        }

        public (Tensor Keys, Tensor Values) Append(Tensor keys, Tensor values)
        {
            Keys = Keys is null ? keys : cat(new[] { Keys, keys }, 2);
            Values = Values is null ? values : cat(new[] { Values, values }, 2);
            return (Keys, Values);
        }
    }

    /// <summary>Pre-LN transformer block: x + Attn(LN(x)), then x + MLP(LN(x)) with a GELU MLP.</summary>
    private sealed class DecoderBlock : nn.Module
    {
        private readonly LayerNorm norm1;
        private readonly Linear qkv;
        private readonly Linear proj;
        private readonly LayerNorm norm2;
        private readonly Linear fc1;
        private readonly GELU gelu;
        private readonly Linear fc2;
        private readonly Dropout dropout;
        private readonly int heads;
        private readonly double attentionDropout;

        public DecoderBlock(string name, int dim, int heads, int mlpRatio, double dropoutRate) : base(name)
        {
            this.heads = heads;
            attentionDropout = dropoutRate;
            norm1 = LayerNorm(dim);
            qkv = Linear(dim, 3 * dim);
            proj = Linear(dim, dim);
            norm2 = LayerNorm(dim);
            fc1 = Linear(dim, mlpRatio * dim);
            gelu = GELU();
            fc2 = Linear(mlpRatio * dim, dim);
            dropout = Dropout(dropoutRate);
            RegisterComponents();
        }

        public Tensor Forward(Tensor x, Tensor? mask, bool causal, LayerCache? cache)
        {
            long batch = x.shape[0], length = x.shape[1], dim = x.shape[2];
            var qkvOut = qkv.forward(norm1.forward(x)).view(batch, length, 3, heads, dim / heads).permute(2, 0, 3, 1, 4);
            Tensor q = qkvOut[0], k = qkvOut[1], v = qkvOut[2];
            if (cache is not null) (k, v) = cache.Append(k, v);
            var attended = functional.scaled_dot_product_attention(q, k, v, mask, training ? attentionDropout : 0.0, causal);
            x = x.add(dropout.forward(proj.forward(attended.transpose(1, 2).reshape(batch, length, dim))), Scalars.One);
            return x.add(dropout.forward(fc2.forward(gelu.forward(fc1.forward(norm2.forward(x))))), Scalars.One);
        }
    }
}
