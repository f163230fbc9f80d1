using MergeMix.ML.Data;
using MergeMix.ML.Samples.Imaging;
using MergeMix.ML.Mixing;
using static TorchSharp.torch;

namespace MergeMix.ML.Samples;

/// <summary>Writes one PNG grid (original | partner | mask | mixed, λ) per mixing policy.</summary>
internal static class Grids
{
    public static IReadOnlyList<string> WriteAll(LabeledImageSet images, IAttentionSource attention, string folder, string prefix, int rows = 8, int seed = 7)
    {
        var paths = new List<string>();
        var pick = Enumerable.Range(0, Math.Min(rows, images.Count)).ToArray();
        var batch = images.Select(pick);
        foreach (var name in MixPolicies.Names)
        {
            using var scope = NewDisposeScope();
            var x = tensor(batch.Pixels, new long[] { batch.Count, batch.Channels, batch.Height, batch.Width });
            var y = tensor(batch.Labels.Select(l => (long)l).ToArray());
            using var generator = new Generator((ulong)seed);
            using var result = MixPolicies.Create(name).Mix(x, y, batch.ClassNames.Count, generator, attention);
            var path = Path.Combine(folder, $"{prefix}-mix-{name}.png");
            MixGrid.Save(path, x, result, batch.ClassNames, rows);
            paths.Add(path);
        }
        return paths;
    }
}
