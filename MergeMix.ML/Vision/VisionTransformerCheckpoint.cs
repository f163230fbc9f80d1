using System.Collections;
using System.Text.Json;
using System.Text.RegularExpressions;
using TorchSharp;
using TorchSharp.Modules;
using TorchSharp.PyBridge;
using static TorchSharp.torch;

namespace MergeMix.ML.Vision;

/// <summary>Name layout of a ViT checkpoint.</summary>
public enum CheckpointLayout
{
    /// <summary>timm's <c>VisionTransformer</c> (and DeiT's original code): <c>patch_embed.proj</c>, <c>cls_token</c>,
    /// <c>pos_embed</c>, <c>blocks.N.{norm1, attn.qkv, attn.proj, norm2, mlp.fc1, mlp.fc2}</c>, <c>norm</c>, <c>head</c>.</summary>
    Timm,

    /// <summary>Hugging Face <c>ViTModel</c>/<c>ViTForImageClassification</c>/<c>DeiT*</c>: <c>vit.embeddings.*</c>,
    /// <c>vit.encoder.layer.N.attention.attention.{query, key, value}</c>, ..., <c>vit.layernorm</c>, <c>classifier</c>.</summary>
    HuggingFace,
}

/// <summary>
/// A pretrained ViT/DeiT checkpoint (timm or Hugging Face names; safetensors or PyTorch <c>state_dict</c> file), read
/// into timm's layout, with the architecture inferred from its shapes; it loads into a <see cref="VisionTransformer"/>,
/// resampling the position embedding to another image size and starting a fresh head for another class count.
/// </summary>
/// <remarks>
/// <para>
/// Our ViT computes what timm's <c>VisionTransformer</c> computes with <c>class_token=True</c>,
/// <c>global_pool="token"</c>, <c>qkv_bias=True</c>, exact (erf) GELU, pre-norm blocks, no LayerScale and no
/// <c>fc_norm</c>: the CLS token comes first and takes position-embedding row 0, attention is softmax(q·kᵀ/√d)·v, and the
/// LayerNorm epsilon is <see cref="VisionTransformerOptions.LayerNormEpsilon"/> (timm 1e-6, Hugging Face 1e-12,
/// set from the layout). ToMe changes nothing while merging is off: proportional attention only acts after the first
/// merge, so with <c>MergeCount = 0</c> (or <see cref="VisionTransformer.MergeEnabled"/> false) the outputs are timm's.
/// Checkpoints with features this ViT lacks (LayerScale <c>ls1</c>/<c>ls2</c>, <c>fc_norm</c>, register tokens, q/k
/// norms, ...) are rejected with the key that shows it, never loaded approximately.
/// </para>
/// <para>
/// Why our own mapping rather than PyBridge's <c>load_py</c>/<c>load_safetensors</c> straight into the module: those
/// need the module's own names and shapes, and a pretrained file has neither (timm/HF names, separate q/k/v in HF, a
/// position embedding for another grid). PyBridge still does the file reading and writing.
/// </para>
/// </remarks>
public sealed class VisionTransformerCheckpoint : IDisposable
{
    private readonly Dictionary<string, Tensor> weights; // timm names, float32, CPU
    private readonly Dictionary<string, string> sourceNames; // timm name → the name in the file, for errors
    private readonly string path;
    private readonly VisionTransformerOptions options;

    private VisionTransformerCheckpoint(string path, CheckpointLayout layout, Dictionary<string, Tensor> weights,
        Dictionary<string, string> sourceNames, VisionTransformerOptions options, bool hasHead, IReadOnlyList<string> notes)
    {
        this.path = path;
        Layout = layout;
        this.weights = weights;
        this.sourceNames = sourceNames;
        this.options = options;
        HasHead = hasHead;
        Notes = notes;
    }

    /// <summary>The name layout the file used.</summary>
    public CheckpointLayout Layout { get; }

    /// <summary>
    /// The architecture inferred from the weights: Width, Depth, PatchSize, Channels, MlpRatio, ImageSize (grid × patch),
    /// ClassCount (the head's rows; 1 when the file has no head), Heads and LayerNormEpsilon as given or configured.
    /// Merging is off (<c>MergeCount = 0</c>) so the model computes what the checkpoint's source computes. A copy.
    /// </summary>
    public VisionTransformerOptions Options => options.Clone();

    /// <summary>Whether the file holds a classification head.</summary>
    public bool HasHead { get; }

    /// <summary>What was left out while reading (a dropped distillation token, an unused pooler), for the user to see.</summary>
    public IReadOnlyList<string> Notes { get; }

    /// <summary>The weights in timm's names (float32, CPU): what <see cref="LoadInto"/> copies. Owned by this object.</summary>
    public IReadOnlyDictionary<string, Tensor> Weights => weights;

    /// <summary>Reads a checkpoint; <paramref name="heads"/> as in <see cref="PretrainedWeights.Heads"/>.</summary>
    public static VisionTransformerCheckpoint Read(string path, int? heads = null) => Read(new PretrainedWeights { Path = path, Heads = heads });

    /// <summary>
    /// Reads the checkpoint <paramref name="weights"/> names, maps it to timm's names and infers the architecture.
    /// Throws <see cref="FileNotFoundException"/> for a missing file and <see cref="InvalidDataException"/> naming the
    /// first missing, unexpected or mis-shaped key.
    /// </summary>
    public static VisionTransformerCheckpoint Read(PretrainedWeights weights)
    {
        ArgumentNullException.ThrowIfNull(weights);
        weights.Validate(nameof(PretrainedWeights));
        var (file, config) = Locate(weights.Path);
        var raw = ReadStateDict(file);
        try
        {
            return FromStateDict(file, raw, config, weights);
        }
        finally
        {
            foreach (var t in raw.Values) t.Dispose();
        }
    }

    /// <summary>
    /// Options for a model that starts from this checkpoint: the checkpoint's architecture (width, depth, heads, patch
    /// size, channels, MLP ratio, LayerNorm ε) with <paramref name="imageSize"/> and <paramref name="classCount"/> (null
    /// keeps the checkpoint's), and the training-time settings (dropout, drop path, merging, attention layer,
    /// proportional attention) of <paramref name="training"/> when given.
    /// </summary>
    public VisionTransformerOptions ModelOptions(int? imageSize = null, int? classCount = null, VisionTransformerOptions? training = null)
    {
        var o = options.Clone();
        if (training is not null)
        {
            o.DropPathRate = training.DropPathRate;
            o.DropoutRate = training.DropoutRate;
            o.MergeCount = training.MergeCount;
            o.MergeInflection = training.MergeInflection;
            o.ProportionalAttention = training.ProportionalAttention;
            o.AttentionLayer = training.AttentionLayer;
        }
        if (imageSize is int size)
        {
            if (size <= 0 || size % o.PatchSize != 0)
                throw new ArgumentException(
                    $"Images of {size}×{size} pixels do not fit checkpoint {path}: its patch size is {o.PatchSize}, so the image side must be a " +
                    $"positive multiple of {o.PatchSize} (e.g. resize to {Math.Max(1, (int)Math.Round(size / (double)o.PatchSize)) * o.PatchSize} or to its {o.ImageSize}).",
                    nameof(imageSize));
            o.ImageSize = size;
        }
        if (classCount is int classes) o.ClassCount = classes;
        o.Validate();
        return o;
    }

    /// <summary>
    /// A new model with this checkpoint's weights (<see cref="ModelOptions"/>, then <see cref="LoadInto"/>); created
    /// outside any dispose scope, like any module.
    /// </summary>
    public VisionTransformer CreateModel(int? imageSize = null, int? classCount = null, VisionTransformerOptions? training = null,
        Generator? generator = null, bool loadHead = true)
    {
        var model = new VisionTransformer(ModelOptions(imageSize, classCount, training), generator);
        try
        {
            LoadInto(model, loadHead);
            return model;
        }
        catch
        {
            model.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Copies the weights into <paramref name="model"/>: the position embedding resampled (bicubic, as timm's
    /// <c>resample_abs_pos_embed</c>) when the model's patch grid differs, the head only when
    /// <paramref name="loadHead"/> and its shape fits (otherwise the model keeps its freshly initialised head). Returns
    /// whether the head was loaded. Throws <see cref="InvalidDataException"/> naming the first key whose shape does not
    /// fit the model, with both shapes.
    /// </summary>
    public bool LoadInto(VisionTransformer model, bool loadHead = true)
    {
        ArgumentNullException.ThrowIfNull(model);
        var target = model.Options;
        if (target.Heads != options.Heads)
            throw new ArgumentException($"The model has {target.Heads} heads but checkpoint {path} was read with Heads = {options.Heads}.", nameof(model));
        var parameters = model.named_parameters().ToDictionary(p => p.name, p => p.parameter);
        var plan = new List<(Parameter Target, Tensor Source)>();
        bool headLoaded = false;
        using var scope = NewDisposeScope();
        foreach (var (timmName, ourName) in NameMap(target.Depth))
        {
            var parameter = parameters[ourName];
            bool isHead = timmName.StartsWith("head.", StringComparison.Ordinal);
            if (isHead && (!loadHead || !HasHead || !weights[timmName].shape.SequenceEqual(parameter.shape))) continue;
            var source = timmName == "pos_embed" ? ResamplePositionEmbedding(weights[timmName], target.GridSize) : weights[timmName];
            if (!source.shape.SequenceEqual(parameter.shape))
                throw new InvalidDataException(
                    $"Checkpoint {path}: '{sourceNames[timmName]}' is [{string.Join(", ", source.shape)}] but the model expects [{string.Join(", ", parameter.shape)}] " +
                    $"for {ourName}; the model's architecture must be the checkpoint's (use VisionTransformerCheckpoint.ModelOptions).");
            plan.Add((parameter, source));
            headLoaded |= isHead;
        }
        // Check everything first, copy second: a failed load leaves the model as it was.
        using (no_grad())
            foreach (var (parameter, source) in plan) parameter.copy_(source);
        return headLoaded;
    }

    /// <summary>
    /// Writes <paramref name="model"/>'s weights in timm's layout (<c>patch_embed.proj.weight</c>, <c>cls_token</c>, ...,
    /// <c>head.bias</c>; float32): a <c>.safetensors</c> file, or a PyTorch <c>state_dict</c> for <c>.bin</c>/<c>.pth</c>/<c>.pt</c>.
    /// timm's <c>VisionTransformer(img_size, patch_size, embed_dim, depth, num_heads, mlp_ratio, num_classes)</c> with the
    /// same architecture loads it with <c>load_state_dict</c> (a ViT built with <c>LayerNormEpsilon</c> 1e-6).
    /// </summary>
    public static void SaveTimm(VisionTransformer model, string path)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentException.ThrowIfNullOrWhiteSpace(path);
        var parameters = model.named_parameters().ToDictionary(p => p.name, p => p.parameter);
        var state = new Dictionary<string, Tensor>();
        try
        {
            using (no_grad())
                foreach (var (timmName, ourName) in NameMap(model.Options.Depth))
                    state[timmName] = parameters[ourName].detach().to(ScalarType.Float32).cpu().contiguous().clone();
            string? folder = System.IO.Path.GetDirectoryName(System.IO.Path.GetFullPath(path));
            if (folder is not null) Directory.CreateDirectory(folder);
            string temporary = path + ".tmp";
            // File.Create truncates; PyBridge's path overloads open with OpenWrite, which would leave a longer old file's tail.
            using (var stream = File.Create(temporary))
            {
                if (IsSafetensors(path)) Safetensors.SaveStateDict(stream, state, leaveOpen: true);
                else PyTorchPickler.PickleStateDict(stream, state, leaveOpen: true);
            }
            File.Move(temporary, path, overwrite: true);
        }
        finally
        {
            foreach (var t in state.Values) t.Dispose();
        }
    }

    /// <inheritdoc />
    public void Dispose()
    {
        foreach (var t in weights.Values) t.Dispose();
        weights.Clear();
    }

    /// <summary>
    /// The position embedding [1, 1 + g², W] resampled to [1, 1 + grid², W]: the CLS row kept, the g×g grid
    /// interpolated bicubically with antialiasing (align_corners false), as timm's <c>resample_abs_pos_embed</c> does.
    /// Returned unchanged (the same tensor) when the grid already fits.
    /// </summary>
    public static Tensor ResamplePositionEmbedding(Tensor positionEmbedding, int grid)
    {
        ArgumentNullException.ThrowIfNull(positionEmbedding);
        if (grid <= 0) throw new ArgumentOutOfRangeException(nameof(grid), grid, "grid must be > 0.");
        long tokens = positionEmbedding.shape[1], width = positionEmbedding.shape[2];
        int oldGrid = (int)Math.Round(Math.Sqrt(tokens - 1));
        if (positionEmbedding.dim() != 3 || positionEmbedding.shape[0] != 1 || (long)oldGrid * oldGrid + 1 != tokens)
            throw new ArgumentException($"Expected a position embedding [1, 1 + g², W], got [{string.Join(", ", positionEmbedding.shape)}].", nameof(positionEmbedding));
        if (oldGrid == grid) return positionEmbedding;
        using var scope = NewDisposeScope();
        var cls = positionEmbedding.slice(1, 0, 1, 1);
        var patches = positionEmbedding.slice(1, 1, tokens, 1).reshape(1, oldGrid, oldGrid, width).permute(0, 3, 1, 2);
        // timm's call: bicubic, align_corners false, antialias true. The antialiased kernel is not only wider when
        // shrinking: it also uses Keys' a = −0.5 (plain bicubic uses −0.75) and renormalises at the borders, so it
        // matters when growing too. (Hugging Face's interpolate_pos_encoding uses plain bicubic; fine-tuning absorbs
        // the difference, and a checkpoint at its own grid is never resampled.)
        var resized = nn.functional.interpolate(patches, new long[] { grid, grid }, mode: InterpolationMode.Bicubic, align_corners: false, antialias: true);
        var result = cat(new[] { cls, resized.permute(0, 2, 3, 1).reshape(1, (long)grid * grid, width) }, 1);
        return result.MoveToOuterDisposeScope();
    }

    // timm name → our parameter name, in timm's order.
    private static IEnumerable<(string Timm, string Ours)> NameMap(int depth)
    {
        yield return ("cls_token", "clsToken");
        yield return ("pos_embed", "posEmbed");
        yield return ("patch_embed.proj.weight", "patchEmbed.weight");
        yield return ("patch_embed.proj.bias", "patchEmbed.bias");
        for (int i = 0; i < depth; i++)
        {
            string b = $"blocks.{i}.";
            foreach (var (timm, ours) in new[]
                     {
                         ("norm1", "norm1"), ("attn.qkv", "attn.qkv"), ("attn.proj", "attn.proj"), ("norm2", "norm2"),
                         ("mlp.fc1", "fc1"), ("mlp.fc2", "fc2"),
                     })
            {
                yield return (b + timm + ".weight", b + ours + ".weight");
                yield return (b + timm + ".bias", b + ours + ".bias");
            }
        }
        yield return ("norm.weight", "norm.weight");
        yield return ("norm.bias", "norm.bias");
        yield return ("head.weight", "head.weight");
        yield return ("head.bias", "head.bias");
    }

    private static bool IsSafetensors(string file) => file.EndsWith(".safetensors", StringComparison.OrdinalIgnoreCase);

    /// <summary>The weights file and, for a Hugging Face folder (or a file inside one), its config.json.</summary>
    private static (string File, JsonElement? Config) Locate(string path)
    {
        string file = path;
        if (Directory.Exists(path))
        {
            file = new[] { "model.safetensors", "pytorch_model.bin" }.Select(name => System.IO.Path.Combine(path, name)).FirstOrDefault(File.Exists)
                ?? throw new FileNotFoundException(
                    $"Checkpoint folder {path} holds neither model.safetensors nor pytorch_model.bin (sharded checkpoints are not supported; a ViT fits in one file).", path);
        }
        else if (!File.Exists(path))
        {
            throw new FileNotFoundException($"Checkpoint file {path} not found.", path);
        }
        string configFile = System.IO.Path.Combine(System.IO.Path.GetDirectoryName(System.IO.Path.GetFullPath(file))!, "config.json");
        JsonElement? config = null;
        if (File.Exists(configFile))
        {
            try
            {
                using var document = JsonDocument.Parse(File.ReadAllText(configFile));
                config = document.RootElement.Clone();
            }
            catch (JsonException e)
            {
                throw new InvalidDataException($"{configFile} next to checkpoint {file} is not valid JSON: {e.Message}", e);
            }
        }
        return (file, config);
    }

    private static Dictionary<string, Tensor> ReadStateDict(string file)
    {
        var result = new Dictionary<string, Tensor>();
        try
        {
            if (IsSafetensors(file))
            {
                foreach (var (name, t) in Safetensors.LoadStateDict(file)) result[name] = t;
            }
            else
            {
                Hashtable table;
                try
                {
                    table = PyTorchUnpickler.UnpickleStateDict(file);
                }
                catch (Exception e) when (e is NotImplementedException or InvalidDataException or InvalidOperationException or InvalidCastException)
                {
                    throw new InvalidDataException(
                        $"Checkpoint {file} is not a PyTorch state_dict in torch.save's zip format (nor a .safetensors file): {e.Message} " +
                        "Re-save it in Python with torch.save(model.state_dict(), path) or safetensors.torch.save_file.", e);
                }
                // Training scripts often wrap the weights: DeiT's {'model': ...}, Lightning's {'state_dict': ...}.
                var inner = table["model"] as Hashtable ?? table["state_dict"] as Hashtable ?? table;
                foreach (DictionaryEntry entry in inner)
                    if (entry.Value is Tensor t) result[(string)entry.Key] = t;
            }
            if (result.Count == 0) throw new InvalidDataException($"Checkpoint {file} holds no tensors.");
            // DataParallel/DDP prefix every name with "module.".
            if (result.Keys.All(k => k.StartsWith("module.", StringComparison.Ordinal)))
                result = result.ToDictionary(kv => kv.Key["module.".Length..], kv => kv.Value);
            return result;
        }
        catch
        {
            foreach (var t in result.Values) t.Dispose();
            throw;
        }
    }

    private static VisionTransformerCheckpoint FromStateDict(string file, Dictionary<string, Tensor> raw, JsonElement? config, PretrainedWeights request)
    {
        bool huggingFace = raw.Keys.Any(k => k.Contains("encoder.layer.", StringComparison.Ordinal));
        bool timm = raw.Keys.Any(k => k.StartsWith("blocks.", StringComparison.Ordinal) || k.StartsWith("patch_embed.", StringComparison.Ordinal));
        if (huggingFace == timm)
            throw new InvalidDataException(huggingFace
                ? $"Checkpoint {file} mixes timm names (blocks.N.*) and Hugging Face names (encoder.layer.N.*)."
                : $"Checkpoint {file} is not a ViT in timm or Hugging Face layout: no 'blocks.0.*' or 'encoder.layer.0.*' keys (first key: '{raw.Keys.Order().First()}').");
        var notes = new List<string>();
        var names = new Dictionary<string, string>();
        var mapped = new Dictionary<string, Tensor>();
        // ViTForImageClassification nests the model under "vit." (DeiT under "deit."); a bare ViTModel has no prefix.
        string prefix = huggingFace ? new[] { "vit.", "deit." }.FirstOrDefault(p => raw.Keys.Any(k => k.StartsWith(p + "encoder.layer.", StringComparison.Ordinal))) ?? "" : "";
        try
        {
            if (huggingFace) FromHuggingFace(file, prefix, raw, mapped, names, notes);
            else
                foreach (var (name, t) in raw)
                {
                    mapped[name] = t.to(ScalarType.Float32, copy: true);
                    names[name] = name;
                }
            var layout = huggingFace ? CheckpointLayout.HuggingFace : CheckpointLayout.Timm;
            var options = Infer(file, layout, prefix, mapped, names, config, request, notes);
            return new VisionTransformerCheckpoint(file, layout, mapped, names, options, mapped.ContainsKey("head.weight"), notes);
        }
        catch
        {
            foreach (var t in mapped.Values) t.Dispose();
            throw;
        }
    }

    private static readonly Regex HuggingFaceBlock = new(@"^encoder\.layer\.(\d+)\.(.+)$", RegexOptions.CultureInvariant);

    private static void FromHuggingFace(string file, string prefix, Dictionary<string, Tensor> raw, Dictionary<string, Tensor> mapped,
        Dictionary<string, string> names, List<string> notes)
    {
        var qkv = new Dictionary<string, Tensor[]>();
        var qkvNames = new Dictionary<string, string[]>();
        void Put(string timmName, string sourceName)
        {
            mapped[timmName] = raw[sourceName].to(ScalarType.Float32, copy: true);
            names[timmName] = sourceName;
        }
        foreach (var sourceName in raw.Keys.Order(StringComparer.Ordinal))
        {
            string name = sourceName.StartsWith(prefix, StringComparison.Ordinal) ? sourceName[prefix.Length..] : sourceName;
            switch (name)
            {
                case "embeddings.cls_token": Put("cls_token", sourceName); continue;
                case "embeddings.distillation_token": Put("dist_token", sourceName); continue;
                case "embeddings.position_embeddings": Put("pos_embed", sourceName); continue;
                case "embeddings.patch_embeddings.projection.weight": Put("patch_embed.proj.weight", sourceName); continue;
                case "embeddings.patch_embeddings.projection.bias": Put("patch_embed.proj.bias", sourceName); continue;
                case "layernorm.weight": Put("norm.weight", sourceName); continue;
                case "layernorm.bias": Put("norm.bias", sourceName); continue;
                case "classifier.weight" or "cls_classifier.weight": Put("head.weight", sourceName); continue;
                case "classifier.bias" or "cls_classifier.bias": Put("head.bias", sourceName); continue;
                case "distillation_classifier.weight": Put("head_dist.weight", sourceName); continue;
                case "distillation_classifier.bias": Put("head_dist.bias", sourceName); continue;
                case "embeddings.mask_token":
                    notes.Add($"'{sourceName}' (masked-image-modelling token, unused for classification) was not loaded.");
                    continue;
                case "pooler.dense.weight" or "pooler.dense.bias":
                    notes.Add($"'{sourceName}' (ViTModel's tanh pooler, which ViTForImageClassification does not use either) was not loaded.");
                    continue;
            }
            var match = HuggingFaceBlock.Match(name);
            if (!match.Success)
            {
                names[sourceName] = sourceName;
                mapped[sourceName] = raw[sourceName].to(ScalarType.Float32, copy: true); // rejected as unexpected by Infer, by its own name
                continue;
            }
            string block = $"blocks.{match.Groups[1].Value}.";
            string rest = match.Groups[2].Value;
            int part = rest switch
            {
                "attention.attention.query.weight" or "attention.attention.query.bias" => 0,
                "attention.attention.key.weight" or "attention.attention.key.bias" => 1,
                "attention.attention.value.weight" or "attention.attention.value.bias" => 2,
                _ => -1,
            };
            if (part >= 0)
            {
                string key = block + "attn.qkv." + (rest.EndsWith(".weight", StringComparison.Ordinal) ? "weight" : "bias");
                if (!qkv.ContainsKey(key)) { qkv[key] = new Tensor[3]; qkvNames[key] = new string[3]; }
                qkv[key][part] = raw[sourceName];
                qkvNames[key][part] = sourceName;
                continue;
            }
            string? timmName = rest switch
            {
                "layernorm_before.weight" => "norm1.weight",
                "layernorm_before.bias" => "norm1.bias",
                "attention.output.dense.weight" => "attn.proj.weight",
                "attention.output.dense.bias" => "attn.proj.bias",
                "layernorm_after.weight" => "norm2.weight",
                "layernorm_after.bias" => "norm2.bias",
                "intermediate.dense.weight" => "mlp.fc1.weight",
                "intermediate.dense.bias" => "mlp.fc1.bias",
                "output.dense.weight" => "mlp.fc2.weight",
                "output.dense.bias" => "mlp.fc2.bias",
                _ => null,
            };
            if (timmName is null)
            {
                names[sourceName] = sourceName;
                mapped[sourceName] = raw[sourceName].to(ScalarType.Float32, copy: true);
                continue;
            }
            Put(block + timmName, sourceName);
        }
        string[] partNames = { "query", "key", "value" };
        foreach (var (key, parts) in qkv.OrderBy(kv => kv.Key, StringComparer.Ordinal))
        {
            int present = Array.FindIndex(parts, t => t is not null);
            int missing = Array.FindIndex(parts, t => t is null);
            if (missing >= 0)
            {
                string known = qkvNames[key][present];
                string absent = known.Replace($".attention.attention.{partNames[present]}.", $".attention.attention.{partNames[missing]}.", StringComparison.Ordinal);
                throw new InvalidDataException($"Checkpoint {file}: key '{absent}' is missing (a block needs its query, key and value).");
            }
            // timm's fused qkv projection stacks q, k, v along the output features, each head-major like HF's.
            mapped[key] = cat(parts, 0).to(ScalarType.Float32);
            names[key] = string.Join(" + ", qkvNames[key]);
        }
    }

    private static VisionTransformerOptions Infer(string file, CheckpointLayout layout, string prefix, Dictionary<string, Tensor> w,
        Dictionary<string, string> names, JsonElement? config, PretrainedWeights request, List<string> notes)
    {
        bool hf = layout == CheckpointLayout.HuggingFace;
        string Source(string timmName) => hf ? HuggingFaceName(timmName, prefix) : timmName;
        Tensor Require(string timmName, int rank)
        {
            if (!w.TryGetValue(timmName, out var t))
                throw new InvalidDataException($"Checkpoint {file}: key '{Source(timmName)}' is missing.");
            if (t.dim() != rank)
                throw new InvalidDataException($"Checkpoint {file}: '{names[timmName]}' has {t.dim()} dimensions [{string.Join(", ", t.shape)}], expected {rank}.");
            return t;
        }
        void Shape(string timmName, params long[] expected)
        {
            var t = Require(timmName, expected.Length);
            if (!t.shape.SequenceEqual(expected))
                throw new InvalidDataException($"Checkpoint {file}: '{names[timmName]}' is [{string.Join(", ", t.shape)}], expected [{string.Join(", ", expected)}].");
        }

        foreach (var (hint, why) in new[]
                 {
                     ("fc_norm.", "global average pooling (global_pool='avg', fc_norm); this ViT classifies from the CLS token"),
                     ("reg_token", "register tokens"),
                     (".ls1.", "LayerScale"), (".ls2.", "LayerScale"),
                     (".q_norm.", "q/k normalisation"), (".k_norm.", "q/k normalisation"),
                     ("norm_pre.", "a pre-norm before the blocks (CLIP-style)"),
                     ("attn_pool.", "attention pooling"),
                 })
            if (w.Keys.Order(StringComparer.Ordinal).FirstOrDefault(k => k.StartsWith(hint, StringComparison.Ordinal) || k.Contains(hint, StringComparison.Ordinal)) is { } key)
                throw new InvalidDataException($"Checkpoint {file}: '{names[key]}' shows {why}, which this ViT does not have; it cannot compute what that model computes.");

        var patch = Require("patch_embed.proj.weight", 4);
        long width = patch.shape[0], channels = patch.shape[1], patchSize = patch.shape[2];
        if (patch.shape[3] != patchSize)
            throw new InvalidDataException($"Checkpoint {file}: '{names["patch_embed.proj.weight"]}' is [{string.Join(", ", patch.shape)}]: patches must be square.");
        Shape("patch_embed.proj.bias", width);
        Shape("cls_token", 1, 1, width);

        int depth = 0;
        while (w.ContainsKey($"blocks.{depth}.norm1.weight") || w.ContainsKey($"blocks.{depth}.attn.qkv.weight")) depth++;
        if (depth == 0) throw new InvalidDataException($"Checkpoint {file}: key '{Source("blocks.0.norm1.weight")}' is missing.");
        var fc1 = Require("blocks.0.mlp.fc1.weight", 2);
        long hidden = fc1.shape[0];
        for (int i = 0; i < depth; i++)
        {
            string b = $"blocks.{i}.";
            Shape(b + "norm1.weight", width); Shape(b + "norm1.bias", width);
            Shape(b + "attn.qkv.weight", 3 * width, width); Shape(b + "attn.qkv.bias", 3 * width);
            Shape(b + "attn.proj.weight", width, width); Shape(b + "attn.proj.bias", width);
            Shape(b + "norm2.weight", width); Shape(b + "norm2.bias", width);
            Shape(b + "mlp.fc1.weight", hidden, width); Shape(b + "mlp.fc1.bias", hidden);
            Shape(b + "mlp.fc2.weight", width, hidden); Shape(b + "mlp.fc2.bias", width);
        }
        Shape("norm.weight", width); Shape("norm.bias", width);

        // Distilled DeiT: a second prefix token with its own head.
        if (w.ContainsKey("dist_token"))
        {
            if (!request.DropDistillationToken)
                throw new InvalidDataException(
                    $"Checkpoint {file} is a distilled DeiT ('{names["dist_token"]}'): this ViT has no distillation token. Set " +
                    "PretrainedWeights.DropDistillationToken = true to drop it (the model then differs from the distilled DeiT until fine-tuned), " +
                    "or use the non-distilled DeiT checkpoint.");
            var pos = Require("pos_embed", 3);
            var kept = cat(new[] { pos.slice(1, 0, 1, 1), pos.slice(1, 2, pos.shape[1], 1) }, 1);
            pos.Dispose();
            w["pos_embed"] = kept;
            foreach (var key in new[] { "dist_token", "head_dist.weight", "head_dist.bias" })
                if (w.Remove(key, out var dropped))
                {
                    notes.Add($"'{names[key]}' (distillation) was dropped.");
                    dropped.Dispose();
                }
            notes.Add("The distillation token's position-embedding row was dropped.");
        }

        var posEmbed = Require("pos_embed", 3);
        long tokens = posEmbed.shape[1];
        long grid = (long)Math.Round(Math.Sqrt(tokens - 1));
        if (posEmbed.shape[0] != 1 || posEmbed.shape[2] != width)
            throw new InvalidDataException($"Checkpoint {file}: '{names["pos_embed"]}' is [{string.Join(", ", posEmbed.shape)}], expected [1, 1 + grid², {width}].");
        if (grid * grid + 1 != tokens)
        {
            long patchesOnly = (long)Math.Round(Math.Sqrt(tokens));
            if (patchesOnly * patchesOnly != tokens)
                throw new InvalidDataException($"Checkpoint {file}: '{names["pos_embed"]}' has {tokens} rows, neither 1 + grid² nor grid² for a square patch grid.");
            // timm's no_embed_class: the CLS token gets no position embedding, the same as a zero row for it here.
            w["pos_embed"] = cat(new[] { zeros(1, 1, width), posEmbed }, 1);
            posEmbed.Dispose();
            grid = patchesOnly;
            notes.Add($"'{names["pos_embed"]}' has no CLS row (timm's no_embed_class); a zero row was put in front, which computes the same.");
        }

        long classCount = 1;
        if (w.ContainsKey("head.weight") || w.ContainsKey("head.bias"))
        {
            var head = Require("head.weight", 2);
            classCount = head.shape[0];
            Shape("head.weight", classCount, width);
            Shape("head.bias", classCount);
        }

        var expected = new HashSet<string>(NameMap(depth).Select(n => n.Timm));
        if (w.Keys.Where(k => !expected.Contains(k)).Order(StringComparer.Ordinal).FirstOrDefault() is { } unexpected)
            throw new InvalidDataException(
                $"Checkpoint {file}: unexpected key '{names[unexpected]}'; this ViT has no such weight, so the checkpoint's model is not the one it would compute.");

        int heads = request.Heads ?? ConfigInt(config, "num_attention_heads")
            ?? throw new ArgumentException(
                $"Checkpoint {file}: the number of attention heads is not recorded in the weights; set PretrainedWeights.Heads " +
                $"(width {width}: ViT/DeiT-Tiny 192 → 3, Small 384 → 6, Base 768 → 12, Large 1024 → 16).", nameof(PretrainedWeights.Heads));
        if (width % heads != 0)
            throw new ArgumentException($"Checkpoint {file}: its width {width} is not a multiple of Heads = {heads}.", nameof(PretrainedWeights.Heads));
        if (hf && config is { } c)
        {
            if (c.TryGetProperty("hidden_act", out var act) && act.ValueKind == JsonValueKind.String && act.GetString() != "gelu")
                throw new InvalidDataException($"Checkpoint {file}: config.json's hidden_act is '{act.GetString()}'; this ViT uses the exact (erf) GELU, 'gelu'.");
            if (c.TryGetProperty("qkv_bias", out var bias) && bias.ValueKind == JsonValueKind.False)
                throw new InvalidDataException($"Checkpoint {file}: config.json says qkv_bias false; this ViT's q, k, v projections have biases.");
        }
        double eps = request.LayerNormEpsilon
            ?? (hf ? ConfigDouble(config, "layer_norm_eps") ?? 1e-12 : 1e-6);

        var result = new VisionTransformerOptions
        {
            ImageSize = checked((int)(grid * patchSize)),
            PatchSize = checked((int)patchSize),
            Channels = checked((int)channels),
            Width = checked((int)width),
            Depth = depth,
            Heads = heads,
            MlpRatio = hidden / (double)width,
            ClassCount = checked((int)classCount),
            LayerNormEpsilon = eps,
            MergeCount = 0,
            DropPathRate = 0,
            DropoutRate = 0,
        };
        if (result.MlpHidden != hidden)
            throw new InvalidDataException($"Checkpoint {file}: MLP hidden width {hidden} is not a whole-number multiple's truncation of width {width}.");
        result.Validate();
        return result;
    }

    private static int? ConfigInt(JsonElement? config, string name) =>
        config is { } c && c.ValueKind == JsonValueKind.Object && c.TryGetProperty(name, out var v) && v.TryGetInt32(out int value) ? value : null;

    private static double? ConfigDouble(JsonElement? config, string name) =>
        config is { } c && c.ValueKind == JsonValueKind.Object && c.TryGetProperty(name, out var v) && v.TryGetDouble(out double value) ? value : null;

    // The Hugging Face name of a missing timm key, so the error speaks the file's language.
    private static string HuggingFaceName(string timmName, string prefix)
    {
        var block = Regex.Match(timmName, @"^blocks\.(\d+)\.(.+)$");
        if (block.Success)
        {
            string rest = block.Groups[2].Value switch
            {
                var r when r.StartsWith("norm1.") => "layernorm_before." + r["norm1.".Length..],
                var r when r.StartsWith("attn.qkv.") => "attention.attention.query." + r["attn.qkv.".Length..],
                var r when r.StartsWith("attn.proj.") => "attention.output.dense." + r["attn.proj.".Length..],
                var r when r.StartsWith("norm2.") => "layernorm_after." + r["norm2.".Length..],
                var r when r.StartsWith("mlp.fc1.") => "intermediate.dense." + r["mlp.fc1.".Length..],
                var r when r.StartsWith("mlp.fc2.") => "output.dense." + r["mlp.fc2.".Length..],
                var r => r,
            };
            return $"{prefix}encoder.layer.{block.Groups[1].Value}.{rest}";
        }
        return timmName switch
        {
            "cls_token" => prefix + "embeddings.cls_token",
            "pos_embed" => prefix + "embeddings.position_embeddings",
            "patch_embed.proj.weight" => prefix + "embeddings.patch_embeddings.projection.weight",
            "patch_embed.proj.bias" => prefix + "embeddings.patch_embeddings.projection.bias",
            "norm.weight" => prefix + "layernorm.weight",
            "norm.bias" => prefix + "layernorm.bias",
            "head.weight" => "classifier.weight",
            "head.bias" => "classifier.bias",
            _ => timmName,
        };
    }
}
