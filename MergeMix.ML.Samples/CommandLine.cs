using System.Globalization;

namespace MergeMix.ML.Samples;

/// <summary>Dispatches the sample commands; every command runs on the embedded synthetic set unless --data is given.</summary>
internal static class CommandLine
{
    public const string Usage = """
        MergeMix.ML samples

          (no command) | demo     MergeMix in an ML.NET pipeline on the embedded synthetic set: train, evaluate,
                                  predict, save/load, and PNG grids of every mixer.
                                  [--out DIR] [--epochs N] [--train N] [--test N]
          grids                   PNG grid (original | partner | mask | mixed, λ) for every mixer.
                                  [--data CIFAR_FOLDER] [--model CLASSIFIER.zip] [--out DIR]
          bench                   Accuracy / calibration / occlusion table of the mixers (CSV, Markdown, PNG).
                                  [--data CIFAR_FOLDER] [--preset smoke|cifar10-small|cifar10-2k-long]
                                  [--methods all|a,b,... (the mixers and none-2x, none for twice the epochs)]
                                  [--seeds N] [--out DIR] [--resume (also: share DIR between processes)]
                                  [--epochs N] [--threads N] [--rand-augment on|off] [--bf16-linear on|off] [--validation-only]
                                  MergeMix runs: [--base-loss clean|mixup|none] [--attention-direction cls-query|cls-key]
                                  [--attention-layer N] [--lambda-scale on|off] [--merge-in-training on|off]
                                  [--ablations (the MergeMix ablation table instead of --methods)]
                                  [--report (only rewrite the report and charts from the CSVs in --out)]
          speed                   Images/s of MergeMix vs Mixup mixing and the ToMe forward speed-up.
                                  [--batch N] [--iterations N] [--out DIR]
          stepcost                Cost of one training step of the cifar10-small ViT: plain, Mixup and MergeMix (clean
                                  pass / separate pass / ToMe in training / no base loss), interleaved in one process;
                                  ratios to Mixup, images/s, GFLOP/s against the fp32 matmul ceiling, time per phase.
                                  [--threads N] [--batch N] [--rounds N] [--steps N] [--out DIR]
                                  [--variants all|a,b,...] [--allocator keep|default] [--compare-threads N]
          align                   Preference alignment experiment: SFT vs SFT + mixed SimPO (MergeMix, Mixup,
                                  CutMix pairs) vs SFT + DPO / RPO, plus a speed/memory benchmark.
                                  [--out DIR] [--train N] [--test N] [--pretrain N] [--pretrain-epochs N]
                                  [--sft-epochs N] [--pref-epochs N] [--seed N] [--threads N]
                                  [--bench (benchmark only)] [--no-bench] [--bench-steps N]
          align-prior             The alignment experiment that can separate the methods: shape-correlated scene
                                  attributes, SFT to a validation plateau, equal extra steps for CE / SimPO / mixed
                                  SimPO (MergeMix, Mixup, CutMix, ResizeMix) / DPO / RPO, several seeds, scored on an
                                  in-distribution and a counter-prior split. Resumable.
                                  [--out DIR] [--seeds N] [--train N] [--val N] [--test N] [--prior P] [--pretrain N]
                                  [--pretrain-epochs N] [--max-sft-epochs N] [--patience N] [--min-delta X]
                                  [--extra-epochs N] [--threads N] [--resume] [--first-seed N] [--variants a,b]
          stress                  TorchSharp Scalar race check: trainer, mixer and preference fits, each in a child
                                  process, while a thread runs GC.Collect + WaitForPendingFinalizers; counts crashes.
                                  [--workload all|trainer,mixer,preference] [--fits N] [--fits-per-child N]
                                  [--min-steps N] [--seed N] [--threads N] [--out DIR] [--csv NAME]
                                  [--overhead [--reps N]] (KeptAliveAdamW vs TorchSharp's AdamW step time)
          finetune                Few-shot training on new classes from scratch vs from a checkpoint file (yours with
                                  --weights, timm/HF safetensors or .bin; else one pretrained here on the other classes).
                                  [--data CIFAR_FOLDER] [--weights FILE --heads N [--norm imagenet|half]] [--out DIR]
                                  [--per-class N] [--epochs N] [--pretrain-epochs N] [--threads N] [--seed N]
          soak                    Managed and native memory (soak.csv, soak.png) over a long run of the
                                  cifar10-small model on synthetic scenes, sampled every --every steps.
                                  [--steps N] [--every N] [--batch N] [--mixer NAME] [--threads N] [--out DIR] [--resume] [--report]
        """;

    /// <summary>
    /// The command a report names so that a reader can rerun it: <paramref name="args"/> (the command and its
    /// options, as given) after the README's <c>dotnet run</c> prefix.
    /// </summary>
    public static string Rerun(IEnumerable<string> args) => "dotnet run -c Release --project MergeMix.ML.Samples -- " + string.Join(" ", args);

    /// <summary>This process's own command line as <see cref="Rerun"/> writes it.</summary>
    public static string RerunThisProcess() => Rerun(Environment.GetCommandLineArgs().Skip(1));

    public static async Task<int> RunAsync(string[] args)
    {
        try
        {
            var command = args.Length > 0 && !args[0].StartsWith("--", StringComparison.Ordinal) ? args[0] : "demo";
            var options = Options.Parse(args.SkipWhile(a => a == command).ToArray());
            switch (command)
            {
                case "demo": await Task.Run(() => DemoCommand.Run(options)); return 0;
                case "grids": GridsCommand.Run(options); return 0;
                case "bench": BenchCommand.Run(options); return 0;
                case "speed": SpeedCommand.Run(options); return 0;
                case "stepcost": StepCostCommand.Run(options); return 0;
                case "align": AlignCommand.Run(options); return 0;
                case "align-prior": AlignPriorCommand.Run(options); return 0;
                case "stress": StressCommand.Run(options); return 0;
                case "finetune": FineTuneCommand.Run(options); return 0;
                case "soak": SoakCommand.Run(options); return 0;
                case "help" or "--help" or "-h": Console.WriteLine(Usage); return 0;
                default:
                    Console.Error.WriteLine($"Unknown command '{command}'.");
                    Console.Error.WriteLine(Usage);
                    return 2;
            }
        }
        catch (ArgumentException ex)
        {
            Console.Error.WriteLine($"error: {ex.Message}");
            return 2;
        }
    }
}

/// <summary>--name value pairs.</summary>
internal sealed class Options
{
    private readonly Dictionary<string, string> _values;

    private Options(Dictionary<string, string> values) => _values = values;

    public static Options Parse(string[] args)
    {
        var values = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
        for (int i = 0; i < args.Length; i++)
        {
            if (!args[i].StartsWith("--", StringComparison.Ordinal))
                throw new ArgumentException($"Unexpected argument '{args[i]}'; options look like --name value.");
            string name = args[i][2..];
            values[name] = i + 1 < args.Length && !args[i + 1].StartsWith("--", StringComparison.Ordinal) ? args[++i] : "true";
        }
        return new Options(values);
    }

    public string? Get(string name) => _values.TryGetValue(name, out var v) ? v : null;

    public string Get(string name, string fallback) => Get(name) ?? fallback;

    public int GetInt(string name, int fallback)
    {
        var text = Get(name);
        if (text is null) return fallback;
        return int.TryParse(text, NumberStyles.Integer, CultureInfo.InvariantCulture, out int value)
            ? value
            : throw new ArgumentException($"--{name} expects an integer, got '{text}'.");
    }

    public double GetDouble(string name, double fallback)
    {
        var text = Get(name);
        if (text is null) return fallback;
        return double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out double value) && double.IsFinite(value)
            ? value
            : throw new ArgumentException($"--{name} expects a number, got '{text}'.");
    }

    public string OutputFolder()
    {
        var folder = Path.GetFullPath(Get("out", "out"));
        Directory.CreateDirectory(folder);
        return folder;
    }
}
