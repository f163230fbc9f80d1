using TorchSharp;
using static TorchSharp.torch;

namespace MergeMix.ML.Mixing;

/// <summary>
/// Scalar random draws for the mixing policies, all taken from a caller-owned <see cref="Generator"/> so that a
/// policy's output depends only on the generator state (never on the global torch RNG or on <see cref="Random"/>).
/// </summary>
public static class MixRandom
{
    /// <summary>A uniform draw in [0, 1) from <paramref name="generator"/>.</summary>
    public static double Uniform(Generator generator)
    {
        ArgumentNullException.ThrowIfNull(generator);
        using var u = torch.rand(1, ScalarType.Float64, generator.device, generator: generator);
        return u.item<double>();
    }

    /// <summary>A uniform draw in [<paramref name="low"/>, <paramref name="high"/>) from <paramref name="generator"/>.</summary>
    public static double Uniform(double low, double high, Generator generator) => low + (high - low) * Uniform(generator);

    /// <summary>A uniform integer in [0, <paramref name="exclusiveMax"/>) from <paramref name="generator"/>.</summary>
    public static int UniformInt(int exclusiveMax, Generator generator)
    {
        if (exclusiveMax < 1)
            throw new ArgumentOutOfRangeException(nameof(exclusiveMax), exclusiveMax, "exclusiveMax must be at least 1.");
        // Floating-point rounding can push u·n up to n when u is the largest double below 1.
        return Math.Min((int)(Uniform(generator) * exclusiveMax), exclusiveMax - 1);
    }

    /// <summary>A standard normal draw from <paramref name="generator"/>.</summary>
    public static double Normal(Generator generator)
    {
        ArgumentNullException.ThrowIfNull(generator);
        using var n = torch.randn(1, ScalarType.Float64, generator.device, generator: generator);
        return n.item<double>();
    }

    /// <summary>
    /// The natural log of a Gamma(<paramref name="shape"/>, 1) draw (Marsaglia–Tsang). Working in logs keeps
    /// small shapes (α = 0.2 gives Gamma draws far below 1e-30) from underflowing when a Beta ratio is formed.
    /// </summary>
    public static double LogGamma(double shape, Generator generator)
    {
        if (!(shape > 0) || double.IsInfinity(shape))
            throw new ArgumentOutOfRangeException(nameof(shape), shape, "The Gamma shape must be a finite number > 0.");
        if (shape < 1)
        {
            // Gamma(a) = Gamma(a + 1) · U^(1/a) (Marsaglia–Tsang's boost for a < 1).
            double boosted = LogGamma(shape + 1, generator);
            double u = 1 - Uniform(generator); // in (0, 1], so the log is finite
            return boosted + Math.Log(u) / shape;
        }
        double d = shape - 1.0 / 3.0;
        double c = 1.0 / Math.Sqrt(9 * d);
        while (true)
        {
            double x = Normal(generator);
            double t = 1 + c * x;
            if (t <= 0) continue;
            double v = t * t * t;
            double u = 1 - Uniform(generator);
            if (Math.Log(u) < 0.5 * x * x + d - d * v + d * Math.Log(v))
                return Math.Log(d) + Math.Log(v);
        }
    }

    /// <summary>
    /// A Beta(<paramref name="alpha"/>, <paramref name="alpha"/>) draw in [0, 1], as X/(X+Y) with X, Y ~ Gamma(α).
    /// Deterministic for a given generator state.
    /// </summary>
    public static double Beta(double alpha, Generator generator)
    {
        if (!(alpha > 0) || double.IsInfinity(alpha))
            throw new ArgumentOutOfRangeException(nameof(alpha), alpha, "alpha must be a finite number > 0.");
        double logX = LogGamma(alpha, generator);
        double logY = LogGamma(alpha, generator);
        // X/(X+Y) = 1/(1 + exp(logY − logX)), stable for any magnitudes.
        return 1.0 / (1.0 + Math.Exp(logY - logX));
    }

    /// <summary>
    /// A permutation p of 0..<paramref name="batch"/>−1 with p[i] ≠ i for every i when batch ≥ 2 (a derangement), so
    /// that no image is ever mixed with itself. A random permutation is drawn, then every fixed point i is swapped
    /// with a uniformly chosen other position k; such a swap moves i away and puts value i at k ≠ i, so it never
    /// creates a new fixed point and one pass suffices. For batch = 1 the only permutation, [0], is returned.
    /// </summary>
    public static long[] PartnerPermutation(int batch, Generator generator)
    {
        if (batch < 1) throw new ArgumentOutOfRangeException(nameof(batch), batch, "batch must be at least 1.");
        ArgumentNullException.ThrowIfNull(generator);
        using var perm = torch.randperm(batch, ScalarType.Int64, generator.device, generator: generator);
        long[] p = perm.cpu().data<long>().ToArray();
        if (batch == 1) return p;
        for (int i = 0; i < batch; i++)
        {
            if (p[i] != i) continue;
            int k = (i + 1 + UniformInt(batch - 1, generator)) % batch;
            (p[i], p[k]) = (p[k], p[i]);
        }
        return p;
    }
}
