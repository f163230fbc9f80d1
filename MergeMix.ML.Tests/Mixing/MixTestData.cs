using MergeMix.ML.Mixing;
using TorchSharp;
using static TorchSharp.torch;

namespace MergeMix.ML.Tests.Mixing;

/// <summary>Hand-made batches and fake attention sources for the mixing tests.</summary>
internal static class MixTestData
{
    /// <summary>[B, C, H, W] with every value distinct (b·10000 + c·1000 + y·32 + x), so any pixel names its source.</summary>
    public static Tensor DistinctImages(int batch, int channels, int height, int width)
    {
        var values = new float[batch * channels * height * width];
        int i = 0;
        for (int b = 0; b < batch; b++)
            for (int c = 0; c < channels; c++)
                for (int y = 0; y < height; y++)
                    for (int x = 0; x < width; x++)
                        values[i++] = b * 10000 + c * 1000 + y * 32 + x;
        return torch.tensor(values, new long[] { batch, channels, height, width });
    }

    public static Tensor Labels(params long[] labels) => torch.tensor(labels, ScalarType.Int64);

    public static float[] Floats(Tensor t) => t.cpu().to_type(ScalarType.Float32).data<float>().ToArray();

    public static long[] Longs(Tensor t) => t.cpu().to_type(ScalarType.Int64).data<long>().ToArray();

    /// <summary>Checks every pixel of row i equals the original where the mask is 1 and the partner where it is 0.</summary>
    public static void AssertMaskSelects(Tensor images, MixResult result)
    {
        Assert.IsNotNull(result.Mask);
        float[] x = Floats(images), mixed = Floats(result.Mixed), mask = Floats(result.Mask!);
        long[] partner = Longs(result.Partner);
        int batch = (int)images.shape[0], channels = (int)images.shape[1];
        int plane = (int)(images.shape[2] * images.shape[3]);
        for (int b = 0; b < batch; b++)
            for (int c = 0; c < channels; c++)
                for (int p = 0; p < plane; p++)
                {
                    float m = mask[b * plane + p];
                    Assert.IsTrue(m == 0f || m == 1f, $"mask value {m} is not binary");
                    int source = m == 1f ? b : (int)partner[b];
                    Assert.AreEqual(x[(source * channels + c) * plane + p], mixed[(b * channels + c) * plane + p],
                        $"row {b}, channel {c}, pixel {p}: expected the {(m == 1f ? "original" : "partner")} pixel");
                }
    }

    /// <summary>Checks soft labels: λ on the own class, 1−λ on the partner's, exactly 1 when both classes agree.</summary>
    public static void AssertSoftLabels(MixResult result, long[] labels, int classCount)
    {
        float[] soft = Floats(result.SoftLabels), lambda = Floats(result.Lambda);
        long[] partner = Longs(result.Partner);
        for (int b = 0; b < labels.Length; b++)
        {
            var expected = new float[classCount];
            long own = labels[b], other = labels[partner[b]];
            if (own == other) expected[own] = 1f;
            else { expected[own] = lambda[b]; expected[other] = 1f - lambda[b]; }
            for (int k = 0; k < classCount; k++)
                Assert.AreEqual(expected[k], soft[b * classCount + k], 1e-6f, $"row {b}, class {k}");
            Assert.AreEqual(1.0, soft.Skip(b * classCount).Take(classCount).Sum(), 1e-6, $"row {b} must sum to 1");
        }
    }

    /// <summary>Asserts that two results hold identical tensors.</summary>
    public static void AssertSame(MixResult a, MixResult b)
    {
        CollectionAssert.AreEqual(Floats(a.Mixed), Floats(b.Mixed));
        CollectionAssert.AreEqual(Longs(a.Partner), Longs(b.Partner));
        CollectionAssert.AreEqual(Floats(a.Lambda), Floats(b.Lambda));
        CollectionAssert.AreEqual(Floats(a.SoftLabels), Floats(b.SoftLabels));
        Assert.AreEqual(a.Mask is null, b.Mask is null);
        if (a.Mask is not null) CollectionAssert.AreEqual(Floats(a.Mask), Floats(b.Mask!));
    }

    /// <summary>True when the two results differ in any tensor.</summary>
    public static bool Differ(MixResult a, MixResult b) =>
        !Floats(a.Mixed).SequenceEqual(Floats(b.Mixed)) || !Longs(a.Partner).SequenceEqual(Longs(b.Partner))
        || !Floats(a.Lambda).SequenceEqual(Floats(b.Lambda));
}

/// <summary>An attention source that returns fixed per-row scores (or scores computed from the images) and counts calls.</summary>
internal sealed class FakeAttention : IAttentionSource
{
    private readonly Func<Tensor, Tensor> _scores;

    public FakeAttention(int patchSize, Func<Tensor, Tensor> scores)
    {
        PatchSize = patchSize;
        _scores = scores;
    }

    /// <summary>Fixed scores: row b of <paramref name="rows"/> for image b.</summary>
    public static FakeAttention Fixed(int patchSize, float[][] rows) =>
        new(patchSize, _ => torch.tensor(rows.SelectMany(r => r).ToArray(), new long[] { rows.Length, rows[0].Length }));

    public int PatchSize { get; }

    public int Calls { get; private set; }

    public Tensor PatchAttention(Tensor images)
    {
        Calls++;
        return _scores(images);
    }
}
