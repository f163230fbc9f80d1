using MergeMix.ML.Mixing;

namespace MergeMix.ML.Transforms;

/// <summary>Builds the <see cref="IMixPolicy"/> an estimator's options describe.</summary>
internal static class MixingPolicies
{
    public static IMixPolicy Create(MixingEstimator.Options options)
    {
        if (options.CustomPolicy is { } custom) return custom;
        double? alpha = options.Alpha;
        return options.Policy switch
        {
            MixingPolicy.MergeMix => alpha is { } a ? new MergeMixPolicy { Alpha = a } : new MergeMixPolicy(),
            MixingPolicy.MergeMixRandom => alpha is { } a ? new MergeMixRandomPolicy { Alpha = a } : new MergeMixRandomPolicy(),
            MixingPolicy.Mixup => alpha is { } a ? new MixupPolicy { Alpha = a } : new MixupPolicy(),
            MixingPolicy.CutMix => alpha is { } a ? new CutMixPolicy { Alpha = a } : new CutMixPolicy(),
            MixingPolicy.FMix => alpha is { } a ? new FMixPolicy { Alpha = a } : new FMixPolicy(),
            MixingPolicy.SaliencyMix => alpha is { } a ? new SaliencyMixPolicy { Alpha = a } : new SaliencyMixPolicy(),
            MixingPolicy.ResizeMix => NoAlpha(new ResizeMixPolicy(), alpha),
            MixingPolicy.TransMix => NoAlpha(new TransMixPolicy(), alpha),
            MixingPolicy.Deit => NoAlpha(new DeitMixPolicy(), alpha),
            MixingPolicy.None => NoAlpha(new NoMixPolicy(), alpha),
            _ => throw new ArgumentOutOfRangeException(nameof(MixingEstimator.Options.Policy), $"Unknown mixing policy {options.Policy}."),
        };
    }

    private static IMixPolicy NoAlpha(IMixPolicy policy, double? alpha) => alpha is null
        ? policy
        : throw new ArgumentException($"Alpha is not an option of the '{policy.Name}' policy (it has its own fixed schedule); leave it null or set CustomPolicy.",
            nameof(MixingEstimator.Options.Alpha));
}
