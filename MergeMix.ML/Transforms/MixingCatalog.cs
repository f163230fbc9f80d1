using MergeMix.ML.Mixing;
using Microsoft.ML;
using Microsoft.ML.Runtime;

namespace MergeMix.ML;

/// <summary>
/// Catalog methods for the mixing transforms: <c>mlContext.Transforms.MergeMix(...)</c>, <c>.Mixup(...)</c>, ...
/// Append the result with <c>TransformerScope.Training</c>.
/// </summary>
public static class MixingCatalog
{
    /// <summary>Any mixer, fully configured by <paramref name="options"/>.</summary>
    public static Transforms.MixingEstimator Mix(this TransformsCatalog catalog, Transforms.MixingEstimator.Options options) =>
        new(options, EnvironmentOf(catalog));

    /// <summary>
    /// MergeMix: keeps the ⌊λ·L⌋ patches a ToMe ViT attends to most and fills the rest from a partner image
    /// (λ ~ Beta(α, α)). Without <paramref name="attentionSource"/>, <c>Fit</c> trains a small ToMe ViT for attention.
    /// </summary>
    /// <param name="catalog">The transforms catalog.</param>
    /// <param name="outputColumnName">Mixed image column (the input column is replaced when equal).</param>
    /// <param name="inputColumnName">Image column (planar CHW floats); defaults to <paramref name="outputColumnName"/>.</param>
    /// <param name="labelColumnName">Key-typed label column.</param>
    /// <param name="alpha">Beta(α, α) parameter.</param>
    /// <param name="attentionSource">Attention of a trained ViT, or null to train one in <c>Fit</c>.</param>
    /// <param name="seed">Seed of every random draw.</param>
    public static Transforms.MixingEstimator MergeMix(this TransformsCatalog catalog, string outputColumnName = "Features", string? inputColumnName = null,
        string labelColumnName = "Label", double alpha = 1.0, IAttentionSource? attentionSource = null, int seed = 0) =>
        catalog.Mix(Options(Transforms.MixingPolicy.MergeMix, outputColumnName, inputColumnName, labelColumnName, alpha, seed, attentionSource));

    /// <summary>Mixup: x̂ = λ·x_i + (1−λ)·x_j, λ ~ Beta(α, α) (α = 0.8 as in DeiT).</summary>
    public static Transforms.MixingEstimator Mixup(this TransformsCatalog catalog, string outputColumnName = "Features", string? inputColumnName = null,
        string labelColumnName = "Label", double alpha = 0.8, int seed = 0) =>
        catalog.Mix(Options(Transforms.MixingPolicy.Mixup, outputColumnName, inputColumnName, labelColumnName, alpha, seed));

    /// <summary>CutMix: pastes a box of the partner; λ is corrected for the box clipped at the border.</summary>
    public static Transforms.MixingEstimator CutMix(this TransformsCatalog catalog, string outputColumnName = "Features", string? inputColumnName = null,
        string labelColumnName = "Label", double? alpha = null, int seed = 0) =>
        catalog.Mix(Options(Transforms.MixingPolicy.CutMix, outputColumnName, inputColumnName, labelColumnName, alpha, seed));

    /// <summary>ResizeMix: pastes the whole partner, shrunk to 10–80 % of the side, at a random place.</summary>
    public static Transforms.MixingEstimator ResizeMix(this TransformsCatalog catalog, string outputColumnName = "Features", string? inputColumnName = null,
        string labelColumnName = "Label", int seed = 0) =>
        catalog.Mix(Options(Transforms.MixingPolicy.ResizeMix, outputColumnName, inputColumnName, labelColumnName, null, seed));

    /// <summary>FMix: a binary mask from thresholded low-frequency Fourier noise.</summary>
    public static Transforms.MixingEstimator FMix(this TransformsCatalog catalog, string outputColumnName = "Features", string? inputColumnName = null,
        string labelColumnName = "Label", double? alpha = null, int seed = 0) =>
        catalog.Mix(Options(Transforms.MixingPolicy.FMix, outputColumnName, inputColumnName, labelColumnName, alpha, seed));

    /// <summary>SaliencyMix: a CutMix box centred on the partner's most salient point (spectral residual).</summary>
    public static Transforms.MixingEstimator SaliencyMix(this TransformsCatalog catalog, string outputColumnName = "Features", string? inputColumnName = null,
        string labelColumnName = "Label", double? alpha = null, int seed = 0) =>
        catalog.Mix(Options(Transforms.MixingPolicy.SaliencyMix, outputColumnName, inputColumnName, labelColumnName, alpha, seed));

    /// <summary>TransMix: CutMix whose label weights come from ViT attention over the pasted area.</summary>
    public static Transforms.MixingEstimator TransMix(this TransformsCatalog catalog, string outputColumnName = "Features", string? inputColumnName = null,
        string labelColumnName = "Label", IAttentionSource? attentionSource = null, int seed = 0) =>
        catalog.Mix(Options(Transforms.MixingPolicy.TransMix, outputColumnName, inputColumnName, labelColumnName, null, seed, attentionSource));

    private static Transforms.MixingEstimator.Options Options(Transforms.MixingPolicy policy, string output, string? input, string label, double? alpha, int seed,
        IAttentionSource? attention = null) => new()
    {
        Policy = policy,
        OutputColumnName = output,
        InputColumnName = input ?? output,
        LabelColumnName = label,
        Alpha = alpha,
        Seed = seed,
        AttentionSource = attention,
    };

    /// <summary>
    /// The catalog's host environment, for logging to <c>mlContext.Log</c>. ML.NET exposes it only through an internal
    /// interface, so it is read by reflection; when that fails the components simply do not log.
    /// </summary>
    internal static IHostEnvironment? EnvironmentOf(object catalog)
    {
        var internalCatalog = catalog.GetType().GetInterfaces().FirstOrDefault(i => i.FullName == "Microsoft.ML.Data.IInternalCatalog");
        return internalCatalog?.GetProperty("Environment")?.GetValue(catalog) as IHostEnvironment;
    }
}
