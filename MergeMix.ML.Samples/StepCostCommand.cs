using MergeMix.ML.Samples.Bench;

namespace MergeMix.ML.Samples;

/// <summary>
/// <c>stepcost</c>: the cost of one training step of the cifar10-small ViT per configuration (plain, Mixup, MergeMix
/// with and without ToMe in training), side by side in one process (see <see cref="StepCost"/>).
/// </summary>
internal static class StepCostCommand
{
    public static void Run(Options options)
    {
        var settings = new StepCostSettings
        {
            Threads = options.GetInt("threads", 1),
            Batch = options.GetInt("batch", 128),
            Rounds = options.GetInt("rounds", 5),
            Steps = options.GetInt("steps", 3),
            CompareThreads = options.Get("compare-threads") is null ? null : options.GetInt("compare-threads", 0),
            OutputFolder = options.Get("out", Path.Combine("out", "step-cost")),
            CommandLine = CommandLine.RerunThisProcess(),
        };
        if (options.Get("variants") is string names)
            settings.Variants = names == "all" ? StepCost.VariantNames : names.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        settings.KeepNativeMemory = options.Get("allocator", "keep") switch
        {
            "keep" => true,
            "default" => false,
            var other => throw new ArgumentException($"--allocator expects keep (the trainer's default) or default (glibc's), got '{other}'."),
        };
        settings.Validate();
        Console.WriteLine(StepCost.Run(settings, Console.Out));
    }
}
