using MergeMix.ML.Classification;
using Onnx;
using TorchSharp;
using static TorchSharp.torch;
using DataType = Onnx.TensorProto.Types.DataType;

namespace MergeMix.ML.Persistence;

/// <summary>Which outputs the ONNX graph of a classifier ends with.</summary>
internal enum OnnxHead
{
    /// <summary>
    /// For ONNX Runtime users: input [batch, C, H, W]; outputs Score [batch, K] (softmax probabilities) and
    /// PredictedLabel [batch] (class names, strings).
    /// </summary>
    Batch,

    /// <summary>
    /// For ML.NET's OnnxTransformer, which runs one row at a time: Score [K] (with the class names as SlotNames) and
    /// the predicted class index as float [1], which built-in ML.NET transforms turn into a key.
    /// </summary>
    SingleRow,
}

/// <summary>
/// Writes an <see cref="ImageClassifierModel"/> (input normalisation + ToMe Vision Transformer, eval mode) as an ONNX
/// graph, one function per layer, mirroring <see cref="Vision.VisionTransformer"/>'s forward pass op for op: exact
/// (erf) GELU, LayerNorm ε of the model's options, proportional attention and size-weighted ToMe merging with the same schedule.
/// </summary>
internal sealed class VisionTransformerOnnx
{
    private readonly OnnxGraph _g = new("mergemix_vit");
    private readonly Dictionary<string, Tensor> _weights;
    private readonly Vision.VisionTransformerOptions _o;
    private string _batch = "";

    private VisionTransformerOnnx(ImageClassifierModel model)
    {
        _o = model.Options;
        _weights = model.state_dict().ToDictionary(p => p.Key, p => p.Value);
    }

    /// <summary>
    /// Builds the graph. <paramref name="merge"/> bakes in ToMe merging with the model's schedule (the token counts of
    /// every block are static, so the graph has fixed shapes apart from the batch).
    /// </summary>
    public static ModelProto Build(ImageClassifierModel model, IReadOnlyList<string> classNames, string inputName, string scoreName,
        string predictedLabelName, bool merge, OnnxHead head)
    {
        if (classNames.Count != model.Options.ClassCount)
            throw new ArgumentException($"{classNames.Count} class names for a model with {model.Options.ClassCount} classes.", nameof(classNames));
        var writer = new VisionTransformerOnnx(model);
        var g = writer._g;
        var o = writer._o;
        // One row at a time for ML.NET: a fixed batch of 1 lets ONNX Runtime reject an image column holding a multiple
        // of the model's pixel count, which ML.NET's shape check lets through as a "batch".
        long? batch = head == OnnxHead.Batch ? null : 1;
        string raw = g.Input(inputName, DataType.Float, batch, o.Channels, o.ImageSize, o.ImageSize);
        writer._batch = g.Op("Slice", "batch", new[] { g.Op("Shape", "batch", new[] { raw }), g.Int64s("batch/start", 0), g.Int64s("batch/end", 1) });

        var x = writer.Normalize(raw, model.ChannelMean, model.ChannelStd);
        x = writer.PatchEmbedding(x);
        x = writer.ClassTokenAndPositions(x);
        int[] schedule = merge ? model.Backbone.Schedule : new int[o.Depth];
        string? size = null; // all ones until the first merge, as in the TorchSharp model
        long tokens = o.PatchCount + 1;
        for (int i = 0; i < o.Depth; i++)
        {
            string block = $"blocks.{i}";
            string? keyBias = o.ProportionalAttention && size is not null ? writer.LogSizeBias(size, block) : null;
            var (attended, metric) = writer.Attention(writer.LayerNorm(x, $"backbone.{block}.norm1", block), keyBias, tokens, block);
            x = g.Op("Add", block, new[] { x, attended });
            int r = (int)Math.Min(schedule[i], (tokens - 1) / 2);
            if (r > 0)
            {
                (x, size) = writer.Merge(x, size, metric, tokens, r, block);
                tokens -= r;
            }
            x = g.Op("Add", block, new[] { x, writer.Mlp(writer.LayerNorm(x, $"backbone.{block}.norm2", block), block) });
        }
        var cls = g.Op("Gather", "head", new[] { x, g.Int64("head/cls", new long[] { 0 }) }, OnnxGraph.Int("axis", 1));
        var logits = writer.Linear(writer.LayerNorm(cls, "backbone.norm", "head"), "backbone.head", "head");
        var probabilities = g.Op("Softmax", "head", new[] { logits }, OnnxGraph.Int("axis", -1));
        var predicted = g.Op("ArgMax", "head", new[] { probabilities }, OnnxGraph.Int("axis", 1), OnnxGraph.Int("keepdims", 0));
        int k = o.ClassCount;
        if (head == OnnxHead.Batch)
        {
            g.Output(probabilities, scoreName, DataType.Float, null, k);
            var names = g.Op("Gather", "head", new[] { g.Strings("head/class_names", classNames), predicted }, OnnxGraph.Int("axis", 0));
            g.Output(names, predictedLabelName, DataType.String, (long?)null);
        }
        else
        {
            g.Output(g.Op("Reshape", "head", new[] { probabilities, g.Int64s("head/score_shape", k) }), scoreName, DataType.Float, k);
            g.SlotNames(scoreName, classNames);
            var index = g.Op("Cast", "head", new[] { predicted }, OnnxGraph.Int("to", (long)DataType.Float));
            g.Output(g.Op("Reshape", "head", new[] { index, g.Int64s("head/index_shape", 1) }), predictedLabelName, DataType.Float, 1);
        }
        return g.ToModel("MergeMix.ML", $"ToMe Vision Transformer ({o.Depth} blocks × {o.Width}, {o.ImageSize}px, patch {o.PatchSize}, merging {(merge ? "on" : "off")})");
    }

    /// <summary>(raw − mean) / std per channel, as <see cref="ImageClassifierModel.Normalize"/>.</summary>
    private string Normalize(string raw, IReadOnlyList<float> mean, IReadOnlyList<float> std)
    {
        int c = _o.Channels;
        var centred = _g.Op("Sub", "normalize", new[] { raw, _g.Float("normalize/mean", mean.ToArray(), 1, c, 1, 1) });
        return _g.Op("Div", "normalize", new[] { centred, _g.Float("normalize/std", std.ToArray(), 1, c, 1, 1) });
    }

    /// <summary>Conv2d(kernel = stride = patch) then [B, W, g, g] → [B, L, W].</summary>
    private string PatchEmbedding(string images)
    {
        int p = _o.PatchSize;
        var conv = _g.Op("Conv", "patch_embed", new[] { images, Weight("backbone.patchEmbed.weight", "patch_embed"), Weight("backbone.patchEmbed.bias", "patch_embed") },
            OnnxGraph.Ints("kernel_shape", p, p), OnnxGraph.Ints("strides", p, p));
        var flat = _g.Op("Reshape", "patch_embed", new[] { conv, _g.Int64s("patch_embed/shape", 0, _o.Width, _o.PatchCount) });
        return _g.Op("Transpose", "patch_embed", new[] { flat }, OnnxGraph.Ints("perm", 0, 2, 1));
    }

    /// <summary>[CLS, patches] + position embedding.</summary>
    private string ClassTokenAndPositions(string patches)
    {
        var cls = _g.Op("Expand", "cls", new[] { Weight("backbone.clsToken", "cls"), BatchShape("cls", 1, _o.Width) });
        var tokens = _g.Op("Concat", "cls", new[] { cls, patches }, OnnxGraph.Int("axis", 1));
        return _g.Op("Add", "pos", new[] { tokens, Weight("backbone.posEmbed", "pos") });
    }

    /// <summary>LayerNormalization over the last axis with the model's ε (1e-6 unless a Hugging Face checkpoint set 1e-12).</summary>
    private string LayerNorm(string x, string module, string prefix) =>
        _g.Op("LayerNormalization", prefix + "/norm", new[] { x, Weight(module + ".weight", prefix), Weight(module + ".bias", prefix) },
            OnnxGraph.Int("axis", -1), OnnxGraph.FloatAttribute("epsilon", (float)_o.LayerNormEpsilon));

    /// <summary>x·Wᵀ + b (the weight is stored transposed so MatMul broadcasts over batch and tokens).</summary>
    private string Linear(string x, string module, string prefix)
    {
        var w = _weights[module + ".weight"];
        using var transposed = w.detach().t().contiguous().cpu();
        var weight = _g.Float(prefix + "/" + module + ".weight_t", transposed.data<float>().ToArray(), w.shape[1], w.shape[0]);
        var product = _g.Op("MatMul", prefix, new[] { x, weight });
        return _weights.ContainsKey(module + ".bias") ? _g.Op("Add", prefix, new[] { product, Weight(module + ".bias", prefix) }) : product;
    }

    /// <summary>
    /// Multi-head attention of ToMeAttention: softmax(q·kᵀ/√d + keyBias)·v, then the projection. Also returns ToMe's
    /// metric, the keys averaged over heads [B, N, d].
    /// </summary>
    private (string Output, string Metric) Attention(string x, string? keyBias, long tokens, string block)
    {
        string prefix = block + "/attn";
        int heads = _o.Heads, headWidth = _o.Width / heads;
        var qkv = Linear(x, $"backbone.{block}.attn.qkv", prefix);
        var split = _g.Op("Reshape", prefix, new[] { qkv, _g.Int64s(prefix + "/qkv_shape", 0, tokens, 3, heads, headWidth) });
        var parts = _g.Op("Transpose", prefix, new[] { split }, OnnxGraph.Ints("perm", 2, 0, 3, 1, 4)); // [3, B, H, N, d]
        string Part(long i) => _g.Op("Gather", prefix, new[] { parts, _g.Int64(prefix + "/part", new[] { i }) }, OnnxGraph.Int("axis", 0));
        string q = Part(0), k = Part(1), v = Part(2);
        var metric = _g.Op("ReduceMean", prefix + "/metric", new[] { k, _g.Int64s(prefix + "/heads_axis", 1) }, OnnxGraph.Int("keepdims", 0));

        var keysT = _g.Op("Transpose", prefix, new[] { k }, OnnxGraph.Ints("perm", 0, 1, 3, 2));
        var logits = _g.Op("Mul", prefix, new[] { _g.Op("MatMul", prefix, new[] { q, keysT }), _g.FloatScalar(prefix + "/scale", (float)(1.0 / Math.Sqrt(headWidth))) });
        if (keyBias is not null) logits = _g.Op("Add", prefix, new[] { logits, keyBias });
        var weights = _g.Op("Softmax", prefix, new[] { logits }, OnnxGraph.Int("axis", -1));
        var heads4 = _g.Op("MatMul", prefix, new[] { weights, v });                                     // [B, H, N, d]
        var joined = _g.Op("Transpose", prefix, new[] { heads4 }, OnnxGraph.Ints("perm", 0, 2, 1, 3));
        var merged = _g.Op("Reshape", prefix, new[] { joined, _g.Int64s(prefix + "/out_shape", 0, tokens, _o.Width) });
        return (Linear(merged, $"backbone.{block}.attn.proj", prefix), metric);
    }

    /// <summary>fc2(GELU(fc1(x))) with exact (erf) GELU, as nn.GELU() computes by default.</summary>
    private string Mlp(string x, string block)
    {
        string prefix = block + "/mlp";
        var hidden = _g.Op("Gelu", prefix, new[] { Linear(x, $"backbone.{block}.fc1", prefix) }, OnnxGraph.Text("approximate", "none"));
        return Linear(hidden, $"backbone.{block}.fc2", prefix);
    }

    /// <summary>log(size) laid out as an additive key bias [B, 1, 1, N] (proportional attention).</summary>
    private string LogSizeBias(string size, string block)
    {
        var log = _g.Op("Log", block + "/size_bias", new[] { size });
        var row = _g.Op("Transpose", block + "/size_bias", new[] { log }, OnnxGraph.Ints("perm", 0, 2, 1));
        return _g.Op("Unsqueeze", block + "/size_bias", new[] { row, _g.Int64s(block + "/size_bias/axis", 1) });
    }

    /// <summary>
    /// ToMe bipartite soft matching with CLS protected (<see cref="TokenMerging.BipartiteSoftMatching.Match"/>), then the
    /// size-weighted merge (<see cref="TokenMerging.BipartiteSoftMatching.MergeWeighted"/>): the same TopK ordering
    /// (ties to the lower index), the same token map, and ScatterElements(add) where TorchSharp uses scatter_add.
    /// </summary>
    private (string X, string Size) Merge(string x, string? size, string metric, long n, int r, string block)
    {
        string p = block + "/tome";
        long na = (n + 1) / 2, nb = n / 2, kept = na - r;
        var norm = _g.Op("ReduceL2", p, new[] { metric, _g.Int64s(p + "/last_axis", -1) }, OnnxGraph.Int("keepdims", 1));
        var unit = _g.Op("Div", p, new[] { metric, _g.Op("Max", p, new[] { norm, _g.FloatScalar(p + "/min_norm", 1e-12f) }) });
        var a = Strided(unit, 0, n, p);
        var b = Strided(unit, 1, n, p);
        var scores = _g.Op("MatMul", p, new[] { a, _g.Op("Transpose", p, new[] { b }, OnnxGraph.Ints("perm", 0, 2, 1)) }); // [B, na, nb]
        var protect = new float[na];
        protect[0] = float.NegativeInfinity;
        scores = _g.Op("Add", p, new[] { scores, _g.Float(p + "/protect_cls", protect, 1, na, 1) });
        var best = _g.Op("ReduceMax", p, new[] { scores, _g.Int64s(p + "/match_axis", -1) }, OnnxGraph.Int("keepdims", 0));
        var bestIndex = _g.Op("ArgMax", p, new[] { scores }, OnnxGraph.Int("axis", -1), OnnxGraph.Int("keepdims", 0));
        var order = _g.OpMulti("TopK", p, new[] { best, _g.Int64s(p + "/all", na) }, 2,
            OnnxGraph.Int("axis", -1), OnnxGraph.Int("largest", 1), OnnxGraph.Int("sorted", 1))[1];
        var mergedA = _g.Op("Slice", p, new[] { order, _g.Int64s(p + "/zero", 0), _g.Int64s(p + "/r", r), _g.Int64s(p + "/axis1", 1) });
        var rest = _g.Op("Slice", p, new[] { order, _g.Int64s(p + "/r_start", r), _g.Int64s(p + "/na", na), _g.Int64s(p + "/axis1b", 1) });
        // Ascending sort of the kept a-tokens restores their original order (CLS first).
        var unmergedA = _g.OpMulti("TopK", p, new[] { rest, _g.Int64s(p + "/kept", kept) }, 2,
            OnnxGraph.Int("axis", -1), OnnxGraph.Int("largest", 0), OnnxGraph.Int("sorted", 1))[0];
        var destination = _g.Op("GatherElements", p, new[] { bestIndex, mergedA }, OnnxGraph.Int("axis", 1));

        // aMap: unmerged a-token j → its rank among the kept; merged a-token → kept + its destination in b.
        var keptRanks = _g.Op("Expand", p, new[] { _g.Int64(p + "/kept_ranks", Range(0, kept), 1, kept), BatchShape(p, kept) });
        var mergedSlots = _g.Op("Add", p, new[] { destination, _g.Int64(p + "/kept_offset", new[] { kept }) });
        var aMap = _g.Op("ScatterElements", p, new[]
        {
            _g.Op("ConstantOfShape", p, new[] { BatchShape(p, na) }, ZeroInt64()),
            _g.Op("Concat", p, new[] { unmergedA, mergedA }, OnnxGraph.Int("axis", 1)),
            _g.Op("Concat", p, new[] { keptRanks, mergedSlots }, OnnxGraph.Int("axis", 1)),
        }, OnnxGraph.Int("axis", 1));
        // Token map over all N tokens: even positions from aMap, odd (set b) to kept + j; interleaved by one Gather.
        var bSlots = _g.Op("Expand", p, new[] { _g.Int64(p + "/b_slots", Range(kept, kept + nb), 1, nb), BatchShape(p, nb) });
        var interleave = Enumerable.Range(0, (int)n).Select(t => t % 2 == 0 ? t / 2L : na + t / 2L).ToArray();
        var tokenMap = _g.Op("Gather", p, new[] { _g.Op("Concat", p, new[] { aMap, bSlots }, OnnxGraph.Int("axis", 1)), _g.Int64s(p + "/interleave", interleave) },
            OnnxGraph.Int("axis", 1));

        var sizes = size ?? _g.Op("Expand", p, new[] { _g.Float(p + "/one", new[] { 1f }, 1, 1, 1), BatchShape(p, n, 1) });
        var index = _g.Op("Unsqueeze", p, new[] { tokenMap, _g.Int64s(p + "/last", 2) });
        var mergedSize = SumInto(sizes, index, n - r, 1, p);
        var weighted = _g.Op("Mul", p, new[] { x, sizes });
        var mergedX = _g.Op("Div", p, new[] { SumInto(weighted, index, n - r, _o.Width, p), mergedSize });
        return (mergedX, mergedSize);
    }

    /// <summary>zeros[B, outTokens, width].scatter_add(1, index expanded to [B, N, width], values).</summary>
    private string SumInto(string values, string index, long outTokens, long width, string p)
    {
        var expanded = _g.Op("Expand", p, new[] { index, _g.Op("Shape", p, new[] { values }) });
        var zeros = _g.Op("ConstantOfShape", p, new[] { BatchShape(p, outTokens, width) }, ZeroFloat());
        return _g.Op("ScatterElements", p, new[] { zeros, expanded, values }, OnnxGraph.Int("axis", 1), OnnxGraph.Text("reduction", "add"));
    }

    /// <summary>tokens[:, start::2].</summary>
    private string Strided(string x, long start, long n, string p) =>
        _g.Op("Slice", p, new[] { x, _g.Int64s(p + "/start", start), _g.Int64s(p + "/end", n), _g.Int64s(p + "/axis", 1), _g.Int64s(p + "/step", 2) });

    /// <summary>The shape [batch, dims...] as an int64 tensor (batch read from the input at run time).</summary>
    private string BatchShape(string prefix, params long[] dims) =>
        _g.Op("Concat", prefix + "/shape", new[] { _batch, _g.Int64s(prefix + "/dims", dims) }, OnnxGraph.Int("axis", 0));

    private string Weight(string name, string prefix)
    {
        if (!_weights.TryGetValue(name, out var tensor))
            throw new InvalidOperationException($"The model has no parameter '{name}' to export (has: {string.Join(", ", _weights.Keys.Take(8))}, ...).");
        using var cpu = tensor.detach().contiguous().cpu();
        return _g.Float(prefix + "/" + name, cpu.data<float>().ToArray(), tensor.shape);
    }

    private static long[] Range(long from, long to) => Enumerable.Range(0, (int)(to - from)).Select(i => from + i).ToArray();

    private static AttributeProto ZeroInt64() => TensorValue(new TensorProto { DataType = (int)DataType.Int64, Dims = { 1 }, Int64Data = { 0 } });

    private static AttributeProto ZeroFloat() => TensorValue(new TensorProto { DataType = (int)DataType.Float, Dims = { 1 }, FloatData = { 0f } });

    private static AttributeProto TensorValue(TensorProto t) => new() { Name = "value", Type = AttributeProto.Types.AttributeType.Tensor, T = t };
}
