using MergeMix.ML.Runtime;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace MergeMix.ML.Vision;

/// <summary>
/// Multi-head self-attention that also returns ToMe's similarity metric (the keys averaged over heads) and,
/// on request, the CLS attention scores of every token (<see cref="AttentionScores.FromAttention"/>).
/// </summary>
internal sealed class ToMeAttention : nn.Module
{
    private readonly Linear qkv;
    private readonly Linear proj;
    private readonly Dropout projDrop;
    private readonly int heads;
    private readonly double scale;
    private readonly double dropoutRate;

    public ToMeAttention(int width, int heads, double dropoutRate) : base("attn")
    {
        this.heads = heads;
        this.dropoutRate = dropoutRate;
        scale = 1.0 / Math.Sqrt(width / heads);
        qkv = nn.Linear(width, 3 * width);
        proj = nn.Linear(width, width);
        projDrop = nn.Dropout(dropoutRate);
        RegisterComponents();
    }

    /// <summary>Whether the qkv and output projections multiply in bf16 (<see cref="VisionTransformer.BFloat16Linear"/>).</summary>
    public bool BFloat16Linear { get; set; }

    /// <summary>
    /// x: [B, N, W]; keyBias: null or [B, 1, 1, N] additive logit bias (log sizes). Returns the attention output
    /// [B, N, W], the metric [B, N, W/heads] and, when <paramref name="capture"/> is given, every token's CLS
    /// attention score in that direction [B, N] (softmax attention before attention dropout, averaged over heads).
    /// </summary>
    public (Tensor Output, Tensor Metric, Tensor? ClsScores) Run(Tensor x, Tensor? keyBias, AttentionDirection? capture)
    {
        long b = x.shape[0], n = x.shape[1], w = x.shape[2];
        var parts = LinearPrecision.Apply(qkv, x, BFloat16Linear).reshape(b, n, 3, heads, w / heads).permute(2, 0, 3, 1, 4);
        Tensor q = parts[0], k = parts[1], v = parts[2];
        var metric = k.mean(new long[] { 1 });

        var output = nn.functional.scaled_dot_product_attention(q, k, v, keyBias, training ? dropoutRate : 0.0);
        Tensor? clsScores = null;
        if (capture is AttentionDirection direction)
        {
            // The fused kernel does not expose the weights, so they are recomputed for the scores only (no gradient:
            // masks are built from detached attention). The block's output stays the fused kernel's, so capturing
            // never changes what the model computes, and a training pass that captures costs one QKᵀ more, not an
            // unfused attention with its backward.
            using var noGrad = no_grad();
            using var scaleScalar = scale.ToScalar();
            var logits = q.matmul(k.transpose(-2, -1)).mul(scaleScalar);
            if (keyBias is not null) logits = logits.add(keyBias, Scalars.One);
            clsScores = AttentionScores.FromAttention(logits.softmax(-1), direction);
        }
        output = projDrop.call(LinearPrecision.Apply(proj, output.transpose(1, 2).reshape(b, n, w), BFloat16Linear));
        return (output, metric, clsScores);
    }
}

/// <summary>
/// Pre-norm transformer block split around the ToMe merge: <see cref="AttentionResidual"/>
/// (x + DropPath(Attn(LN x))), then the caller merges tokens, then <see cref="MlpResidual"/>
/// (x + DropPath(MLP(LN x))).
/// </summary>
internal sealed class ToMeBlock : nn.Module
{
    private readonly LayerNorm norm1;
    private readonly ToMeAttention attn;
    private readonly DropPath dropPath1;
    private readonly LayerNorm norm2;
    private readonly Linear fc1;
    private readonly GELU act;
    private readonly Linear fc2;
    private readonly Dropout mlpDrop;
    private readonly DropPath dropPath2;

    public ToMeBlock(int width, int heads, int mlpHidden, double dropoutRate, double dropPathRate, double layerNormEpsilon, string name) : base(name)
    {
        norm1 = nn.LayerNorm(width, eps: layerNormEpsilon);
        attn = new ToMeAttention(width, heads, dropoutRate);
        dropPath1 = new DropPath(dropPathRate);
        norm2 = nn.LayerNorm(width, eps: layerNormEpsilon);
        fc1 = nn.Linear(width, mlpHidden);
        act = nn.GELU();
        fc2 = nn.Linear(mlpHidden, width);
        mlpDrop = nn.Dropout(dropoutRate);
        dropPath2 = new DropPath(dropPathRate);
        RegisterComponents();
    }

    /// <summary>Whether the block's four Linear layers multiply in bf16 (<see cref="VisionTransformer.BFloat16Linear"/>).</summary>
    public bool BFloat16Linear
    {
        get => bf16;
        set { bf16 = value; attn.BFloat16Linear = value; }
    }

    private bool bf16;

    public (Tensor X, Tensor Metric, Tensor? ClsScores) AttentionResidual(Tensor x, Tensor? keyBias, AttentionDirection? capture)
    {
        var (y, metric, clsScores) = attn.Run(norm1.call(x), keyBias, capture);
        return (x.add(dropPath1.call(y), Scalars.One), metric, clsScores);
    }

    public Tensor MlpResidual(Tensor x)
    {
        var h = mlpDrop.call(LinearPrecision.Apply(fc2, mlpDrop.call(act.call(LinearPrecision.Apply(fc1, norm2.call(x), bf16))), bf16));
        return x.add(dropPath2.call(h), Scalars.One);
    }
}

/// <summary>
/// A Linear layer multiplied in bf16 inside an fp32 model, autocast-style: input, weight and bias are cast to bf16 for
/// the product and the output back to the input's type, so the parameters, their gradients and AdamW stay fp32 and
/// LayerNorm, softmax, GELU and the residual adds stay in fp32 too. Only the products pay in bf16 on the CPU
/// (AVX512-BF16: 2.2–5.7× the fp32 GFLOP/s for this model's Linear shapes, casts included); a whole-model bf16 step
/// is slower (README, "Step cost"). The casts are differentiable, so the backward products run in bf16 as well.
/// </summary>
internal static class LinearPrecision
{
    public static Tensor Apply(Linear layer, Tensor x, bool bf16)
    {
        if (!bf16) return layer.call(x);
        using var weight = layer.weight!.to(ScalarType.BFloat16);
        using var bias = layer.bias?.to(ScalarType.BFloat16);
        using var input = x.to(ScalarType.BFloat16);
        using var product = nn.functional.linear(input, weight, bias);
        return product.to(x.dtype);
    }
}
