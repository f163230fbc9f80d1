using MergeMix.ML.Samples.Bench;

namespace MergeMix.ML.Samples;

/// <summary>
/// <c>bench</c>: trains every requested mixing policy × seed on a preset and writes a CSV, a Markdown table and PNG
/// charts (see <see cref="BenchRunner"/>). Without <c>--data</c> it runs on the embedded synthetic shapes.
/// </summary>
internal static class BenchCommand
{
    public static void Run(Options options)
    {
        var data = options.Get("data");
        var settings = new BenchSettings
        {
            Preset = BenchPreset.Find(options.Get("preset", data is null ? BenchPreset.Smoke.Name : BenchPreset.Cifar10Small.Name)),
            DataFolder = data,
            Methods = BenchRunner.ParseMethods(options.Get("methods", "all")),
            Seeds = options.GetInt("seeds", 1),
            OutputFolder = options.Get("out", Path.Combine("out", "bench")),
            Resume = options.Get("resume") is not null,
            MergeMix = new MergeMixVariant
            {
                BaseLoss = MergeMixVariant.ParseBaseLoss(options.Get("base-loss", "clean")),
                Direction = MergeMixVariant.ParseDirection(options.Get("attention-direction", "cls-query")),
                AttentionLayer = options.Get("attention-layer") is null ? null : options.GetInt("attention-layer", 0),
                LambdaScale = options.Get("lambda-scale") is { } lambdaScale && MergeMixVariant.ParseSwitch("lambda-scale", lambdaScale),
                MergeDuringTraining = options.Get("merge-in-training") is { } merge ? MergeMixVariant.ParseSwitch("merge-in-training", merge) : null,
            },
            Ablations = options.Get("ablations") is not null,
            RandAugment = options.Get("rand-augment") is { } randAugment ? MergeMixVariant.ParseSwitch("rand-augment", randAugment) : null,
            BFloat16Linear = options.Get("bf16-linear") is { } bf16 ? MergeMixVariant.ParseSwitch("bf16-linear", bf16) : null,
            ValidationOnly = options.Get("validation-only") is not null,
            ReportOnly = options.Get("report") is not null,
            Epochs = options.Get("epochs") is null ? null : options.GetInt("epochs", 0),
            Threads = options.Get("threads") is null ? null : options.GetInt("threads", 0),
            CommandLine = TrainingCommandLine(Environment.GetCommandLineArgs().Skip(1)),
        };
        BenchRunner.Run(settings, Console.Out);
    }

    /// <summary>
    /// The command a report names: the one that trains its runs. <c>--report</c> only rebuilds the files from the
    /// CSVs, so a report rewritten with it still names the training command, which is what a reader reruns.
    /// </summary>
    public static string TrainingCommandLine(IEnumerable<string> args)
        => CommandLine.Rerun(args.Where(a => a != "--report"));
}
