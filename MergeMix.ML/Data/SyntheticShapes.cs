using System.Collections.ObjectModel;

namespace MergeMix.ML.Data;

/// <summary>
/// The embedded default dataset: small RGB scenes rendered in code, deterministic for a seed (no files, no download).
/// Each image has a low-contrast textured background (stripes, checker or noise in two random dark colours) and 1–3
/// anti-aliased objects of one shape and one colour, each in a distinct cell of a 3×3 grid, with random size and a small
/// random offset inside its cell. The shape is the class label.
/// </summary>
/// <remarks>
/// Every image also comes with a <see cref="SyntheticScene"/> (caption and question/answer pairs over the small fixed
/// <see cref="Vocabulary"/>) for the captioning and preference-alignment samples.
/// Image <c>i</c> depends only on the seed, <c>i</c> and its label, so a prefix of a larger set renders the same pixels
/// whenever the label order agrees.
/// </remarks>
public static class SyntheticShapes
{
    internal static readonly string[] ClassNamesArray = { "circle", "square", "triangle", "cross", "ring", "diamond" };
    internal static readonly string[] ColourNamesArray = { "red", "green", "blue", "yellow", "magenta", "cyan", "white", "orange" };
    internal static readonly string[] PositionNamesArray =
        { "top left", "top", "top right", "left", "center", "right", "bottom left", "bottom", "bottom right" };
    private static readonly string[] CountWords = { "one", "two", "three", "four", "five", "six", "seven", "eight", "nine" };

    // Saturated, bright colours so they stand out against the darker backgrounds; order matches ColourNamesArray.
    private static readonly Rgb[] ColourValues =
    {
        new(220, 40, 40), new(40, 190, 60), new(50, 90, 235), new(235, 215, 40),
        new(215, 50, 215), new(40, 210, 215), new(240, 240, 240), new(245, 135, 25),
    };

    private const int BackgroundTries = 16;

    /// <summary>The six class names, label i = ClassNames[i]: circle, square, triangle, cross, ring, diamond.</summary>
    public static IReadOnlyList<string> ClassNames { get; } = Array.AsReadOnly(ClassNamesArray);

    /// <summary>The eight object colour names: red, green, blue, yellow, magenta, cyan, white, orange.</summary>
    public static IReadOnlyList<string> ColourNames { get; } = Array.AsReadOnly(ColourNamesArray);

    /// <summary>The nine grid-cell names in reading order: "top left", "top", "top right", "left", "center", "right", "bottom left", "bottom", "bottom right".</summary>
    public static IReadOnlyList<string> PositionNames { get; } = Array.AsReadOnly(PositionNamesArray);

    /// <summary>
    /// Every token a caption, question or answer can contain: lower-case words plus "?" (which ends each question,
    /// attached to the last word). Fixed, independent of the options.
    /// </summary>
    public static IReadOnlyList<string> Vocabulary { get; } = BuildVocabulary();

    /// <summary>The number word for 1..9 ("one" … "nine").</summary>
    public static string CountWord(int count) =>
        count is >= 1 and <= 9 ? CountWords[count - 1] : throw new ArgumentOutOfRangeException(nameof(count), $"Count must be in [1, 9], got {count}.");

    /// <summary>
    /// Renders <paramref name="count"/> images, class-balanced (count/6 per shape, the remainder one each to the first
    /// shapes) in a seeded random order, as planar CHW floats 0..255 (whole numbers, like decoded 8-bit images).
    /// </summary>
    /// <param name="count">Number of images (≥ 1).</param>
    /// <param name="seed">Seed; the same seed, count and options give the same pixels and scenes.</param>
    /// <param name="options">Rendering options; null means the defaults (32×32, 1–3 objects).</param>
    public static (LabeledImageSet Images, IReadOnlyList<SyntheticScene> Scenes) Generate(int count, int seed, SyntheticShapesOptions? options = null)
    {
        if (count < 1)
            throw new ArgumentOutOfRangeException(nameof(count), $"{nameof(count)} must be at least 1, got {count}.");
        options ??= new SyntheticShapesOptions();
        options.Validate();
        int imageSize = 3 * options.Height * options.Width;
        if ((long)count * imageSize > Array.MaxLength)
            throw new ArgumentOutOfRangeException(nameof(count), $"{count} images of {imageSize} floats exceed the largest array ({Array.MaxLength}).");

        var labels = BalancedLabels(count, seed);
        var pixels = new float[count * imageSize];
        var scenes = new SyntheticScene[count];
        for (int i = 0; i < count; i++)
            scenes[i] = Render(pixels.AsSpan(i * imageSize, imageSize), labels[i], seed, i, options);
        return (new LabeledImageSet(pixels, labels, ClassNames, 3, options.Height, options.Width), scenes);
    }

    private static int[] BalancedLabels(int count, int seed)
    {
        var labels = new int[count];
        for (int k = 0; k < count; k++)
            labels[k] = k % ClassNamesArray.Length;
        var random = new SceneRandom(seed, -1);
        for (int k = count - 1; k > 0; k--)
        {
            int j = random.NextInt(k + 1);
            (labels[k], labels[j]) = (labels[j], labels[k]);
        }
        return labels;
    }

    // Typical cells of the six shapes: the top row for circle, square, triangle, the bottom row for cross, ring, diamond.
    private static readonly int[] TypicalCells = { 0, 1, 2, 6, 7, 8 };

    /// <summary>
    /// The attributes <paramref name="shape"/> takes most often when <see cref="SyntheticShapesOptions.AttributePrior"/>
    /// is set: colour i for shape i (circle red, square green, triangle blue, cross yellow, ring magenta, diamond cyan),
    /// a top-row cell for circle/square/triangle and a bottom-row cell for cross/ring/diamond (circle "top left", square
    /// "top", …, diamond "bottom right"), and count MinObjects + (shape index mod the number of allowed counts).
    /// </summary>
    /// <param name="shape">One of <see cref="ClassNames"/>.</param>
    /// <param name="options">The rendering options (for the count range); null = the defaults.</param>
    public static (string Colour, string Position, int Count) Typical(string shape, SyntheticShapesOptions? options = null)
    {
        int label = Array.IndexOf(ClassNamesArray, shape);
        if (label < 0)
            throw new ArgumentOutOfRangeException(nameof(shape), $"Unknown shape '{shape}'; expected one of {string.Join(", ", ClassNamesArray)}.");
        options ??= new SyntheticShapesOptions();
        return (ColourNamesArray[label], PositionNamesArray[TypicalCells[label]], TypicalCount(label, options));
    }

    private static int TypicalCount(int shape, SyntheticShapesOptions o) => o.MinObjects + shape % (o.MaxObjects - o.MinObjects + 1);

    // The typical value with probability `prior`, else one of the other `count − 1` values uniformly.
    private static int Correlated(int typical, int count, float prior, ref SceneRandom random)
    {
        if (count == 1) return typical;
        if (random.NextFloat() < prior) return typical;
        int other = random.NextInt(count - 1);
        return other >= typical ? other + 1 : other;
    }

    private static SyntheticScene Render(Span<float> image, int shape, int seed, int index, SyntheticShapesOptions o)
    {
        var random = new SceneRandom(seed, index);
        int width = o.Width, height = o.Height;
        // Independent attributes draw exactly as before the prior existed, so their images stay the same.
        int colour = o.AttributePrior is float colourPrior
            ? Correlated(shape, ColourValues.Length, colourPrior, ref random)
            : random.NextInt(ColourValues.Length);
        var named = ColourValues[colour];
        var objectColour = new Rgb(Jitter(named.R, ref random, o.ColourJitter), Jitter(named.G, ref random, o.ColourJitter), Jitter(named.B, ref random, o.ColourJitter));
        PaintBackground(image, width, height, objectColour, ref random, o);

        Span<int> cells = stackalloc int[9];
        int objects;
        if (o.AttributePrior is float prior)
        {
            objects = o.MinObjects + Correlated(TypicalCount(shape, o) - o.MinObjects, o.MaxObjects - o.MinObjects + 1, prior, ref random);
            int typical = TypicalCells[shape];
            int taken = random.NextFloat() < prior ? 1 : 0;
            if (taken == 1) cells[0] = typical;
            Span<int> others = stackalloc int[8];
            for (int k = 0, n = 0; k < 9; k++)
                if (k != typical) others[n++] = k;
            for (int k = 0; k < objects - taken; k++)
            {
                int j = k + random.NextInt(8 - k);
                (others[k], others[j]) = (others[j], others[k]);
                cells[taken + k] = others[k];
            }
        }
        else
        {
            objects = random.NextInt(o.MinObjects, o.MaxObjects + 1);
            for (int k = 0; k < 9; k++)
                cells[k] = k;
            for (int k = 0; k < objects; k++)
            {
                int j = k + random.NextInt(9 - k);
                (cells[k], cells[j]) = (cells[j], cells[k]);
            }
        }
        cells[..objects].Sort();

        float cellWidth = width / 3f, cellHeight = height / 3f, side = MathF.Min(cellWidth, cellHeight);
        var positions = new string[objects];
        var sizes = new float[objects];
        for (int k = 0; k < objects; k++)
        {
            int row = cells[k] / 3, column = cells[k] % 3;
            float size = side * (o.MinObjectSize + (o.MaxObjectSize - o.MinObjectSize) * random.NextFloat());
            float cx = (column + 0.5f) * cellWidth + (random.NextFloat() - 0.5f) * (cellWidth - size);
            float cy = (row + 0.5f) * cellHeight + (random.NextFloat() - 0.5f) * (cellHeight - size);
            DrawShape(image, width, height, shape, cx, cy, size, objectColour);
            positions[k] = PositionNamesArray[cells[k]];
            sizes[k] = size;
        }

        // Whole numbers, as an 8-bit image decoded by ExtractPixels would give.
        foreach (ref float v in image)
            v = MathF.Round(v);
        return new SyntheticScene(ClassNamesArray[shape], ColourNamesArray[colour], positions, sizes);
    }

    private static float Jitter(float value, ref SceneRandom random, float amount) =>
        Math.Clamp(value + (2 * random.NextFloat() - 1) * amount, 0f, 255f);

    private static void PaintBackground(Span<float> image, int width, int height, Rgb objectColour, ref SceneRandom random, SyntheticShapesOptions o)
    {
        // Rejection sampling keeps the object visible; the farthest candidate is the fallback when the options make the distance unreachable.
        Rgb a = default;
        float best = -1;
        for (int t = 0; t < BackgroundTries; t++)
        {
            var candidate = new Rgb(random.NextFloat() * o.MaxBackgroundBrightness, random.NextFloat() * o.MaxBackgroundBrightness, random.NextFloat() * o.MaxBackgroundBrightness);
            float distance = candidate.DistanceTo(objectColour);
            if (distance > best)
                (a, best) = (candidate, distance);
            if (distance >= o.MinColourDistance)
                break;
        }
        var b = new Rgb(Jitter(a.R, ref random, o.BackgroundContrast), Jitter(a.G, ref random, o.BackgroundContrast), Jitter(a.B, ref random, o.BackgroundContrast));

        int plane = width * height;
        var r = image[..plane];
        var g = image.Slice(plane, plane);
        var bl = image.Slice(2 * plane, plane);
        int kind = random.NextInt(3);
        int orientation = random.NextInt(4), period = random.NextInt(2, 7), checker = random.NextInt(2, 6);
        for (int y = 0; y < height; y++)
            for (int x = 0; x < width; x++)
            {
                float t = kind switch
                {
                    0 => StripeValue(x, y, height, orientation, period),
                    1 => ((x / checker + y / checker) & 1),
                    _ => random.NextFloat(),
                };
                int i = y * width + x;
                r[i] = a.R + t * (b.R - a.R);
                g[i] = a.G + t * (b.G - a.G);
                bl[i] = a.B + t * (b.B - a.B);
            }
    }

    private static float StripeValue(int x, int y, int height, int orientation, int period)
    {
        int s = orientation switch { 0 => y, 1 => x, 2 => x + y, _ => x - y + height };
        return s % period < period / 2 ? 0f : 1f;
    }

    private static void DrawShape(Span<float> image, int width, int height, int shape, float cx, float cy, float size, Rgb colour)
    {
        int plane = width * height;
        float radius = size / 2;
        int x0 = Math.Max(0, (int)MathF.Floor(cx - radius - 1)), x1 = Math.Min(width - 1, (int)MathF.Ceiling(cx + radius + 1));
        int y0 = Math.Max(0, (int)MathF.Floor(cy - radius - 1)), y1 = Math.Min(height - 1, (int)MathF.Ceiling(cy + radius + 1));
        for (int y = y0; y <= y1; y++)
            for (int x = x0; x <= x1; x++)
            {
                // Coverage from the signed distance at the pixel centre: a one-pixel linear ramp across the edge.
                float alpha = Math.Clamp(0.5f - SignedDistance(shape, x + 0.5f - cx, y + 0.5f - cy, radius), 0f, 1f);
                if (alpha <= 0)
                    continue;
                int i = y * width + x;
                image[i] += alpha * (colour.R - image[i]);
                image[plane + i] += alpha * (colour.G - image[plane + i]);
                image[2 * plane + i] += alpha * (colour.B - image[2 * plane + i]);
            }
    }

    /// <summary>Signed distance in pixels from (x, y) (relative to the object centre, y down) to the edge of the shape; negative inside.</summary>
    internal static float SignedDistance(int shape, float x, float y, float radius)
    {
        switch (shape)
        {
            case 0: // circle
                return MathF.Sqrt(x * x + y * y) - radius;
            case 1: // square, a little smaller than the circle so both cover a similar area
                return Box(x, y, 0.82f * radius, 0.82f * radius);
            case 2: // equilateral triangle pointing up, its bounding box centred on the object centre
            {
                float circumradius = 1.05f * radius;
                float ty = y - circumradius / 4;
                const float cos30 = 0.8660254f;
                float edge = MathF.Max(ty, MathF.Max(cos30 * x - 0.5f * ty, -cos30 * x - 0.5f * ty));
                return edge - circumradius / 2;
            }
            case 3: // cross: two bars, thick enough to stay visible at 6 px
            {
                float half = MathF.Max(0.3f * radius, 0.9f);
                return MathF.Min(Box(x, y, radius, half), Box(x, y, half, radius));
            }
            case 4: // ring: the hole stays at least ~3 px wide at the smallest sizes
            {
                float thickness = MathF.Max(0.38f * radius, 1.2f);
                return MathF.Abs(MathF.Sqrt(x * x + y * y) - (radius - thickness / 2)) - thickness / 2;
            }
            case 5: // diamond (square rotated 45°)
                return (MathF.Abs(x) + MathF.Abs(y) - 1.05f * radius) * 0.70710677f;
            default:
                throw new ArgumentOutOfRangeException(nameof(shape), $"Shape index must be in [0, {ClassNamesArray.Length}), got {shape}.");
        }
    }

    private static float Box(float x, float y, float halfWidth, float halfHeight)
    {
        float qx = MathF.Abs(x) - halfWidth, qy = MathF.Abs(y) - halfHeight;
        float outside = MathF.Sqrt(MathF.Max(qx, 0) * MathF.Max(qx, 0) + MathF.Max(qy, 0) * MathF.Max(qy, 0));
        return outside + MathF.Min(MathF.Max(qx, qy), 0);
    }

    private static ReadOnlyCollection<string> BuildVocabulary()
    {
        var words = new List<string> { "a", "an", "at", "the", "and", "what", "colour", "is", "are", "shape", "shapes", "in", "image", "where", "how", "many", "there", "?" };
        words.AddRange(CountWords);
        words.AddRange(ColourNamesArray);
        words.AddRange(ClassNamesArray);
        words.AddRange(ClassNamesArray.Select(SyntheticScene.Plural));
        words.AddRange(PositionNamesArray.SelectMany(p => p.Split(' ')));
        return words.Distinct(StringComparer.Ordinal).ToList().AsReadOnly();
    }

    private readonly record struct Rgb(float R, float G, float B)
    {
        public float DistanceTo(Rgb other) =>
            MathF.Sqrt((R - other.R) * (R - other.R) + (G - other.G) * (G - other.G) + (B - other.B) * (B - other.B));
    }

    /// <summary>SplitMix64 stream per (seed, image): cheap, allocation-free and independent of the image order.</summary>
    private struct SceneRandom
    {
        private ulong _state;

        public SceneRandom(int seed, int stream) => _state = Mix(((ulong)(uint)seed << 32) | (uint)stream);

        public ulong Next()
        {
            _state += 0x9E3779B97F4A7C15UL;
            return Mix(_state);
        }

        /// <summary>Uniform in [0, 1).</summary>
        public float NextFloat() => (Next() >> 40) * (1f / (1 << 24));

        /// <summary>Uniform in [0, maxExclusive).</summary>
        public int NextInt(int maxExclusive) => (int)(Next() % (ulong)maxExclusive);

        /// <summary>Uniform in [minInclusive, maxExclusive).</summary>
        public int NextInt(int minInclusive, int maxExclusive) => minInclusive + NextInt(maxExclusive - minInclusive);

        private static ulong Mix(ulong z)
        {
            z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
            z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
            return z ^ (z >> 31);
        }
    }
}
