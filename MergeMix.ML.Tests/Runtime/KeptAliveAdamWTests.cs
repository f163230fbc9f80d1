using MergeMix.ML.Runtime;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace MergeMix.ML.Tests.Runtime;

[TestClass]
public sealed class KeptAliveAdamWTests
{
    // Same ops in the same order as TorchSharp's AdamW, so training results (and saved optimizer state) do not change.
    // amsgrad and maximize take other branches of the update; both are AdamW.Options a user can set per group.
    [TestMethod]
    [DataRow(false, false)]
    [DataRow(true, false)]
    [DataRow(false, true)]
    public void MatchesTorchSharpAdamWBitForBit(bool amsgrad, bool maximize)
    {
        using var generator = new Generator(7);
        using var inputs = randn(new long[] { 16, 5 }, generator: generator);
        using var targets = randn(new long[] { 16, 3 }, generator: generator);
        var (upstream, upstreamModel) = Build(lr: 0.05, weightDecay: 0.1, amsgrad, maximize, (groups, lr, wd) => new AdamW(groups, lr, weight_decay: wd));
        var (ours, ourModel) = Build(lr: 0.05, weightDecay: 0.1, amsgrad, maximize, (groups, lr, wd) => new KeptAliveAdamW(groups, lr, wd));
        for (int step = 0; step < 5; step++)
        {
            foreach (var (optimizer, model) in new[] { (upstream, upstreamModel), (ours, ourModel) })
            {
                using var scope = NewDisposeScope();
                optimizer.zero_grad();
                nn.functional.mse_loss(model.forward(inputs), targets).backward();
                optimizer.step();
            }
            // The second group changes its rate midway, as the cosine schedule does.
            if (step == 2) { upstream.ParamGroups.Last().LearningRate = 0.01; ours.ParamGroups.Last().LearningRate = 0.01; }
        }
        var (_, initial) = Build(lr: 0.05, weightDecay: 0.1, amsgrad, maximize, (groups, lr, wd) => new AdamW(groups, lr, weight_decay: wd));
        foreach (var (((name, expected), (_, actual)), (_, start)) in upstreamModel.named_parameters().Zip(ourModel.named_parameters()).Zip(initial.named_parameters()))
        {
            Assert.IsTrue(expected.eq(actual).all().item<bool>(), $"{name} differs after 5 steps");
            Assert.IsFalse(start.eq(actual).all().item<bool>(), $"{name} did not move");
        }
        upstream.Dispose(); ours.Dispose(); upstreamModel.Dispose(); ourModel.Dispose();
    }

    private static (AdamW, Linear) Build(double lr, double weightDecay, bool amsgrad, bool maximize, Func<AdamW.ParamGroup[], double, double, AdamW> create)
    {
        using var init = new Generator(3);
        var model = nn.Linear(5, 3);
        using (no_grad())
        {
            model.weight!.normal_(0, 0.5, init);
            model.bias!.normal_(0, 0.5, init);
        }
        var groups = new[]
        {
            new AdamW.ParamGroup(new[] { model.weight! }, new AdamW.Options { LearningRate = lr, weight_decay = weightDecay, amsgrad = amsgrad, maximize = maximize }),
            new AdamW.ParamGroup(new[] { model.bias! }, new AdamW.Options { LearningRate = lr, weight_decay = 0, amsgrad = amsgrad, maximize = maximize }),
        };
        return (create(groups, lr, weightDecay), model);
    }
}
