namespace MergeMix.ML.Alignment;

/// <summary>
/// What <see cref="PreferenceTrainer"/> optimises. TRL's <c>loss_type</c> names are given for each; new members are
/// appended so the numbers stored in checkpoints keep their meaning.
/// </summary>
public enum PreferenceObjective
{
    /// <summary>Supervised fine-tuning: token-mean cross-entropy on the chosen answers only (TRL <c>sft</c>).</summary>
    Sft,
    /// <summary>SimPO on length-averaged log-probs with the fixed margin <see cref="PreferenceTrainerOptions.Gamma"/>; no
    /// reference model (TRL CPO <c>simpo</c> with <c>cpo_alpha = 0</c>). cDPO-style smoothing with <see cref="PreferenceTrainerOptions.LabelSmoothing"/>.</summary>
    SimPo,
    /// <summary>MergeMix's mixed SimPO: margin γ = 1 − λ per pair (needs pairs from <see cref="PreferenceDataset.FromMixing"/>);
    /// no reference model. Trained with the paper's L_SFT + L_SimPO^Mix (SFT weight 1 unless set).</summary>
    MixedSimPo,
    /// <summary>DPO sigmoid loss (TRL <c>sigmoid</c>); conservative DPO (cDPO) when <see cref="PreferenceTrainerOptions.LabelSmoothing"/> &gt; 0.
    /// Pure DPO: SFT weight 0 unless set. Needs reference log-probs.</summary>
    Dpo,
    /// <summary>IPO as TRL computes it (<c>ipo</c>): each log-ratio divided by its own token count, then (Δ_w/|w| − Δ_l/|l| − 1/(2β))².
    /// Needs reference log-probs.</summary>
    Ipo,
    /// <summary>Hinge (SLiC / RSO, TRL <c>hinge</c>): max(0, 1 − βh). Needs reference log-probs.</summary>
    Hinge,
    /// <summary>Robust DPO (TRL <c>robust</c>): unbiased under a label-noise rate <see cref="PreferenceTrainerOptions.LabelSmoothing"/>.
    /// Needs reference log-probs.</summary>
    RobustDpo,
    /// <summary>Length-normalised DPO (TRL <c>sigmoid_norm</c>, Tulu 3): −logσ(β[Δ_w/|w| − Δ_l/|l|]). Needs reference log-probs.</summary>
    DpoLengthNormalized,
    /// <summary>RPO: DPO sigmoid + α·NLL on the chosen answers (TRL ≤ 0.28 <c>rpo_alpha</c>), α = <see cref="PreferenceTrainerOptions.SftWeight"/>,
    /// 1 unless set (the paper's recommendation). Needs reference log-probs.</summary>
    Rpo,
    /// <summary>IPO on summed log-probs, as the original DPO repository writes it: (h − 1/(2β))². Needs reference log-probs.</summary>
    IpoSummed,
}

/// <summary>Learning-rate schedule after the warm-up, with Hugging Face Trainer's semantics (<c>lr_scheduler_type</c>).</summary>
public enum LearningRateSchedule
{
    /// <summary>The base rate after the warm-up (<c>constant_with_warmup</c>; <c>constant</c> without warm-up).</summary>
    Constant,
    /// <summary>Linear decay to 0 at the last step (<c>linear</c>, the Hugging Face default).</summary>
    Linear,
    /// <summary>Half-cosine decay to 0 at the last step (<c>cosine</c>, SimPO's recipe).</summary>
    Cosine,
}

/// <summary>What happens to a (prompt, answer) text longer than <see cref="PreferenceTrainerOptions.MaxLength"/>.</summary>
public enum TruncationMode
{
    /// <summary>Throw an <see cref="ArgumentException"/> naming the row, the token counts and the limit (nothing is dropped silently).</summary>
    Error,
    /// <summary>Cut the prompt to <see cref="PreferenceTrainerOptions.MaxPromptLength"/> keeping its last tokens (TRL / SimPO <c>keep_end</c>),
    /// then the answer to the room left, keeping its start.</summary>
    KeepEnd,
    /// <summary>Like <see cref="KeepEnd"/> but the prompt keeps its first tokens (TRL <c>keep_start</c>).</summary>
    KeepStart,
}

/// <summary>Where DPO-family objectives get the reference model's log-probs.</summary>
public enum ReferenceMode
{
    /// <summary>A frozen deep copy of the initial policy (eval mode, no gradient) scores every batch.</summary>
    Online,
    /// <summary>The initial policy scores the whole dataset once before the first step; no copy is kept.</summary>
    Precomputed,
}

/// <summary>
/// Options of <see cref="PreferenceTrainer"/>. Defaults follow the MergeMix recipe (mixed SimPO, β = 1,
/// CE + rank) with a learning rate suited to tiny models trained on the CPU.
/// </summary>
public sealed class PreferenceTrainerOptions
{
    /// <summary>Loss to optimise.</summary>
    public PreferenceObjective Objective = PreferenceObjective.MixedSimPo;

    /// <summary>β &gt; 0: inverse temperature of the preference loss (DPO ≈ 0.1, SimPO ≈ 2, MergeMix 1).</summary>
    public double Beta = 1.0;

    /// <summary>SimPO margin γ (absolute, see <see cref="SimPoConvention"/>); unused by the other objectives.</summary>
    public double Gamma = 0.5;

    /// <summary>
    /// Weight of the token-mean cross-entropy on the chosen answers added to the preference loss (TRL's rpo_alpha /
    /// cpo_alpha, SimPO's sft_weight); null = the objective's default (<see cref="EffectiveSftWeight"/>): 1 for
    /// <see cref="PreferenceObjective.MixedSimPo"/> (MergeMix's (CE + rank)/2 equals weight 1 up to a constant factor,
    /// which Adam is insensitive to) and <see cref="PreferenceObjective.Rpo"/>, 0 for the others as in TRL and SimPO.
    /// Ignored by <see cref="PreferenceObjective.Sft"/>.
    /// </summary>
    public double? SftWeight;

    /// <summary>Label smoothing ε ∈ [0, 0.5): cDPO for <see cref="PreferenceObjective.Dpo"/>/<see cref="PreferenceObjective.Rpo"/>
    /// and SimPO's smoothed form for <see cref="PreferenceObjective.SimPo"/>, the noise rate of <see cref="PreferenceObjective.RobustDpo"/>
    /// (TRL uses 0.1 there); 0 = plain losses. Rejected for objectives that ignore it.</summary>
    public double LabelSmoothing = 0.0;

    /// <summary>Where γ sits relative to β in SimPO and mixed SimPO (the two agree when β = 1).</summary>
    public SimPoConvention SimPoConvention = SimPoConvention.Paper;

    /// <summary>
    /// When true the rejected branch runs without gradient, as in MergeMix's official code (only the chosen branch
    /// and the CE term train the model); false trains both branches, as the SimPO/DPO losses are written.
    /// </summary>
    public bool DetachRejected = false;

    /// <summary>Reference log-probs for the DPO family (DPO, RPO, robust, length-normalised, IPO, hinge): an online frozen copy, or precomputed once.</summary>
    public ReferenceMode Reference = ReferenceMode.Online;

    /// <summary>When false the vision encoder is frozen (LLaVA stage 2: its parameters get requires_grad = false);
    /// MergeMix trains it.</summary>
    public bool TrainVisionEncoder = true;

    /// <summary>AdamW learning rate. 1e-3 suits tiny models from scratch; pretrained LMs want 1e-6 to 1e-5.</summary>
    public double LearningRate = 1e-3;

    /// <summary>AdamW weight decay.</summary>
    public double WeightDecay = 0.0;

    /// <summary>Gradient-norm clipping threshold (0 = no clipping).</summary>
    public double MaxGradNorm = 0.0;

    /// <summary>Passes over the dataset.</summary>
    public int Epochs = 1;

    /// <summary>Pairs per forward/backward pass (TRL <c>per_device_train_batch_size</c>); an optimisation step sees
    /// <see cref="BatchSize"/> × <see cref="GradientAccumulationSteps"/> pairs.</summary>
    public int BatchSize = 8;

    /// <summary>Micro-batches whose gradients are summed before each optimiser step (TRL <c>gradient_accumulation_steps</c>).
    /// Losses are normalised over the whole step (pairs, answer tokens), so k micro-batches give the gradient of one batch of
    /// k × <see cref="BatchSize"/> pairs.</summary>
    public int GradientAccumulationSteps = 1;

    /// <summary>Decay of the learning rate after the warm-up. Constant by default, so a run's rate is the one set.</summary>
    public LearningRateSchedule Schedule = LearningRateSchedule.Constant;

    /// <summary>Optimiser steps of linear warm-up from 0 (Hugging Face <c>warmup_steps</c>); when &gt; 0 it overrides
    /// <see cref="WarmupRatio"/>.</summary>
    public int WarmupSteps = 0;

    /// <summary>Share of all optimiser steps used for warm-up, rounded up (Hugging Face <c>warmup_ratio</c>; SimPO uses 0.1).</summary>
    public double WarmupRatio = 0.0;

    /// <summary>Longest text in tokens (image marker + prompt + answer + eos); null = the model's
    /// <see cref="MultimodalLmOptions.MaxTextLength"/>, which it cannot exceed.</summary>
    public int? MaxLength;

    /// <summary>Longest prompt kept (image marker included) when a text is truncated; null = half of the maximum length.
    /// Must be below the maximum length so that every answer keeps at least one token.</summary>
    public int? MaxPromptLength;

    /// <summary>What to do with texts longer than <see cref="MaxLength"/>: throw (the default), or truncate like TRL.</summary>
    public TruncationMode Truncation = TruncationMode.Error;

    /// <summary>Seed of the per-epoch shuffling.</summary>
    public long Seed = 0;

    /// <summary>"cpu", "cuda" or "cuda:N"; the model is moved there.</summary>
    public string Device = "cpu";

    /// <summary>Returns a copy.</summary>
    public PreferenceTrainerOptions Clone() => (PreferenceTrainerOptions)MemberwiseClone();

    /// <summary>Throws <see cref="ArgumentOutOfRangeException"/> naming the first invalid field.</summary>
    public void Validate()
    {
        if (!Enum.IsDefined(Objective)) throw new ArgumentOutOfRangeException(nameof(Objective), Objective, "unknown objective.");
        PreferenceLosses.CheckBeta(Beta, nameof(Beta));
        if (!double.IsFinite(Gamma)) throw new ArgumentOutOfRangeException(nameof(Gamma), Gamma, "Gamma must be a finite number.");
        if (SftWeight is { } weight && (!(weight >= 0) || double.IsInfinity(weight)))
            throw new ArgumentOutOfRangeException(nameof(SftWeight), SftWeight, "SftWeight must be finite and ≥ 0 (null = the objective's default).");
        PreferenceLosses.CheckLabelSmoothing(LabelSmoothing, nameof(LabelSmoothing));
        if (LabelSmoothing > 0 && Objective is not (PreferenceObjective.Dpo or PreferenceObjective.Rpo or PreferenceObjective.RobustDpo or PreferenceObjective.SimPo))
            throw new ArgumentOutOfRangeException(nameof(LabelSmoothing), LabelSmoothing,
                $"LabelSmoothing is used by Dpo, Rpo, RobustDpo and SimPo only; Objective = {Objective} would ignore it.");
        if (!Enum.IsDefined(SimPoConvention)) throw new ArgumentOutOfRangeException(nameof(SimPoConvention), SimPoConvention, "unknown convention.");
        if (!Enum.IsDefined(Reference)) throw new ArgumentOutOfRangeException(nameof(Reference), Reference, "unknown reference mode.");
        if (!(LearningRate > 0) || double.IsInfinity(LearningRate))
            throw new ArgumentOutOfRangeException(nameof(LearningRate), LearningRate, "LearningRate must be finite and > 0.");
        if (!(WeightDecay >= 0) || double.IsInfinity(WeightDecay))
            throw new ArgumentOutOfRangeException(nameof(WeightDecay), WeightDecay, "WeightDecay must be finite and ≥ 0.");
        if (!(MaxGradNorm >= 0) || double.IsInfinity(MaxGradNorm))
            throw new ArgumentOutOfRangeException(nameof(MaxGradNorm), MaxGradNorm, "MaxGradNorm must be finite and ≥ 0 (0 = off).");
        if (Epochs < 1) throw new ArgumentOutOfRangeException(nameof(Epochs), Epochs, "Epochs must be ≥ 1.");
        if (BatchSize < 1) throw new ArgumentOutOfRangeException(nameof(BatchSize), BatchSize, "BatchSize must be ≥ 1.");
        if (GradientAccumulationSteps < 1)
            throw new ArgumentOutOfRangeException(nameof(GradientAccumulationSteps), GradientAccumulationSteps, "GradientAccumulationSteps must be ≥ 1.");
        if (!Enum.IsDefined(Schedule)) throw new ArgumentOutOfRangeException(nameof(Schedule), Schedule, "unknown learning-rate schedule.");
        if (WarmupSteps < 0) throw new ArgumentOutOfRangeException(nameof(WarmupSteps), WarmupSteps, "WarmupSteps must be ≥ 0.");
        if (!(WarmupRatio >= 0 && WarmupRatio <= 1))
            throw new ArgumentOutOfRangeException(nameof(WarmupRatio), WarmupRatio, "WarmupRatio must lie in [0, 1].");
        if (!Enum.IsDefined(Truncation)) throw new ArgumentOutOfRangeException(nameof(Truncation), Truncation, "unknown truncation mode.");
        if (MaxLength is < 2) throw new ArgumentOutOfRangeException(nameof(MaxLength), MaxLength, "MaxLength must be ≥ 2 (image marker + one token).");
        if (MaxPromptLength is { } prompt && (prompt < 1 || (MaxLength is { } max && prompt >= max)))
            throw new ArgumentOutOfRangeException(nameof(MaxPromptLength), MaxPromptLength,
                $"MaxPromptLength must be ≥ 1 (the image marker) and below MaxLength ({MaxLength}), so that every answer keeps a token.");
    }

    /// <summary>The SFT weight used: <see cref="SftWeight"/>, or the objective's default (1 for mixed SimPO and RPO, else 0).</summary>
    public double EffectiveSftWeight => SftWeight ?? (Objective is PreferenceObjective.MixedSimPo or PreferenceObjective.Rpo ? 1.0 : 0.0);

    /// <summary>Warm-up steps for a run of <paramref name="totalSteps"/> optimiser steps: <see cref="WarmupSteps"/> when &gt; 0,
    /// else ⌈<see cref="WarmupRatio"/> · total⌉ (Hugging Face's rule).</summary>
    public long WarmupStepsFor(long totalSteps) => WarmupSteps > 0 ? WarmupSteps : (long)Math.Ceiling(WarmupRatio * totalSteps);

    /// <summary>True for the objectives that compare against a reference model (the DPO family: DPO, RPO, robust, length-normalised, IPO, hinge).</summary>
    public bool NeedsReference => Objective is not (PreferenceObjective.Sft or PreferenceObjective.SimPo or PreferenceObjective.MixedSimPo);
}

/// <summary>
/// Metrics of one optimisation step (or of an evaluation pass), named as TRL logs them (see <see cref="ToDictionary"/>).
/// Rewards are β(S − S_ref) for DPO-family objectives and β·A for SimPO ones; NaN where an objective has no such value
/// (SFT has no rejected side and no rewards).
/// </summary>
/// <param name="Step">Optimisation steps done so far by this trainer (1 after the first step; the step count at evaluation time).</param>
/// <param name="Epoch">Zero-based epoch of the step (−1 for an evaluation).</param>
/// <param name="Loss">Total loss (preference + SftWeight·CE, or CE for SFT).</param>
/// <param name="RewardsChosen">Mean chosen reward.</param>
/// <param name="RewardsRejected">Mean rejected reward.</param>
/// <param name="RewardsMargins">Mean (chosen − rejected) reward.</param>
/// <param name="RewardsAccuracies">Share of pairs whose chosen reward is strictly higher.</param>
/// <param name="LogpsChosen">Mean log-prob of the chosen answers: summed over tokens, or averaged per token for the
/// SimPO objectives (as TRL's CPO trainer logs them, since that is what their loss compares).</param>
/// <param name="LogpsRejected">Mean log-prob of the rejected answers, summed or averaged like <paramref name="LogpsChosen"/>.</param>
/// <param name="SftLoss">Token-mean cross-entropy on the chosen answers.</param>
public sealed record PreferenceStepMetrics(long Step, int Epoch, double Loss, double RewardsChosen, double RewardsRejected,
    double RewardsMargins, double RewardsAccuracies, double LogpsChosen, double LogpsRejected, double SftLoss)
{
    /// <summary>Step counted over every phase of a run (SFT steps, then preference steps), so it never restarts;
    /// equals <see cref="Step"/> for a single trainer.</summary>
    public long GlobalStep { get; init; } = Step;

    /// <summary>The phase: "sft", a preference objective's TRL-like name ("mixed_simpo", "dpo", ...).</summary>
    public string Phase { get; init; } = "";

    /// <summary>True for metrics of an evaluation pass: <see cref="ToDictionary"/> then prefixes "eval_", as TRL does.</summary>
    public bool IsEvaluation { get; init; }

    /// <summary>L2 norm of the whole gradient before clipping (NaN for an evaluation).</summary>
    public double GradNorm { get; init; } = double.NaN;

    /// <summary>Learning rate this step was taken with (after warm-up and schedule; NaN for an evaluation).</summary>
    public double LearningRate { get; init; } = double.NaN;

    /// <summary>Mean over the chosen answers' scored positions of the vocabulary-mean logit (TRL DPO <c>logits/chosen</c>).</summary>
    public double LogitsChosen { get; init; } = double.NaN;

    /// <summary>Same as <see cref="LogitsChosen"/> for the rejected answers (NaN for SFT).</summary>
    public double LogitsRejected { get; init; } = double.NaN;

    /// <summary>Text tokens (padding excluded, both sides) forwarded for training so far, cumulative like TRL's <c>num_tokens</c>;
    /// for an evaluation, the tokens of the evaluated data.</summary>
    public long NumTokens { get; init; }

    /// <summary>Text tokens of this step divided by its wall time (forward, backward and optimiser step).</summary>
    public double TokensPerSecond { get; init; } = double.NaN;

    /// <summary>
    /// The metrics under TRL's names: loss, rewards/chosen, rewards/rejected, rewards/margins, rewards/accuracies,
    /// logps/chosen, logps/rejected, logits/chosen, logits/rejected, sft_loss, grad_norm, learning_rate, num_tokens,
    /// tokens_per_second, step (global), epoch. <paramref name="prefix"/> is prepended; null = "eval_" for an
    /// evaluation, "" otherwise. NaN entries (values an objective does not have) are kept.
    /// </summary>
    public IReadOnlyDictionary<string, double> ToDictionary(string? prefix = null)
    {
        prefix ??= IsEvaluation ? "eval_" : "";
        var values = new Dictionary<string, double>
        {
            [prefix + "loss"] = Loss,
            [prefix + "rewards/chosen"] = RewardsChosen,
            [prefix + "rewards/rejected"] = RewardsRejected,
            [prefix + "rewards/margins"] = RewardsMargins,
            [prefix + "rewards/accuracies"] = RewardsAccuracies,
            [prefix + "logps/chosen"] = LogpsChosen,
            [prefix + "logps/rejected"] = LogpsRejected,
            [prefix + "logits/chosen"] = LogitsChosen,
            [prefix + "logits/rejected"] = LogitsRejected,
            [prefix + "sft_loss"] = SftLoss,
            [prefix + "num_tokens"] = NumTokens,
        };
        if (!IsEvaluation)
        {
            values[prefix + "grad_norm"] = GradNorm;
            values[prefix + "learning_rate"] = LearningRate;
            values[prefix + "tokens_per_second"] = TokensPerSecond;
            values[prefix + "step"] = GlobalStep;
            values[prefix + "epoch"] = Epoch;
        }
        return values;
    }
}

/// <summary>Learning-rate multipliers of Hugging Face's schedulers (<c>get_*_schedule_with_warmup</c>), exactly.</summary>
public static class LearningRateSchedules
{
    /// <summary>
    /// The factor applied to the base learning rate for optimiser step <paramref name="step"/> (0-based): step / warmup
    /// during the warm-up (so the first step of a warm-up has rate 0, as in Hugging Face), then 1 (constant),
    /// (total − step) / (total − warmup) (linear) or ½(1 + cos(π·progress)) with progress = (step − warmup) / (total − warmup) (cosine).
    /// </summary>
    public static double Factor(LearningRateSchedule schedule, long step, long totalSteps, long warmupSteps)
    {
        if (step < 0) throw new ArgumentOutOfRangeException(nameof(step), step, "step must be ≥ 0.");
        if (totalSteps < 1) throw new ArgumentOutOfRangeException(nameof(totalSteps), totalSteps, "totalSteps must be ≥ 1.");
        if (warmupSteps < 0) throw new ArgumentOutOfRangeException(nameof(warmupSteps), warmupSteps, "warmupSteps must be ≥ 0.");
        if (step < warmupSteps) return (double)step / Math.Max(1, warmupSteps);
        double decaySteps = Math.Max(1, totalSteps - warmupSteps);
        return schedule switch
        {
            LearningRateSchedule.Constant => 1.0,
            LearningRateSchedule.Linear => Math.Max(0.0, (totalSteps - step) / decaySteps),
            LearningRateSchedule.Cosine => Math.Max(0.0, 0.5 * (1 + Math.Cos(Math.PI * (step - warmupSteps) / decaySteps))),
            _ => throw new ArgumentOutOfRangeException(nameof(schedule), schedule, "unknown LearningRateSchedule."),
        };
    }
}
