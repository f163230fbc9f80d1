using MergeMix.ML.Classification;
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
            MergeMixBaseLoss = ParseBaseLoss(options.Get("base-loss", "clean")),
            Epochs = options.Get("epochs") is null ? null : options.GetInt("epochs", 0),
            Threads = options.Get("threads") is null ? null : options.GetInt("threads", 0),
            CommandLine = "dotnet run -c Release --project MergeMix.ML.Samples -- " + string.Join(" ", Environment.GetCommandLineArgs().Skip(1)),
        };
        BenchRunner.Run(settings, Console.Out);
    }

    private static MergeMixBaseLoss ParseBaseLoss(string text) => text.Trim().ToLowerInvariant() switch
    {
        "clean" => MergeMixBaseLoss.Clean,
        "mixup" => MergeMixBaseLoss.Mixup,
        "none" => MergeMixBaseLoss.None,
        _ => throw new ArgumentException($"--base-loss expects clean (paper), mixup (reference code) or none, got '{text}'."),
    };
}
