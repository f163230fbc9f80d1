namespace MergeMix.ML.Mixing;

/// <summary>Creates mixing policies by their stable names (as used in options and result files).</summary>
public static class MixPolicies
{
    private static readonly (string Name, Func<IMixPolicy> Create)[] Registry =
    {
        ("none", () => new NoMixPolicy()),
        ("mixup", () => new MixupPolicy()),
        ("cutmix", () => new CutMixPolicy()),
        ("resizemix", () => new ResizeMixPolicy()),
        ("fmix", () => new FMixPolicy()),
        ("saliencymix", () => new SaliencyMixPolicy()),
        ("deit", () => new DeitMixPolicy()),
        ("transmix", () => new TransMixPolicy()),
        ("mergemix", () => new MergeMixPolicy()),
        ("mergemix-random", () => new MergeMixRandomPolicy()),
    };

    /// <summary>Every valid policy name, in a fixed order (baselines first, MergeMix last).</summary>
    public static IReadOnlyList<string> Names { get; } = Array.AsReadOnly(Registry.Select(r => r.Name).ToArray());

    /// <summary>
    /// A new policy with default options for <paramref name="name"/> (case-insensitive, surrounding spaces ignored).
    /// Throws <see cref="ArgumentException"/> listing the valid names when the name is unknown.
    /// </summary>
    public static IMixPolicy Create(string name)
    {
        ArgumentNullException.ThrowIfNull(name);
        string key = name.Trim();
        foreach (var (known, create) in Registry)
            if (string.Equals(known, key, StringComparison.OrdinalIgnoreCase)) return create();
        throw new ArgumentException($"Unknown mixing policy \"{name}\"; valid names: {string.Join(", ", Names)}.", nameof(name));
    }
}
