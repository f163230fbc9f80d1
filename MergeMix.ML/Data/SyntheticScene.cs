namespace MergeMix.ML.Data;

/// <summary>
/// What one <see cref="SyntheticShapes"/> image shows: 1–9 objects that share one shape and one colour, each in a
/// different cell of a 3×3 grid. It yields the image's caption and question/answer pairs, all lower-case words from
/// <see cref="SyntheticShapes.Vocabulary"/> separated by single spaces (questions end with "?" attached to the last word).
/// </summary>
/// <remarks>Equality compares the shape, the colour and the items of <see cref="Positions"/> and <see cref="Sizes"/>.</remarks>
public sealed record SyntheticScene
{
    /// <summary>Creates a scene description, checking every name against the fixed vocabulary.</summary>
    /// <param name="shape">One of <see cref="SyntheticShapes.ClassNames"/>.</param>
    /// <param name="colour">One of <see cref="SyntheticShapes.ColourNames"/>.</param>
    /// <param name="positions">Distinct names from <see cref="SyntheticShapes.PositionNames"/>, one per object, in caption order.</param>
    /// <param name="sizes">Bounding size of each object in pixels, parallel to <paramref name="positions"/>.</param>
    public SyntheticScene(string shape, string colour, IReadOnlyList<string> positions, IReadOnlyList<float> sizes)
    {
        ArgumentNullException.ThrowIfNull(positions);
        ArgumentNullException.ThrowIfNull(sizes);
        if (Array.IndexOf(SyntheticShapes.ClassNamesArray, shape) < 0)
            throw new ArgumentOutOfRangeException(nameof(shape), $"Unknown shape '{shape}'; expected one of {string.Join(", ", SyntheticShapes.ClassNamesArray)}.");
        if (Array.IndexOf(SyntheticShapes.ColourNamesArray, colour) < 0)
            throw new ArgumentOutOfRangeException(nameof(colour), $"Unknown colour '{colour}'; expected one of {string.Join(", ", SyntheticShapes.ColourNamesArray)}.");
        if (positions.Count < 1 || positions.Count > SyntheticShapes.PositionNamesArray.Length)
            throw new ArgumentOutOfRangeException(nameof(positions), $"Need 1 to {SyntheticShapes.PositionNamesArray.Length} positions, got {positions.Count}.");
        foreach (var position in positions)
            if (Array.IndexOf(SyntheticShapes.PositionNamesArray, position) < 0)
                throw new ArgumentOutOfRangeException(nameof(positions), $"Unknown position '{position}'; expected one of {string.Join(", ", SyntheticShapes.PositionNamesArray)}.");
        if (positions.Distinct(StringComparer.Ordinal).Count() != positions.Count)
            throw new ArgumentException($"Positions must be distinct, got {string.Join(", ", positions)}.", nameof(positions));
        if (sizes.Count != positions.Count)
            throw new ArgumentException($"Need one size per position ({positions.Count}), got {sizes.Count}.", nameof(sizes));
        Shape = shape;
        Colour = colour;
        Positions = Array.AsReadOnly(positions.ToArray());
        Sizes = Array.AsReadOnly(sizes.ToArray());
    }

    /// <summary>The shape shared by all objects; also the class label (see <see cref="Label"/>).</summary>
    public string Shape { get; }

    /// <summary>The colour name shared by all objects.</summary>
    public string Colour { get; }

    /// <summary>Number of objects.</summary>
    public int Count => Positions.Count;

    /// <summary>Grid cell of each object ("top left" … "bottom right"), in reading order when generated.</summary>
    public IReadOnlyList<string> Positions { get; }

    /// <summary>Bounding size of each object in pixels, parallel to <see cref="Positions"/>.</summary>
    public IReadOnlyList<float> Sizes { get; }

    /// <summary>Index of <see cref="Shape"/> in <see cref="SyntheticShapes.ClassNames"/>.</summary>
    public int Label => Array.IndexOf(SyntheticShapes.ClassNamesArray, Shape);

    /// <summary>
    /// One-sentence description, e.g. "a red circle at the top left", "two blue squares at the left and the bottom right",
    /// "three green rings at the top and the center and the bottom" (lists are joined with "and" to keep the text free of commas).
    /// </summary>
    public string Caption
    {
        get
        {
            string subject = Count == 1
                ? $"{Article(Colour)} {Colour} {Shape}"
                : $"{SyntheticShapes.CountWord(Count)} {Colour} {Plural(Shape)}";
            return $"{subject} at {string.Join(" and ", Positions.Select(p => "the " + p))}";
        }
    }

    /// <summary>
    /// Question/answer pairs about the scene: colour, shape, position (only when there is one object) and count.
    /// </summary>
    public IReadOnlyList<(string Question, string Answer)> Questions()
    {
        var pairs = new List<(string, string)>(4)
        {
            (Count == 1 ? "what colour is the shape?" : "what colour are the shapes?", Colour),
            ("what shape is in the image?", Shape),
        };
        if (Count == 1)
            pairs.Add(($"where is the {Shape}?", Positions[0]));
        pairs.Add(("how many shapes are there?", SyntheticShapes.CountWord(Count)));
        return pairs;
    }

    /// <summary>True when <paramref name="other"/> has the same shape, colour, positions and sizes (item by item).</summary>
    public bool Equals(SyntheticScene? other) =>
        other is not null && Shape == other.Shape && Colour == other.Colour &&
        Positions.SequenceEqual(other.Positions) && Sizes.SequenceEqual(other.Sizes);

    /// <inheritdoc/>
    public override int GetHashCode()
    {
        var hash = new HashCode();
        hash.Add(Shape);
        hash.Add(Colour);
        foreach (var p in Positions)
            hash.Add(p);
        foreach (var size in Sizes)
            hash.Add(size);
        return hash.ToHashCode();
    }

    private static string Article(string word) => "aeiou".Contains(word[0]) ? "an" : "a";

    internal static string Plural(string shape) => shape.EndsWith('s') ? shape + "es" : shape + "s";
}
