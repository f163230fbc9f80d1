namespace MergeMix.ML.Data;

/// <summary>Rendering options of <see cref="SyntheticShapes.Generate"/>. The defaults give 32×32 scenes with 1–3 objects.</summary>
public sealed class SyntheticShapesOptions
{
    /// <summary>Image width in pixels (at least 12, so each of the 3×3 grid cells is at least 4 pixels wide).</summary>
    public int Width = 32;

    /// <summary>Image height in pixels (at least 12).</summary>
    public int Height = 32;

    /// <summary>Fewest objects per image (1..9).</summary>
    public int MinObjects = 1;

    /// <summary>Most objects per image (<see cref="MinObjects"/>..9).</summary>
    public int MaxObjects = 3;

    /// <summary>Smallest object size, as a fraction of the grid cell's side (the smaller of width/3 and height/3).</summary>
    public float MinObjectSize = 0.6f;

    /// <summary>Largest object size, as a fraction of the grid cell's side (at most 1, so objects stay inside their cell).</summary>
    public float MaxObjectSize = 0.95f;

    /// <summary>Largest per-channel difference between the two colours of the background texture (0..255); small values keep it low-contrast.</summary>
    public float BackgroundContrast = 30f;

    /// <summary>Largest channel value of the background's base colour (0..255); keeps backgrounds darker than the object colours.</summary>
    public float MaxBackgroundBrightness = 150f;

    /// <summary>Smallest Euclidean RGB distance between the background's base colour and the object colour (0..441).</summary>
    public float MinColourDistance = 110f;

    /// <summary>Largest per-channel random shift of the object colour around its named value (0..64), the same for all objects of an image.</summary>
    public float ColourJitter = 12f;

    /// <summary>
    /// Correlates the scene's attributes with its shape, giving a model a prior it can answer from instead of the image:
    /// each shape has a typical colour, grid cell and object count (<see cref="SyntheticShapes.Typical"/>), and each of the
    /// three takes its typical value with this probability, independently (else one of the other values, uniformly).
    /// Null (the default) = independent attributes. 0 = a counter-prior split: no attribute ever takes its shape's typical
    /// value, so answering from the correlation seen in training is always wrong. Needs <see cref="MaxObjects"/> ≤ 8
    /// (a scene of 9 objects fills every cell, the typical one included).
    /// </summary>
    public float? AttributePrior;

    internal void Validate()
    {
        if (AttributePrior is float prior && !(prior >= 0 && prior <= 1))
            throw new ArgumentOutOfRangeException(nameof(AttributePrior), $"{nameof(AttributePrior)} must be in [0, 1] or null, got {prior}.");
        if (AttributePrior is not null && MaxObjects > 8)
            throw new ArgumentOutOfRangeException(nameof(MaxObjects),
                $"{nameof(MaxObjects)} must be at most 8 with {nameof(AttributePrior)} set (9 objects always fill the typical cell), got {MaxObjects}.");
        if (Width < 12)
            throw new ArgumentOutOfRangeException(nameof(Width), $"{nameof(Width)} must be at least 12 pixels, got {Width}.");
        if (Height < 12)
            throw new ArgumentOutOfRangeException(nameof(Height), $"{nameof(Height)} must be at least 12 pixels, got {Height}.");
        if (MinObjects < 1 || MinObjects > 9)
            throw new ArgumentOutOfRangeException(nameof(MinObjects), $"{nameof(MinObjects)} must be in [1, 9], got {MinObjects}.");
        if (MaxObjects < MinObjects || MaxObjects > 9)
            throw new ArgumentOutOfRangeException(nameof(MaxObjects), $"{nameof(MaxObjects)} must be in [{nameof(MinObjects)}={MinObjects}, 9], got {MaxObjects}.");
        if (!(MinObjectSize > 0) || MinObjectSize > 1)
            throw new ArgumentOutOfRangeException(nameof(MinObjectSize), $"{nameof(MinObjectSize)} must be in (0, 1], got {MinObjectSize}.");
        if (!(MaxObjectSize >= MinObjectSize) || MaxObjectSize > 1)
            throw new ArgumentOutOfRangeException(nameof(MaxObjectSize), $"{nameof(MaxObjectSize)} must be in [{nameof(MinObjectSize)}={MinObjectSize}, 1], got {MaxObjectSize}.");
        if (!(BackgroundContrast >= 0) || BackgroundContrast > 255)
            throw new ArgumentOutOfRangeException(nameof(BackgroundContrast), $"{nameof(BackgroundContrast)} must be in [0, 255], got {BackgroundContrast}.");
        if (!(MaxBackgroundBrightness >= 0) || MaxBackgroundBrightness > 255)
            throw new ArgumentOutOfRangeException(nameof(MaxBackgroundBrightness), $"{nameof(MaxBackgroundBrightness)} must be in [0, 255], got {MaxBackgroundBrightness}.");
        if (!(MinColourDistance >= 0) || MinColourDistance > 441)
            throw new ArgumentOutOfRangeException(nameof(MinColourDistance), $"{nameof(MinColourDistance)} must be in [0, 441], got {MinColourDistance}.");
        if (!(ColourJitter >= 0) || ColourJitter > 64)
            throw new ArgumentOutOfRangeException(nameof(ColourJitter), $"{nameof(ColourJitter)} must be in [0, 64], got {ColourJitter}.");
    }
}
