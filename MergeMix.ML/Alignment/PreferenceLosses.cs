using MergeMix.ML.Runtime;
using TorchSharp;
using static TorchSharp.torch;
using static TorchSharp.torch.nn.functional;

namespace MergeMix.ML.Alignment;

/// <summary>
/// Where the SimPO margin γ sits relative to β. The two only agree when β = 1.
/// </summary>
public enum SimPoConvention
{
    /// <summary>SimPO paper: −logσ(β·Δ − γ), with Δ = A(w) − A(l) the difference of length-averaged log-probs.</summary>
    Paper,

    /// <summary>Official MergeMix code (<c>llava_trainer.compute_loss</c>): −logσ(β·(Δ − γ)).</summary>
    MergeMixCode,
}

/// <summary>
/// Per-pair reward statistics, as TRL logs them. Every tensor is [B]; the caller owns (disposes) them.
/// </summary>
/// <param name="Chosen">Implicit reward of the chosen answer: β(S(w) − S_ref(w)) for DPO, β·A(w) for SimPO.</param>
/// <param name="Rejected">Implicit reward of the rejected answer, defined like <paramref name="Chosen"/>.</param>
/// <param name="Margins">Chosen − Rejected.</param>
/// <param name="Accuracies">1 where Chosen &gt; Rejected (strictly, so a tie counts 0), else 0.</param>
public sealed record PreferenceRewards(Tensor Chosen, Tensor Rejected, Tensor Margins, Tensor Accuracies) : IDisposable
{
    /// <summary>Disposes the four tensors.</summary>
    public void Dispose()
    {
        Chosen.Dispose(); Rejected.Dispose(); Margins.Dispose(); Accuracies.Dispose();
    }
}

/// <summary>
/// Pairwise preference losses (DPO family, IPO, hinge, SimPO and MergeMix's mixed SimPO).
/// </summary>
/// <remarks>
/// Inputs are per-sequence values [B] (S = summed response log-probs, A = S / |y| length-averaged log-probs, see
/// <see cref="SequenceLogProbs"/>); every loss returns the per-pair loss [B], to be reduced with <see cref="Mean"/>.
/// All sigmoid losses are written with libtorch's log_sigmoid (−logσ(z) = softplus(−z)), which stays finite for |z| in
/// the hundreds where log(sigmoid(z)) overflows in fp32 (TorchSharp's softplus would make temporary Scalars of its β
/// and threshold: see <see cref="Runtime.Scalars"/>). Reference log-probs should come from a frozen model (or be precomputed):
/// these functions do not detach them, so a reference that requires grad would receive gradient.
/// </remarks>
public static class PreferenceLosses
{
    /// <summary>DPO "logits" h = [S(w) − S_ref(w)] − [S(l) − S_ref(l)], per pair.</summary>
    public static Tensor DpoLogits(Tensor policyChosen, Tensor policyRejected, Tensor referenceChosen, Tensor referenceRejected)
    {
        CheckSameShape(policyChosen, policyRejected, nameof(policyRejected));
        CheckSameShape(policyChosen, referenceChosen, nameof(referenceChosen));
        CheckSameShape(policyChosen, referenceRejected, nameof(referenceRejected));
        using var scope = NewDisposeScope();
        return ((policyChosen - referenceChosen) - (policyRejected - referenceRejected)).MoveToOuterDisposeScope();
    }

    /// <summary>DPO sigmoid loss (Rafailov et al., Eq. 7): −logσ(β·h).</summary>
    public static Tensor Dpo(Tensor policyChosen, Tensor policyRejected, Tensor referenceChosen, Tensor referenceRejected, double beta)
    {
        CheckBeta(beta);
        using var scope = NewDisposeScope();
        using var b = beta.ToScalar();
        var h = DpoLogits(policyChosen, policyRejected, referenceChosen, referenceRejected);
        return h.mul(b).log_sigmoid().neg().MoveToOuterDisposeScope();
    }

    /// <summary>
    /// Conservative DPO (label smoothing ε, the fraction of flipped labels): −(1−ε)·logσ(βh) − ε·logσ(−βh).
    /// ε = 0 is plain DPO.
    /// </summary>
    public static Tensor ConservativeDpo(Tensor policyChosen, Tensor policyRejected, Tensor referenceChosen, Tensor referenceRejected,
        double beta, double labelSmoothing)
    {
        CheckBeta(beta);
        CheckLabelSmoothing(labelSmoothing);
        using var scope = NewDisposeScope();
        using var b = beta.ToScalar();
        using var keep = (1 - labelSmoothing).ToScalar();
        using var flip = labelSmoothing.ToScalar();
        var z = DpoLogits(policyChosen, policyRejected, referenceChosen, referenceRejected).mul(b);
        return z.log_sigmoid().mul(keep).add(z.neg().log_sigmoid().mul(flip), Scalars.One).neg().MoveToOuterDisposeScope();
    }

    /// <summary>
    /// Robust DPO (TRL <c>robust</c>): [−(1−ε)·logσ(βh) + ε·logσ(−βh)] / (1 − 2ε), an unbiased loss under label noise ε.
    /// </summary>
    public static Tensor RobustDpo(Tensor policyChosen, Tensor policyRejected, Tensor referenceChosen, Tensor referenceRejected,
        double beta, double labelSmoothing)
    {
        CheckBeta(beta);
        CheckLabelSmoothing(labelSmoothing);
        using var scope = NewDisposeScope();
        using var b = beta.ToScalar();
        using var keep = (1 - labelSmoothing).ToScalar();
        using var flip = labelSmoothing.ToScalar();
        using var unbias = (1 - 2 * labelSmoothing).ToScalar();
        var z = DpoLogits(policyChosen, policyRejected, referenceChosen, referenceRejected).mul(b);
        return z.neg().log_sigmoid().mul(flip).sub(z.log_sigmoid().mul(keep)).div(unbias).MoveToOuterDisposeScope();
    }

    /// <summary>Hinge loss (SLiC / RSO): max(0, 1 − β·h); β is the inverse margin.</summary>
    public static Tensor Hinge(Tensor policyChosen, Tensor policyRejected, Tensor referenceChosen, Tensor referenceRejected, double beta)
    {
        CheckBeta(beta);
        using var scope = NewDisposeScope();
        using var b = beta.ToScalar();
        var h = DpoLogits(policyChosen, policyRejected, referenceChosen, referenceRejected);
        return relu(Scalars.OneMinus(h.mul(b))).MoveToOuterDisposeScope();
    }

    /// <summary>IPO on summed log-probs (DPO repository): (h − 1/(2β))², β playing the role of τ.</summary>
    public static Tensor Ipo(Tensor policyChosen, Tensor policyRejected, Tensor referenceChosen, Tensor referenceRejected, double beta)
    {
        CheckBeta(beta);
        using var scope = NewDisposeScope();
        using var target = (1.0 / (2 * beta)).ToScalar();
        var h = DpoLogits(policyChosen, policyRejected, referenceChosen, referenceRejected);
        return h.sub(target).pow(Scalars.Two).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// IPO as TRL computes it: each log-ratio is divided by its own response token count before the difference,
    /// (Δ_w/|w| − Δ_l/|l| − 1/(2β))². Token counts are clamped to at least 1 so an empty response cannot give NaN.
    /// </summary>
    public static Tensor IpoTokenNormalized(Tensor policyChosen, Tensor policyRejected, Tensor referenceChosen, Tensor referenceRejected,
        Tensor chosenTokenCount, Tensor rejectedTokenCount, double beta)
    {
        CheckBeta(beta);
        CheckSameShape(policyChosen, chosenTokenCount, nameof(chosenTokenCount));
        CheckSameShape(policyChosen, rejectedTokenCount, nameof(rejectedTokenCount));
        using var scope = NewDisposeScope();
        using var target = (1.0 / (2 * beta)).ToScalar();
        var chosenRatio = (policyChosen - referenceChosen) / chosenTokenCount.to_type(policyChosen.dtype).clamp_min(Scalars.One);
        var rejectedRatio = (policyRejected - referenceRejected) / rejectedTokenCount.to_type(policyChosen.dtype).clamp_min(Scalars.One);
        return (chosenRatio - rejectedRatio).sub(target).pow(Scalars.Two).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// SimPO, paper convention: −logσ(β·A(w) − β·A(l) − γ), on length-averaged log-probs, with no reference model.
    /// γ is the absolute margin (the official code's <c>gamma_beta_ratio</c> equals γ/β).
    /// </summary>
    /// <param name="chosenAverage">A(w) [B].</param>
    /// <param name="rejectedAverage">A(l) [B].</param>
    /// <param name="beta">β &gt; 0.</param>
    /// <param name="gamma">Absolute margin γ.</param>
    /// <param name="labelSmoothing">ε ∈ [0, 0.5) of the official code's smoothed form −(1−ε)logσ(z) − ε·logσ(−z); 0 = the paper's loss.</param>
    public static Tensor SimPo(Tensor chosenAverage, Tensor rejectedAverage, double beta, double gamma, double labelSmoothing = 0)
    {
        CheckBeta(beta);
        if (!double.IsFinite(gamma))
            throw new ArgumentOutOfRangeException(nameof(gamma), gamma, "gamma must be a finite number.");
        CheckLabelSmoothing(labelSmoothing);
        CheckSameShape(chosenAverage, rejectedAverage, nameof(rejectedAverage));
        using var scope = NewDisposeScope();
        using var b = beta.ToScalar();
        using var g = gamma.ToScalar();
        var z = (chosenAverage - rejectedAverage).mul(b).sub(g);
        return Smoothed(z, labelSmoothing).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// Length-normalised DPO (TRL <c>sigmoid_norm</c>, Tulu 3): −logσ(β[(S(w) − S_ref(w))/|w| − (S(l) − S_ref(l))/|l|]),
    /// token counts clamped to at least 1.
    /// </summary>
    public static Tensor DpoLengthNormalized(Tensor policyChosen, Tensor policyRejected, Tensor referenceChosen, Tensor referenceRejected,
        Tensor chosenTokenCount, Tensor rejectedTokenCount, double beta)
    {
        CheckBeta(beta);
        CheckSameShape(policyChosen, chosenTokenCount, nameof(chosenTokenCount));
        CheckSameShape(policyChosen, rejectedTokenCount, nameof(rejectedTokenCount));
        using var scope = NewDisposeScope();
        var h = NormalizedDpoLogits(policyChosen, policyRejected, referenceChosen, referenceRejected, chosenTokenCount, rejectedTokenCount);
        using var b = beta.ToScalar();
        return h.mul(b).log_sigmoid().neg().MoveToOuterDisposeScope();
    }

    /// <summary>Per-token DPO "logits" Δ_w/|w| − Δ_l/|l| (IPO as TRL writes it, and <see cref="DpoLengthNormalized"/>).</summary>
    public static Tensor NormalizedDpoLogits(Tensor policyChosen, Tensor policyRejected, Tensor referenceChosen, Tensor referenceRejected,
        Tensor chosenTokenCount, Tensor rejectedTokenCount)
    {
        CheckSameShape(policyChosen, policyRejected, nameof(policyRejected));
        CheckSameShape(policyChosen, referenceChosen, nameof(referenceChosen));
        CheckSameShape(policyChosen, referenceRejected, nameof(referenceRejected));
        CheckSameShape(policyChosen, chosenTokenCount, nameof(chosenTokenCount));
        CheckSameShape(policyChosen, rejectedTokenCount, nameof(rejectedTokenCount));
        using var scope = NewDisposeScope();
        using var one = 1.0.ToScalar();
        var chosenRatio = (policyChosen - referenceChosen) / chosenTokenCount.to_type(policyChosen.dtype).clamp_min(one);
        var rejectedRatio = (policyRejected - referenceRejected) / rejectedTokenCount.to_type(policyChosen.dtype).clamp_min(one);
        return (chosenRatio - rejectedRatio).MoveToOuterDisposeScope();
    }

    // −(1−ε)·logσ(z) − ε·logσ(−z); ε = 0 is −logσ(z).
    private static Tensor Smoothed(Tensor z, double labelSmoothing)
    {
        if (labelSmoothing == 0) return z.log_sigmoid().neg();
        using var keep = (1 - labelSmoothing).ToScalar();
        using var flip = labelSmoothing.ToScalar();
        return z.log_sigmoid().mul(keep).add(z.neg().log_sigmoid().mul(flip), Scalars.One).neg();
    }

    /// <summary>
    /// Mixed SimPO (MergeMix): SimPO with the margin γ = 1 − λ, where λ ∈ [0, 1] is the share of the raw image kept
    /// in the mixed (rejected) image, so a loser close to the raw image gets a small margin.
    /// </summary>
    /// <param name="chosenAverage">A(w) [B]: averaged log-probs of the answer given the raw image.</param>
    /// <param name="rejectedAverage">A(l) [B]: averaged log-probs of the same answer given the mixed image.</param>
    /// <param name="beta">β &gt; 0 (MergeMix uses 1).</param>
    /// <param name="lambda">λ for every pair.</param>
    /// <param name="convention">Whether γ is added outside β (<see cref="SimPoConvention.Paper"/>) or inside (<see cref="SimPoConvention.MergeMixCode"/>).</param>
    public static Tensor MixedSimPo(Tensor chosenAverage, Tensor rejectedAverage, double beta, double lambda, SimPoConvention convention)
    {
        CheckLambda(lambda);
        using var scope = NewDisposeScope();
        using var value = lambda.ToScalar();
        var lambdas = full_like(chosenAverage, value);
        return MixedSimPo(chosenAverage, rejectedAverage, beta, lambdas, convention).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// Mixed SimPO with one λ per pair (<paramref name="lambda"/> is [B], values in [0, 1]); see the scalar overload.
    /// </summary>
    public static Tensor MixedSimPo(Tensor chosenAverage, Tensor rejectedAverage, double beta, Tensor lambda, SimPoConvention convention)
    {
        CheckBeta(beta);
        CheckSameShape(chosenAverage, rejectedAverage, nameof(rejectedAverage));
        CheckSameShape(chosenAverage, lambda, nameof(lambda));
        if (lambda.numel() > 0)
        {
            double min = lambda.min().ToDouble(), max = lambda.max().ToDouble();
            if (!(min >= 0 && max <= 1))
                throw new ArgumentOutOfRangeException(nameof(lambda), $"[{min}, {max}]", "every lambda must lie in [0, 1].");
        }
        using var scope = NewDisposeScope();
        using var b = beta.ToScalar();
        var gamma = Scalars.OneMinus(lambda.to_type(chosenAverage.dtype));
        var delta = chosenAverage - rejectedAverage;
        var z = convention switch
        {
            SimPoConvention.Paper => delta.mul(b) - gamma,
            SimPoConvention.MergeMixCode => (delta - gamma).mul(b),
            _ => throw new ArgumentOutOfRangeException(nameof(convention), convention, "unknown SimPoConvention."),
        };
        return z.log_sigmoid().neg().MoveToOuterDisposeScope();
    }

    /// <summary>
    /// Adds a supervised term to a reduced preference loss: rankWeight·rank + sftWeight·nll. MergeMix uses
    /// (CE + rank)/2, i.e. both weights 0.5; TRL's RPO uses rankWeight 1 and sftWeight α.
    /// </summary>
    public static Tensor WithSft(Tensor rankLoss, Tensor nll, double rankWeight, double sftWeight)
    {
        if (!(rankWeight >= 0) || double.IsInfinity(rankWeight))
            throw new ArgumentOutOfRangeException(nameof(rankWeight), rankWeight, "rankWeight must be finite and ≥ 0.");
        if (!(sftWeight >= 0) || double.IsInfinity(sftWeight))
            throw new ArgumentOutOfRangeException(nameof(sftWeight), sftWeight, "sftWeight must be finite and ≥ 0.");
        using var scope = NewDisposeScope();
        using var rank = rankWeight.ToScalar();
        using var sft = sftWeight.ToScalar();
        return rankLoss.mul(rank).add(nll.mul(sft), Scalars.One).MoveToOuterDisposeScope();
    }

    /// <summary>Batch mean of a per-pair loss [B] (a scalar tensor).</summary>
    public static Tensor Mean(Tensor perPairLoss)
    {
        if (perPairLoss.numel() == 0)
            throw new ArgumentException("perPairLoss is empty; a preference batch needs at least one pair.", nameof(perPairLoss));
        return perPairLoss.mean();
    }

    /// <summary>
    /// DPO implicit rewards as TRL logs them: chosen = β(S(w) − S_ref(w)), rejected = β(S(l) − S_ref(l)).
    /// Computed without gradient.
    /// </summary>
    public static PreferenceRewards DpoRewards(Tensor policyChosen, Tensor policyRejected, Tensor referenceChosen, Tensor referenceRejected, double beta)
    {
        CheckBeta(beta);
        CheckSameShape(policyChosen, policyRejected, nameof(policyRejected));
        CheckSameShape(policyChosen, referenceChosen, nameof(referenceChosen));
        CheckSameShape(policyChosen, referenceRejected, nameof(referenceRejected));
        using var noGrad = no_grad();
        using var scope = NewDisposeScope();
        using var b = beta.ToScalar();
        return Rewards((policyChosen - referenceChosen).mul(b), (policyRejected - referenceRejected).mul(b));
    }

    /// <summary>SimPO / CPO rewards: β·A(w) and β·A(l) on averaged log-probs (no reference). Computed without gradient.</summary>
    public static PreferenceRewards SimPoRewards(Tensor chosenAverage, Tensor rejectedAverage, double beta)
    {
        CheckBeta(beta);
        CheckSameShape(chosenAverage, rejectedAverage, nameof(rejectedAverage));
        using var noGrad = no_grad();
        using var scope = NewDisposeScope();
        using var b = beta.ToScalar();
        return Rewards(chosenAverage.mul(b), rejectedAverage.mul(b));
    }

    private static PreferenceRewards Rewards(Tensor chosen, Tensor rejected)
    {
        var margins = chosen - rejected;
        var accuracies = chosen.gt(rejected).to_type(chosen.dtype);
        return new PreferenceRewards(chosen.MoveToOuterDisposeScope(), rejected.MoveToOuterDisposeScope(),
            margins.MoveToOuterDisposeScope(), accuracies.MoveToOuterDisposeScope());
    }

    internal static void CheckBeta(double beta, string name = "beta")
    {
        if (!(beta > 0) || double.IsInfinity(beta))
            throw new ArgumentOutOfRangeException(name, beta,
                $"{name} must be a finite number > 0 (β = 0 freezes the loss at ln 2; typical: DPO 0.1, SimPO 2, MergeMix 1).");
    }

    internal static void CheckLabelSmoothing(double labelSmoothing, string name = "labelSmoothing")
    {
        if (!(labelSmoothing >= 0 && labelSmoothing < 0.5))
            throw new ArgumentOutOfRangeException(name, labelSmoothing,
                $"{name} (ε, the assumed fraction of flipped labels) must lie in [0, 0.5).");
    }

    internal static void CheckLambda(double lambda, string name = "lambda")
    {
        if (!(lambda >= 0 && lambda <= 1))
            throw new ArgumentOutOfRangeException(name, lambda, $"{name} (share of the raw image kept in the mix) must lie in [0, 1].");
    }

    private static void CheckSameShape(Tensor reference, Tensor other, string name)
    {
        if (reference.dim() != 1)
            throw new ArgumentException($"per-sequence values must be 1-D [B], got shape [{string.Join(", ", reference.shape)}].");
        if (!reference.shape.SequenceEqual(other.shape))
            throw new ArgumentException(
                $"{name} has shape [{string.Join(", ", other.shape)}], expected [{string.Join(", ", reference.shape)}] like the chosen values.", name);
    }
}
