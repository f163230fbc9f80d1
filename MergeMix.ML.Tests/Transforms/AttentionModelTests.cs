using MergeMix.ML.Data;
using MergeMix.ML.Transforms;
using static TorchSharp.torch;

namespace MergeMix.ML.Tests.Transforms;

[TestClass]
public sealed class AttentionModelTests
{
    /// <summary>
    /// End to end check of attention recovery: the default attention model, trained briefly, must put its most-attended
    /// patches on the objects of the synthetic scenes far more often than chance. At 24 px every grid cell of the
    /// generator is exactly 2×2 patches, so the object patches are known from the scene description.
    /// </summary>
    [TestMethod]
    public void TopAttentionPatchesLieOnTheObjects()
    {
        var scenes = new SyntheticShapesOptions { Width = 24, Height = 24, MinObjectSize = 0.8f, MaxObjectSize = 1f };
        var train = SyntheticShapes.Generate(6000, seed: 1, scenes).Images;
        var (test, testScenes) = SyntheticShapes.Generate(200, seed: 2, scenes);
        var attention = AttentionModelTrainer.Train(train, new AttentionModelOptions { Epochs = 2, BatchSize = 32 });

        using var images = tensor(test.Pixels, new long[] { test.Count, 3, 24, 24 });
        using var scores = attention.PatchAttention(images);
        CollectionAssert.AreEqual(new long[] { test.Count, 36 }, scores.shape);
        var values = scores.data<float>().ToArray();
        const int keep = 9;
        double onObjects = 0, chance = 0;
        for (int i = 0; i < test.Count; i++)
        {
            var objectPatches = new HashSet<int>();
            foreach (var position in testScenes[i].Positions)
            {
                int cell = SyntheticShapes.PositionNames.ToList().IndexOf(position), row = cell / 3, column = cell % 3;
                for (int dy = 0; dy < 2; dy++)
                    for (int dx = 0; dx < 2; dx++)
                        objectPatches.Add((row * 2 + dy) * 6 + column * 2 + dx);
            }
            var top = Enumerable.Range(0, 36).OrderByDescending(j => values[i * 36 + j]).Take(keep);
            onObjects += top.Count(objectPatches.Contains) / (double)keep;
            chance += objectPatches.Count / 36.0;
        }
        onObjects /= test.Count;
        chance /= test.Count;
        Assert.IsTrue(onObjects > 2 * chance, $"top-{keep} attention patches on objects: {onObjects:P1}, chance {chance:P1}");
    }
}
