using MergeMix.ML.Runtime;
using MergeMix.ML.TokenMerging;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace MergeMix.ML.Vision;

/// <summary>
/// DeiT-style Vision Transformer with Token Merging (ToMe): Conv2d patch embedding, CLS token, learned position
/// embedding, pre-norm blocks that merge tokens by bipartite soft matching between attention and MLP, final
/// LayerNorm and a linear head on the CLS token. It can also return the recovered CLS attention of one block (the
/// MergeMix mask source) and the tokens of any block (as an image encoder).
/// </summary>
public sealed class VisionTransformer : nn.Module<Tensor, Tensor>
{
    private readonly Conv2d patchEmbed;
    private readonly Parameter clsToken;
    private readonly Parameter posEmbed;
    private readonly Dropout posDrop;
    private readonly ModuleList<ToMeBlock> blocks;
    private readonly LayerNorm norm;
    private readonly Linear head;
    private readonly VisionTransformerOptions options;

    /// <summary>
    /// Builds the model and initialises it like DeiT: position embedding, CLS token and Linear weights
    /// trunc-normal(std 0.02), Linear biases 0, LayerNorm 1/0, patch embedding uniform(±1/√fan_in) (PyTorch's
    /// default). Create it outside any dispose scope.
    /// </summary>
    /// <param name="options">Architecture; validated and copied.</param>
    /// <param name="generator">Seeded generator for the initial weights; null uses torch's global generator.</param>
    /// <param name="device">Device for the parameters; null keeps them on the CPU.</param>
    public VisionTransformer(VisionTransformerOptions options, Generator? generator = null, Device? device = null) : base("vit")
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        this.options = options.Clone();

        int width = options.Width;
        patchEmbed = nn.Conv2d(options.Channels, width, options.PatchSize, stride: options.PatchSize);
        clsToken = nn.Parameter(zeros(1, 1, width));
        posEmbed = nn.Parameter(zeros(1, options.PatchCount + 1, width));
        posDrop = nn.Dropout(options.DropoutRate);
        var list = new ToMeBlock[options.Depth];
        for (int i = 0; i < list.Length; i++)
        {
            double dropPath = options.Depth == 1 ? options.DropPathRate : options.DropPathRate * i / (options.Depth - 1);
            list[i] = new ToMeBlock(width, options.Heads, options.MlpHidden, options.DropoutRate, dropPath, options.LayerNormEpsilon, $"block{i}");
        }
        blocks = nn.ModuleList(list);
        norm = nn.LayerNorm(width, eps: options.LayerNormEpsilon);
        head = nn.Linear(width, options.ClassCount);
        RegisterComponents();

        Initialize(generator);
        MergeEnabled = options.EffectiveMergeCount > 0;
        if (device is not null) this.to(device);
    }

    /// <summary>A copy of the architecture options.</summary>
    public VisionTransformerOptions Options => options.Clone();

    /// <summary>Whether <see cref="forward"/> merges tokens. Defaults to true when the merge count is above 0.</summary>
    public bool MergeEnabled { get; set; }

    /// <summary>
    /// Whether the blocks' Linear layers (qkv, attention projection, MLP) multiply in bf16 with fp32 parameters and
    /// fp32 everywhere else, autocast-style. A compute setting, not part of the architecture: off by default, not
    /// saved with the model, and the trainer turns it on only inside its training steps
    /// (<see cref="Classification.VisionTransformerTrainerOptions.BFloat16Linear"/>), so evaluation, prediction and the
    /// ONNX export stay fp32.
    /// </summary>
    public bool BFloat16Linear
    {
        get => bf16Linear;
        set
        {
            bf16Linear = value;
            foreach (var block in blocks) block.BFloat16Linear = value;
        }
    }

    private bool bf16Linear;

    /// <summary>Side of a square patch, in pixels.</summary>
    public int PatchSize => options.PatchSize;

    /// <summary>Number of patch tokens.</summary>
    public int PatchCount => options.PatchCount;

    /// <summary>Block whose CLS attention <see cref="Forward"/> captures.</summary>
    public int AttentionLayer => options.EffectiveAttentionLayer;

    /// <summary>Tokens merged by each block when merging is on (<see cref="MergeSchedule.ForModel"/>).</summary>
    public int[] Schedule => MergeSchedule.ForModel(options.Depth, options.EffectiveMergeCount, options.PatchCount, options.MergeInflection);

    /// <summary>Logits float [B, ClassCount] for images float [B, Channels, ImageSize, ImageSize]; merges iff <see cref="MergeEnabled"/>.</summary>
    public override Tensor forward(Tensor images) => Run(images, MergeEnabled, false, null, true).Logits!;

    /// <summary>
    /// Full forward pass with optional extras.
    /// </summary>
    /// <param name="images">float [B, Channels, ImageSize, ImageSize].</param>
    /// <param name="merge">Whether blocks merge tokens.</param>
    /// <param name="captureAttention">Also return the recovered CLS attention of <see cref="AttentionLayer"/>.</param>
    /// <param name="featureLayer">Block (0-based) whose output tokens to return as <see cref="VisionForward.Features"/>.</param>
    public VisionForward Forward(Tensor images, bool merge, bool captureAttention = false, int? featureLayer = null)
    {
        CheckFeatureLayer(featureLayer);
        var r = Run(images, merge, captureAttention, featureLayer, true);
        return new VisionForward(r.Logits!, r.PatchAttention, r.Features, r.TokenCounts, r.TokenAttention, r.SourceMap);
    }

    /// <summary>
    /// The recovered CLS attention of <see cref="AttentionLayer"/>, float [B, PatchCount]. Stops after that block,
    /// so it is cheaper than <see cref="Forward"/>. Runs in the current mode and grad state.
    /// </summary>
    public Tensor PatchAttention(Tensor images, bool merge)
    {
        var r = Run(images, merge, true, null, false);
        r.TokenAttention!.Dispose();
        r.SourceMap!.Dispose();
        return r.PatchAttention!;
    }

    /// <summary>
    /// The tokens output by block <paramref name="featureLayer"/> with CLS dropped, float [B, T, Width], stopping
    /// after that block (for use as an image encoder).
    /// </summary>
    public Tensor Encode(Tensor images, int featureLayer, bool merge)
    {
        CheckFeatureLayer(featureLayer);
        return Run(images, merge, false, featureLayer, false).Features!;
    }

    private readonly record struct Pass(Tensor? Logits, Tensor? PatchAttention, Tensor? Features, int[] TokenCounts, Tensor? TokenAttention, Tensor? SourceMap);

    private Pass Run(Tensor images, bool merge, bool captureAttention, int? featureLayer, bool computeLogits)
    {
        CheckImages(images);
        int depth = options.Depth, attentionLayer = options.EffectiveAttentionLayer;
        int last = computeLogits ? depth - 1 : Math.Max(captureAttention ? attentionLayer : -1, featureLayer ?? -1);

        using var scope = NewDisposeScope();
        long batch = images.shape[0];
        var x = patchEmbed.call(images).flatten(2).transpose(1, 2);
        long patches = x.shape[1];
        x = posDrop.call(cat(new[] { clsToken.expand(batch, -1, -1), x }, 1).add(posEmbed, Scalars.One));

        int[] schedule = merge
            ? MergeSchedule.ForModel(depth, options.EffectiveMergeCount, (int)patches, options.MergeInflection)
            : new int[depth];
        Tensor? size = null; // all ones until the first merge
        Tensor? sourceMap = captureAttention ? BipartiteSoftMatching.InitialSourceMap(batch, patches, x.device) : null;
        Tensor? tokenAttention = null, patchAttention = null, features = null;
        var counts = new int[last + 1];

        for (int i = 0; i <= last; i++)
        {
            var block = blocks[i];
            counts[i] = (int)x.shape[1];
            bool capture = captureAttention && i == attentionLayer;
            Tensor? keyBias = options.ProportionalAttention && size is not null ? size.log().transpose(1, 2).unsqueeze(1) : null;
            (x, var metric, var clsScores) = block.AttentionResidual(x, keyBias, capture ? options.AttentionDirection : null);
            if (capture)
            {
                // The attention was computed over this block's input tokens, so it is recovered with the source map
                // as it stands before this block's merge. openmixup gathers with the map after the last block
                // (mergemix-method.md §7.3), whose indices name different tokens, so its scores land on the wrong
                // patches; here every patch gets the score of the token that actually holds it.
                tokenAttention = clsScores!;
                patchAttention = BipartiteSoftMatching.Unmerge(clsScores!, sourceMap!);
                // An attention-only pass needs nothing after the scores: neither this block's merge nor its MLP.
                if (i == last && !computeLogits && featureLayer != i) break;
            }
            if (schedule[i] > 0)
            {
                using var plan = BipartiteSoftMatching.Match(metric, schedule[i]);
                size ??= ones(batch, x.shape[1], 1, dtype: x.dtype, device: x.device);
                (x, size) = BipartiteSoftMatching.MergeWeighted(plan, x, size);
                if (sourceMap is not null && i < attentionLayer) sourceMap = BipartiteSoftMatching.MergeSourceMap(plan, sourceMap);
            }
            x = block.MlpResidual(x);
            if (featureLayer == i) features = x.slice(1, 1, x.shape[1], 1);
        }

        var logits = computeLogits ? head.call(norm.call(x.select(1, 0))) : null;
        return new Pass(logits?.MoveToOuterDisposeScope(), patchAttention?.MoveToOuterDisposeScope(), features?.MoveToOuterDisposeScope(),
            counts, tokenAttention?.MoveToOuterDisposeScope(), captureAttention ? sourceMap!.MoveToOuterDisposeScope() : null);
    }

    private void Initialize(Generator? generator)
    {
        using var noGrad = no_grad();
        foreach (var (_, module) in named_modules())
        {
            switch (module)
            {
                case Linear linear:
                    TruncatedNormal(linear.weight, generator);
                    if (linear.bias is not null) nn.init.zeros_(linear.bias);
                    break;
                case LayerNorm layerNorm:
                    if (layerNorm.weight is not null) nn.init.ones_(layerNorm.weight);
                    if (layerNorm.bias is not null) nn.init.zeros_(layerNorm.bias);
                    break;
                case Conv2d conv:
                    double bound = 1.0 / Math.Sqrt(options.Channels * options.PatchSize * options.PatchSize);
                    conv.weight.uniform_(-bound, bound, generator);
                    conv.bias?.uniform_(-bound, bound, generator);
                    break;
            }
        }
        TruncatedNormal(posEmbed, generator);
        TruncatedNormal(clsToken, generator);
    }

    // timm's trunc_normal_(std=0.02) with absolute bounds ±2 (100 std, so the clamp practically never acts).
    // TorchSharp 0.107's nn.init.trunc_normal_ and nn.init.uniform_ ignore their generator (and trunc_normal_ filled
    // the tensor with a constant here), so initialisation uses the Tensor methods, which honour it.
    private static void TruncatedNormal(Tensor t, Generator? generator) => t.normal_(0.0, 0.02, generator).clamp_(LowerInitBound, UpperInitBound);

    private static readonly Scalar LowerInitBound = -2.0;
    private static readonly Scalar UpperInitBound = 2.0;

    private void CheckImages(Tensor images)
    {
        ArgumentNullException.ThrowIfNull(images);
        if (images.dim() != 4 || images.shape[1] != options.Channels || images.shape[2] != options.ImageSize || images.shape[3] != options.ImageSize)
            throw new ArgumentException(
                $"images must be [B, {options.Channels}, {options.ImageSize}, {options.ImageSize}]; got [{string.Join(", ", images.shape)}].", nameof(images));
        if (images.shape[0] < 1) throw new ArgumentException("images must hold at least one image.", nameof(images));
    }

    private void CheckFeatureLayer(int? featureLayer)
    {
        if (featureLayer is int f && (f < 0 || f >= options.Depth))
            throw new ArgumentOutOfRangeException(nameof(featureLayer), f, $"featureLayer must be a block index in [0, {options.Depth - 1}].");
    }
}
