using MergeMix.ML.Classification;
using MergeMix.ML.Vision;

namespace MergeMix.ML.Samples.Bench;

/// <summary>
/// The settings of a benchmark's MergeMix runs that the paper ablates: which attention ranks the patches (direction
/// and layer), λ̂ re-scaling, the base loss, and token merging in training. The defaults are the paper's method.
/// </summary>
public sealed record MergeMixVariant
{
    /// <summary>CLS query's row (default, MergeMix's code) or CLS key's column (openmixup's classification path).</summary>
    public AttentionDirection Direction { get; init; } = AttentionDirection.ClsQuery;

    /// <summary>Block whose attention ranks the patches; null is the model's default (⌊2·depth/3⌋).</summary>
    public int? AttentionLayer { get; init; }

    /// <summary>openmixup's <c>lam_scale</c> (see <see cref="VisionTransformerTrainerOptions.MergeMixLambdaScale"/>).</summary>
    public bool LambdaScale { get; init; }

    /// <summary>Base loss added to the mixed loss (paper: clean).</summary>
    public MergeMixBaseLoss BaseLoss { get; init; } = MergeMixBaseLoss.Clean;

    /// <summary>Token merging in the training passes; null is the preset's <see cref="BenchPreset.MergeMixMergeDuringTraining"/>.</summary>
    public bool? MergeDuringTraining { get; init; }

    /// <summary>The method's name in the results: <paramref name="method"/>, then ':' and what differs from the defaults.</summary>
    public string Label(string method, BenchPreset preset)
    {
        var parts = Differences(preset);
        return parts.Count == 0 ? method : $"{method}:{string.Join("+", parts)}";
    }

    /// <summary>One line for the report.</summary>
    public string Describe(BenchPreset preset) =>
        $"base loss {Name(BaseLoss)}, attention {(Direction == AttentionDirection.ClsQuery ? "CLS query row" : "CLS key column")} of block {AttentionLayer ?? preset.ModelOptions().EffectiveAttentionLayer}, "
        + $"λ̂ re-scaling {(LambdaScale ? "on" : "off")}, token merging in training {((MergeDuringTraining ?? preset.MergeMixMergeDuringTraining) ? $"on ({preset.MergeCount} tokens)" : "off")}";

    /// <summary>Throws naming the bench option when a setting does not fit the preset's model.</summary>
    public void Validate(BenchPreset preset)
    {
        ArgumentNullException.ThrowIfNull(preset);
        if (AttentionLayer is { } layer && (layer < 0 || layer >= preset.Depth))
            throw new ArgumentException($"--attention-layer must be a block index in [0, {preset.Depth - 1}] for preset {preset.Name}, got {layer}.");
    }

    /// <summary>Sets these options on a MergeMix run of <paramref name="preset"/>.</summary>
    public void Apply(VisionTransformerTrainerOptions options, BenchPreset preset)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(preset);
        options.Model.AttentionDirection = Direction;
        options.Model.AttentionLayer = AttentionLayer;
        options.MergeMixLambdaScale = LambdaScale;
        options.MergeMixBaseLoss = BaseLoss;
        options.MergeDuringTraining = MergeDuringTraining ?? preset.MergeMixMergeDuringTraining;
    }

    /// <summary>
    /// The ablation table: the default, then one change at a time: CLS key column, every other attention block,
    /// λ̂ re-scaling, base loss mixup and none, merging in training flipped.
    /// </summary>
    public static IReadOnlyList<MergeMixVariant> Ablations(BenchPreset preset)
    {
        ArgumentNullException.ThrowIfNull(preset);
        var baseline = new MergeMixVariant();
        int defaultLayer = preset.ModelOptions().EffectiveAttentionLayer;
        var list = new List<MergeMixVariant> { baseline, baseline with { Direction = AttentionDirection.ClsKey } };
        list.AddRange(Enumerable.Range(0, preset.Depth).Where(l => l != defaultLayer).Select(l => baseline with { AttentionLayer = l }));
        list.Add(baseline with { LambdaScale = true });
        list.Add(baseline with { BaseLoss = MergeMixBaseLoss.Mixup });
        list.Add(baseline with { BaseLoss = MergeMixBaseLoss.None });
        list.Add(baseline with { MergeDuringTraining = !preset.MergeMixMergeDuringTraining });
        return list;
    }

    /// <summary>Parses <c>--attention-direction</c>: cls-query or cls-key.</summary>
    public static AttentionDirection ParseDirection(string text) => text.Trim().ToLowerInvariant() switch
    {
        "cls-query" => AttentionDirection.ClsQuery,
        "cls-key" => AttentionDirection.ClsKey,
        _ => throw new ArgumentException($"--attention-direction expects cls-query (the CLS query's row, default) or cls-key (each token's attention to the CLS key, openmixup), got '{text}'."),
    };

    /// <summary>Parses <c>--base-loss</c>: clean, mixup or none.</summary>
    public static MergeMixBaseLoss ParseBaseLoss(string text) => text.Trim().ToLowerInvariant() switch
    {
        "clean" => MergeMixBaseLoss.Clean,
        "mixup" => MergeMixBaseLoss.Mixup,
        "none" => MergeMixBaseLoss.None,
        _ => throw new ArgumentException($"--base-loss expects clean (paper), mixup (reference code) or none, got '{text}'."),
    };

    /// <summary>Parses an on/off option such as <c>--merge-in-training</c>.</summary>
    public static bool ParseSwitch(string option, string text) => text.Trim().ToLowerInvariant() switch
    {
        "on" or "true" or "yes" => true,
        "off" or "false" or "no" => false,
        _ => throw new ArgumentException($"--{option} expects on or off, got '{text}'."),
    };

    private List<string> Differences(BenchPreset preset)
    {
        var parts = new List<string>();
        if (Direction == AttentionDirection.ClsKey) parts.Add("cls-key");
        if (AttentionLayer is { } layer && layer != preset.ModelOptions().EffectiveAttentionLayer) parts.Add($"layer-{layer}");
        if (LambdaScale) parts.Add("lam-scale");
        if (BaseLoss != MergeMixBaseLoss.Clean) parts.Add($"base-{Name(BaseLoss)}");
        if (MergeDuringTraining is { } merge && merge != preset.MergeMixMergeDuringTraining) parts.Add(merge ? "tome-train" : "no-tome-train");
        return parts;
    }

    private static string Name(MergeMixBaseLoss loss) => loss.ToString().ToLowerInvariant();
}
