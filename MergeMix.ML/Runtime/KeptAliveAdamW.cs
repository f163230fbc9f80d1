using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace MergeMix.ML.Runtime;

/// <summary>
/// TorchSharp's AdamW with the same update, state and checkpoint format, but every Scalar it hands to libtorch is
/// kept alive until the call returns.
/// </summary>
/// <remarks>
/// TorchSharp 0.107's <see cref="AdamW.step"/> converts its hyper-parameters to temporary Scalars for every parameter
/// and step (<c>param.mul_(1 - lr * weight_decay)</c>, <c>add_(grad, alpha: 1 - beta1)</c>, ...), about ten per
/// parameter. A Scalar's finalizer can free its native handle while libtorch still reads it, which crashes or corrupts
/// a long training loop at random (README, Known issues); the optimizer is the largest source of such temporaries. The
/// ops and their order are the same as upstream's, so results are bit-identical to <see cref="AdamW"/>, and it is an
/// <see cref="AdamW"/>: parameter groups, <see cref="AdamW.Options"/> (β, ε, amsgrad, maximize, per-group rates),
/// learning-rate schedulers and state_dict work unchanged. Use it in your own TorchSharp training loops in place of
/// <c>torch.optim.AdamW</c>.
/// </remarks>
/// <example>
/// <code>
/// using var model = TorchSharp.torch.nn.Linear(4, 2);
/// using var optimizer = new KeptAliveAdamW(model.parameters(), lr: 1e-3, weightDecay: 0.05);
/// using var inputs = TorchSharp.torch.randn(8, 4);
/// using var targets = TorchSharp.torch.randn(8, 2);
/// for (int step = 0; step &lt; 10; step++)
/// {
///     using var scope = TorchSharp.torch.NewDisposeScope();
///     optimizer.zero_grad();
///     TorchSharp.torch.nn.functional.mse_loss(model.call(inputs), targets).backward();
///     optimizer.step();
/// }
/// </code>
/// </example>
public sealed class KeptAliveAdamW : AdamW
{
    /// <summary>One parameter group with learning rate <paramref name="lr"/> and decoupled weight decay <paramref name="weightDecay"/>; β = (0.9, 0.999), ε = 1e-8, TorchSharp's defaults.</summary>
    public KeptAliveAdamW(IEnumerable<Parameter> parameters, double lr, double weightDecay)
        : base(parameters, lr, weight_decay: weightDecay)
    {
    }

    /// <summary>Parameter groups with options of their own; <paramref name="lr"/> and <paramref name="weightDecay"/> apply to groups that leave them unset.</summary>
    public KeptAliveAdamW(IEnumerable<ParamGroup> groups, double lr, double weightDecay)
        : base(groups, lr, weight_decay: weightDecay)
    {
    }

    /// <inheritdoc/>
    public override Tensor step(Func<Tensor>? closure = null) => _step<ParamGroup>(group =>
    {
        var options = (Options)group.Options;
        double beta1 = options.beta1!.Value, beta2 = options.beta2!.Value, eps = options.eps!.Value;
        double weightDecay = options.weight_decay!.Value, lr = options.LearningRate!.Value;
        bool amsgrad = options.amsgrad!.Value, maximize = options.maximize!.Value;
        using var decay = (1 - lr * weightDecay).ToScalar();
        using var keepFirst = beta1.ToScalar();
        using var newFirst = (1 - beta1).ToScalar();
        using var keepSecond = beta2.ToScalar();
        using var newSecond = (1 - beta2).ToScalar();
        using var epsilon = eps.ToScalar();

        foreach (var param in group.Parameters)
        {
            var state = (State)_state[param.Handle];
            var grad = param.grad;
            if (grad is null) continue;
            if (maximize) grad = grad.neg();
            state.step += 1;

            param.mul_(decay);
            double biasCorrection1 = 1 - Math.Pow(beta1, state.step);
            double biasCorrection2 = 1 - Math.Pow(beta2, state.step);
            using var rootCorrection2 = Math.Sqrt(biasCorrection2).ToScalar();
            using var stepSize = (-(lr / biasCorrection1)).ToScalar();

            state.exp_avg.mul_(keepFirst).add_(grad, newFirst);
            state.exp_avg_sq.mul_(keepSecond).addcmul_(grad, grad, newSecond);
            Tensor denom;
            if (amsgrad)
            {
                var previous = state.max_exp_avg_sq;
                state.max_exp_avg_sq = maximum(previous, state.exp_avg_sq).DetachFromDisposeScope();
                previous.Dispose();
                denom = state.max_exp_avg_sq.sqrt().div(rootCorrection2).add_(epsilon, Scalars.One);
            }
            else
            {
                denom = state.exp_avg_sq.sqrt().div(rootCorrection2).add_(epsilon, Scalars.One);
            }
            param.addcdiv_(state.exp_avg, denom, stepSize);
        }
    }, closure);
}
