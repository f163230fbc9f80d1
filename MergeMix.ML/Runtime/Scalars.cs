using TorchSharp;
using static TorchSharp.torch;

namespace MergeMix.ML.Runtime;

/// <summary>
/// Scalars that live for the whole process, and the few tensor factories that need kept-alive scalars.
/// </summary>
/// <remarks>
/// TorchSharp 0.107 hands a <see cref="Scalar"/>'s native handle to libtorch without <c>GC.KeepAlive</c>, and frees
/// the handle in the Scalar's finalizer. A temporary Scalar (<c>t * 0.5</c>, <c>a + b</c> whose alpha = 1 TorchSharp
/// makes itself, <c>clamp(min: 0)</c>) can therefore be finalized while libtorch still reads it: "Exception raised
/// from toFloat at c10/core/Scalar.h", "Expected false to be true" or a native abort, at random (README, Known issues).
/// Library code passes either one of these cached scalars or a <c>using var s = value.ToScalar();</c> local;
/// <c>ScalarLifetimeGuardTests</c> fails the build's tests on any other Scalar. Each cached Scalar keeps the type of
/// the literal it replaces (integral for <c>1</c>, floating for <c>0.5</c>), so type promotion is unchanged: an
/// int64 tensor plus <see cref="One"/> stays int64.
/// </remarks>
internal static class Scalars
{
    public static readonly Scalar Zero = 0;
    public static readonly Scalar One = 1;
    public static readonly Scalar Two = 2;
    public static readonly Scalar MinusOne = -1;
    public static readonly Scalar Half = 0.5;
    public static readonly Scalar NegativeInfinity = double.NegativeInfinity;

    /// <summary>[start, stop) with step 1, as <c>torch.arange</c> (whose short overloads make their own start and step).</summary>
    public static Tensor Arange(long start, long stop, ScalarType dtype = ScalarType.Int64, Device? device = null)
    {
        using var first = start.ToScalar();
        using var end = stop.ToScalar();
        return arange(first, end, One, dtype, device);
    }

    /// <summary>[0, stop) with step 1.</summary>
    public static Tensor Arange(long stop, ScalarType dtype = ScalarType.Int64, Device? device = null) =>
        Arange(0, stop, dtype, device);

    /// <summary>1 − <paramref name="t"/>, as <c>1 - t</c> computes it (negate, then add 1), with a kept-alive 1.</summary>
    public static Tensor OneMinus(Tensor t)
    {
        using var negated = t.neg();
        return negated.add(One, One);
    }
}
