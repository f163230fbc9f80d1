using TorchSharp;
using static TorchSharp.torch;

namespace MergeMix.ML.Vision;

/// <summary>
/// Stochastic depth on a residual branch: in training, each sample's branch output is zeroed with probability
/// <see cref="Rate"/> and otherwise scaled by 1/(1 − Rate), so its expectation is unchanged. Identity in eval mode.
/// Uses torch's global generator, like <c>nn.Dropout</c>.
/// </summary>
/// <remarks>
/// This is TorchVision's <c>ops.stochastic_depth</c> in "row" mode (same Bernoulli draws from the same generator),
/// kept as our own for two reasons: TorchVision divides by a temporary <c>Scalar</c> it cannot keep alive, which
/// TorchSharp 0.107's finalizer race can free mid-call (see README, known issues), and it computes x·(mask/keep)
/// where we compute (x·mask)/keep, which differs in the last bit and would change every trained model and benchmark
/// number recorded so far.
/// </remarks>
public sealed class DropPath : nn.Module<Tensor, Tensor>
{
    /// <summary>Creates a drop-path module with drop probability <paramref name="rate"/> in [0, 1).</summary>
    public DropPath(double rate, string name = "drop_path") : base(name)
    {
        if (!(rate >= 0 && rate < 1)) throw new ArgumentOutOfRangeException(nameof(rate), rate, "rate must be in [0, 1).");
        Rate = rate;
        RegisterComponents();
    }

    /// <summary>Probability of dropping a sample's branch.</summary>
    public double Rate { get; }

    /// <summary>Applies the per-sample mask in training mode; returns <paramref name="x"/> unchanged otherwise.</summary>
    public override Tensor forward(Tensor x)
    {
        if (!training || Rate == 0) return x;
        double keep = 1 - Rate;
        var shape = new long[x.dim()];
        Array.Fill(shape, 1L);
        shape[0] = x.shape[0];
        using var mask = empty(shape, dtype: x.dtype, device: x.device).bernoulli_(keep);
        using var keepScalar = keep.ToScalar();
        return (x * mask).div(keepScalar);
    }
}
