namespace MergeMix.ML.Alignment;

/// <summary>What <see cref="PreferenceTrainer"/> optimises.</summary>
public enum PreferenceObjective
{
    /// <summary>Supervised fine-tuning: token-mean cross-entropy on the chosen answers only.</summary>
    Sft,
    /// <summary>SimPO on length-averaged log-probs with the fixed margin <see cref="PreferenceTrainerOptions.Gamma"/>; no reference model.</summary>
    SimPo,
    /// <summary>MergeMix's mixed SimPO: margin γ = 1 − λ per pair (needs pairs from <see cref="PreferenceDataset.FromMixing"/>); no reference model.</summary>
    MixedSimPo,
    /// <summary>DPO sigmoid loss (conservative DPO when <see cref="PreferenceTrainerOptions.LabelSmoothing"/> &gt; 0); needs reference log-probs.</summary>
    Dpo,
    /// <summary>IPO on summed log-probs (DPO repository form); needs reference log-probs.</summary>
    Ipo,
    /// <summary>Hinge (SLiC) loss; needs reference log-probs.</summary>
    Hinge,
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
    /// cpo_alpha, SimPO's sft_weight). MergeMix's (CE + rank)/2 equals weight 1 up to a constant factor, which Adam
    /// is insensitive to. Ignored by <see cref="PreferenceObjective.Sft"/>.
    /// </summary>
    public double SftWeight = 1.0;

    /// <summary>cDPO label smoothing ε ∈ [0, 0.5) for <see cref="PreferenceObjective.Dpo"/> (0 = plain DPO).</summary>
    public double LabelSmoothing = 0.0;

    /// <summary>Where γ sits relative to β in SimPO and mixed SimPO (the two agree when β = 1).</summary>
    public SimPoConvention SimPoConvention = SimPoConvention.Paper;

    /// <summary>
    /// When true the rejected branch runs without gradient, as in MergeMix's official code (only the chosen branch
    /// and the CE term train the model); false trains both branches, as the SimPO/DPO losses are written.
    /// </summary>
    public bool DetachRejected = false;

    /// <summary>Reference log-probs for DPO, IPO and hinge: an online frozen copy, or precomputed once.</summary>
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

    /// <summary>Pairs per optimisation step.</summary>
    public int BatchSize = 8;

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
        if (!(SftWeight >= 0) || double.IsInfinity(SftWeight))
            throw new ArgumentOutOfRangeException(nameof(SftWeight), SftWeight, "SftWeight must be finite and ≥ 0.");
        PreferenceLosses.CheckLabelSmoothing(LabelSmoothing, nameof(LabelSmoothing));
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
    }

    /// <summary>True for the objectives that compare against a reference model (DPO, IPO, hinge).</summary>
    public bool NeedsReference => Objective is PreferenceObjective.Dpo or PreferenceObjective.Ipo or PreferenceObjective.Hinge;
}

/// <summary>
/// Metrics of one optimisation step (or of an evaluation pass), named as TRL logs them (see <see cref="ToDictionary"/>).
/// Rewards are β(S − S_ref) for DPO-family objectives and β·A for SimPO ones; NaN where an objective has no such value
/// (SFT has no rejected side and no rewards).
/// </summary>
/// <param name="Step">Optimisation steps done so far (1 after the first step; the step count at evaluation time).</param>
/// <param name="Epoch">Zero-based epoch of the step.</param>
/// <param name="Loss">Total loss (preference + SftWeight·CE, or CE for SFT).</param>
/// <param name="RewardsChosen">Mean chosen reward.</param>
/// <param name="RewardsRejected">Mean rejected reward.</param>
/// <param name="RewardsMargins">Mean (chosen − rejected) reward.</param>
/// <param name="RewardsAccuracies">Share of pairs whose chosen reward is strictly higher.</param>
/// <param name="LogpsChosen">Mean summed log-prob of the chosen answers.</param>
/// <param name="LogpsRejected">Mean summed log-prob of the rejected answers.</param>
/// <param name="SftLoss">Token-mean cross-entropy on the chosen answers.</param>
public sealed record PreferenceStepMetrics(long Step, int Epoch, double Loss, double RewardsChosen, double RewardsRejected,
    double RewardsMargins, double RewardsAccuracies, double LogpsChosen, double LogpsRejected, double SftLoss)
{
    /// <summary>The metrics under TRL's names: loss, rewards/chosen, rewards/rejected, rewards/margins,
    /// rewards/accuracies, logps/chosen, logps/rejected, plus sft_loss; <paramref name="prefix"/> (e.g. "eval_") is prepended.</summary>
    public IReadOnlyDictionary<string, double> ToDictionary(string prefix = "") => new Dictionary<string, double>
    {
        [prefix + "loss"] = Loss,
        [prefix + "rewards/chosen"] = RewardsChosen,
        [prefix + "rewards/rejected"] = RewardsRejected,
        [prefix + "rewards/margins"] = RewardsMargins,
        [prefix + "rewards/accuracies"] = RewardsAccuracies,
        [prefix + "logps/chosen"] = LogpsChosen,
        [prefix + "logps/rejected"] = LogpsRejected,
        [prefix + "sft_loss"] = SftLoss,
    };
}
