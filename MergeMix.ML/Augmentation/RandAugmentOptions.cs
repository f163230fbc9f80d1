namespace MergeMix.ML.Augmentation;

/// <summary>
/// RandAugment (Cubuk et al., 2020): each training image gets <see cref="Operations"/> operations drawn uniformly from
/// TorchVision's list (identity, shear x/y, translate x/y, rotate, brightness, colour, contrast, sharpness, posterize,
/// solarize, auto-contrast, equalize), all at strength <see cref="Magnitude"/> / (<see cref="MagnitudeBins"/> − 1) of
/// their range. The defaults are the MergeMix paper's recipe, "RandAugment 2 ops, magnitude 7" on timm's 0–10 scale
/// (timm's <c>rand-m7-n2</c>: same maximum strengths; timm's list has invert and solarize-add instead of identity).
/// </summary>
/// <example>
/// <code>
/// var options = new VisionTransformerTrainerOptions { RandAugment = new RandAugmentOptions() };             // paper: 2 ops, m7/10
/// var strong = new VisionTransformerTrainerOptions { RandAugment = new RandAugmentOptions { Magnitude = 9 } };
/// </code>
/// </example>
public sealed class RandAugmentOptions
{
    /// <summary>Operations applied one after another to each image (N ≥ 1).</summary>
    public int Operations = 2;

    /// <summary>Strength level (M), in [0, <see cref="MagnitudeBins"/> − 1].</summary>
    public int Magnitude = 7;

    /// <summary>Number of strength levels; 11 gives timm's 0–10 scale, 31 TorchVision's default.</summary>
    public int MagnitudeBins = 11;

    internal void Validate(string optionName)
    {
        if (Operations < 1)
            throw new ArgumentOutOfRangeException(optionName, $"{optionName}.Operations must be at least 1, got {Operations}.");
        if (MagnitudeBins < 2)
            throw new ArgumentOutOfRangeException(optionName, $"{optionName}.MagnitudeBins must be at least 2, got {MagnitudeBins}.");
        if (Magnitude < 0 || Magnitude >= MagnitudeBins)
            throw new ArgumentOutOfRangeException(optionName, $"{optionName}.Magnitude must be in [0, MagnitudeBins − 1] = [0, {MagnitudeBins - 1}], got {Magnitude}.");
    }
}
