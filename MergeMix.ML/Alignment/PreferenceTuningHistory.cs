namespace MergeMix.ML.Alignment;

/// <summary>
/// What <see cref="PreferenceTuningEstimator.Fit"/> did: the per-step metrics of the SFT phase and of the preference
/// phase (TRL names via <see cref="PreferenceStepMetrics.ToDictionary"/>), and the wall time of each phase.
/// </summary>
/// <remarks>After a resume from checkpoints the step lists are complete (they are restored with the trainer state),
/// while the durations cover only the resumed call.</remarks>
public sealed class PreferenceTuningHistory
{
    /// <summary>Creates a history.</summary>
    public PreferenceTuningHistory(IReadOnlyList<PreferenceStepMetrics> sft, IReadOnlyList<PreferenceStepMetrics> preference,
        PreferenceObjective objective, TimeSpan sftDuration, TimeSpan preferenceDuration, IReadOnlyList<PreferenceStepMetrics>? evaluations = null)
    {
        Evaluations = (evaluations ?? Array.Empty<PreferenceStepMetrics>()).ToArray();
        ArgumentNullException.ThrowIfNull(sft);
        ArgumentNullException.ThrowIfNull(preference);
        Sft = sft.ToArray();
        Preference = preference.ToArray();
        Objective = objective;
        SftDuration = sftDuration;
        PreferenceDuration = preferenceDuration;
    }

    /// <summary>Steps of the supervised fine-tuning phase (empty when SftEpochs = 0). Rewards are NaN there.</summary>
    public IReadOnlyList<PreferenceStepMetrics> Sft { get; }

    /// <summary>Steps of the preference phase (empty when PreferenceEpochs = 0).</summary>
    public IReadOnlyList<PreferenceStepMetrics> Preference { get; }

    /// <summary>Validation metrics after every epoch of both phases (empty without a validation set), in order; their
    /// <see cref="PreferenceStepMetrics.GlobalStep"/> and <see cref="PreferenceStepMetrics.Phase"/> say when and where.</summary>
    public IReadOnlyList<PreferenceStepMetrics> Evaluations { get; }

    /// <summary>Objective of the preference phase.</summary>
    public PreferenceObjective Objective { get; }

    /// <summary>Wall time of the SFT phase.</summary>
    public TimeSpan SftDuration { get; }

    /// <summary>Wall time of the preference phase (pair building included).</summary>
    public TimeSpan PreferenceDuration { get; }

    /// <summary>An empty history (a model loaded from disk).</summary>
    public static PreferenceTuningHistory Empty(PreferenceObjective objective) =>
        new(Array.Empty<PreferenceStepMetrics>(), Array.Empty<PreferenceStepMetrics>(), objective, TimeSpan.Zero, TimeSpan.Zero);
}
