using MergeMix.ML.Data;

namespace MergeMix.ML.Samples;

/// <summary>One generated answer with what it should have been.</summary>
/// <param name="Response">The generated text.</param>
/// <param name="Truncated">Generation stopped at its token budget, not at the end-of-sequence token.</param>
/// <param name="Answer">The ground-truth answer.</param>
/// <param name="Kind">Question type: one of <see cref="AlignMetrics.Kinds"/>.</param>
/// <param name="Scene">What the image shows.</param>
public sealed record ScoredAnswer(string Response, bool Truncated, string Answer, string Kind, SyntheticScene Scene);

/// <summary>Scores of a set of generated answers; rates in [0, 1], NaN for a question type with no rows.</summary>
public sealed record AnswerScores(double ExactMatch, IReadOnlyDictionary<string, double> ExactMatchByKind, double HallucinationRate,
    IReadOnlyDictionary<string, double> HallucinationByAttribute, double EmptyOrTruncatedRate, int Rows);

/// <summary>A variant's per-seed differences from the control (variant − control, seeds paired).</summary>
/// <param name="Mean">Mean difference.</param>
/// <param name="Std">Sample standard deviation of the differences (n − 1).</param>
/// <param name="HalfWidth95">Half-width of the 95 % t interval of the mean (NaN below 2 seeds).</param>
/// <param name="Positive">Seeds where the difference is &gt; 0.</param>
/// <param name="Negative">Seeds where the difference is &lt; 0.</param>
/// <param name="Count">Seeds.</param>
public sealed record PairedDifference(double Mean, double Std, double HalfWidth95, int Positive, int Negative, int Count)
{
    /// <summary>The 95 % interval excludes 0: the only differences the README reports as real.</summary>
    public bool Survives => Count >= 2 && Math.Abs(Mean) > HalfWidth95;
}

/// <summary>
/// Metrics of the alignment experiments that do not depend on the training objective: exact match per question type
/// and a hallucination rate over colour, shape, position and count in which an empty or truncated answer also fails.
/// </summary>
public static class AlignMetrics
{
    /// <summary>Question types: the caption request and the four questions.</summary>
    public static IReadOnlyList<string> Kinds { get; } = new[] { "caption", "colour", "shape", "position", "count" };

    /// <summary>Attributes an answer can get wrong.</summary>
    public static IReadOnlyList<string> Attributes { get; } = new[] { "colour", "shape", "position", "count" };

    private static readonly string[] CountWords = { "one", "two", "three", "four", "five", "six", "seven", "eight", "nine" };

    /// <summary>Trimmed, trailing "." or "?" removed, single spaces.</summary>
    public static string Normalize(string text) =>
        string.Join(' ', (text ?? "").Trim().TrimEnd('.', '?').Split(' ', StringSplitOptions.RemoveEmptyEntries));

    /// <summary>
    /// The attributes that <paramref name="response"/> states wrongly for <paramref name="scene"/>: a colour other than
    /// the scene's, a shape (singular or plural) other than its shape, a position (two-word names matched first) where
    /// there is no object, a number word other than its count, or a leading "a"/"an" (one object) when it has several.
    /// Leaving something out is not a hallucination (exact match counts that).
    /// </summary>
    public static IReadOnlySet<string> HallucinatedAttributes(string response, SyntheticScene scene)
    {
        ArgumentNullException.ThrowIfNull(scene);
        var wrong = new HashSet<string>(StringComparer.Ordinal);
        var words = Normalize(response).Split(' ', StringSplitOptions.RemoveEmptyEntries);
        for (int i = 0; i < words.Length; i++)
        {
            string word = words[i];
            if (i + 1 < words.Length && SyntheticShapes.PositionNames.Contains(word + " " + words[i + 1]))
            {
                if (!scene.Positions.Contains(word + " " + words[i + 1])) wrong.Add("position");
                i++;
                continue;
            }
            if (SyntheticShapes.PositionNames.Contains(word) && !scene.Positions.Contains(word)) wrong.Add("position");
            if (SyntheticShapes.ColourNames.Contains(word) && word != scene.Colour) wrong.Add("colour");
            string? shape = SyntheticShapes.ClassNames.FirstOrDefault(s => word == s || word == Plural(s));
            if (shape is not null && shape != scene.Shape) wrong.Add("shape");
            int number = Array.IndexOf(CountWords, word) + 1;
            if (number > 0 && number != scene.Count) wrong.Add("count");
            if (i == 0 && word is "a" or "an" && scene.Count != 1) wrong.Add("count");
        }
        return wrong;
    }

    private static string Plural(string shape) => shape.EndsWith('s') ? shape + "es" : shape + "s";

    /// <summary>True when the answer is empty, truncated or states an attribute wrongly.</summary>
    public static bool Fails(ScoredAnswer answer)
    {
        ArgumentNullException.ThrowIfNull(answer);
        return answer.Truncated || Normalize(answer.Response).Length == 0 || HallucinatedAttributes(answer.Response, answer.Scene).Count > 0;
    }

    /// <summary>Exact match (normalised response = answer) overall and per type; hallucination rate overall (<see cref="Fails"/>)
    /// and per attribute (an empty or truncated answer counts against every attribute).</summary>
    public static AnswerScores Score(IReadOnlyList<ScoredAnswer> answers)
    {
        ArgumentNullException.ThrowIfNull(answers);
        if (answers.Count == 0) throw new ArgumentException("answers is empty: nothing to score.", nameof(answers));
        var exact = answers.Select(a => !a.Truncated && Normalize(a.Response) == Normalize(a.Answer)).ToArray();
        var byKind = Kinds.ToDictionary(k => k, k =>
        {
            var rows = Enumerable.Range(0, answers.Count).Where(i => answers[i].Kind == k).ToArray();
            return rows.Length == 0 ? double.NaN : (double)rows.Count(i => exact[i]) / rows.Length;
        });
        var emptyOrTruncated = answers.Select(a => a.Truncated || Normalize(a.Response).Length == 0).ToArray();
        var attributes = answers.Select(a => HallucinatedAttributes(a.Response, a.Scene)).ToArray();
        var byAttribute = Attributes.ToDictionary(k => k, k =>
            (double)Enumerable.Range(0, answers.Count).Count(i => emptyOrTruncated[i] || attributes[i].Contains(k)) / answers.Count);
        return new AnswerScores((double)exact.Count(e => e) / answers.Count, byKind, (double)answers.Count(Fails) / answers.Count,
            byAttribute, (double)emptyOrTruncated.Count(e => e) / answers.Count, answers.Count);
    }

    /// <summary>Mean and sample standard deviation (n − 1; NaN for one value).</summary>
    public static (double Mean, double Std) MeanStd(IReadOnlyList<double> values)
    {
        ArgumentNullException.ThrowIfNull(values);
        if (values.Count == 0) throw new ArgumentException("values is empty.", nameof(values));
        double mean = values.Average();
        double std = values.Count < 2 ? double.NaN : Math.Sqrt(values.Sum(v => (v - mean) * (v - mean)) / (values.Count - 1));
        return (mean, std);
    }

    // Two-sided 95 % quantiles of Student's t for 1..10 degrees of freedom.
    private static readonly double[] T95 = { 12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228 };

    /// <summary>Differences variant − control per seed (the lists are paired by position).</summary>
    public static PairedDifference Paired(IReadOnlyList<double> variant, IReadOnlyList<double> control)
    {
        ArgumentNullException.ThrowIfNull(variant);
        ArgumentNullException.ThrowIfNull(control);
        if (variant.Count != control.Count)
            throw new ArgumentException($"variant has {variant.Count} seeds and control {control.Count}; they must be paired.", nameof(variant));
        var differences = variant.Select((v, i) => v - control[i]).ToArray();
        var (mean, std) = MeanStd(differences);
        int n = differences.Length;
        double t = n < 2 ? double.NaN : n - 1 <= T95.Length ? T95[n - 2] : 1.96;
        return new PairedDifference(mean, std, t * std / Math.Sqrt(n), differences.Count(d => d > 0), differences.Count(d => d < 0), n);
    }

    /// <summary>True when none of the last <paramref name="patience"/> epochs improved the best earlier validation CE by
    /// more than <paramref name="minDelta"/>.</summary>
    public static bool Plateaued(IReadOnlyDictionary<int, double> validation, int epoch, int patience, double minDelta)
    {
        if (epoch <= patience) return false;
        // An epoch missing from the record (a run killed between its checkpoint and its line) counts as no gain.
        var earlier = validation.Where(p => p.Key <= epoch - patience).Select(p => p.Value).ToArray();
        if (earlier.Length == 0) return false;
        double best = earlier.Min();
        return validation.Where(p => p.Key > epoch - patience && p.Key <= epoch).All(p => p.Value > best - minDelta);
    }
}
