using System.Globalization;

namespace MergeMix.ML.Samples.Bench;

/// <summary>The test-set results of one method × seed (one row of <c>bench-&lt;preset&gt;.csv</c>).</summary>
/// <param name="Method">Mixing policy name.</param>
/// <param name="Seed">Training seed.</param>
/// <param name="Epochs">Epochs trained.</param>
/// <param name="BestEpoch">Epoch (1-based) with the best validation top-1, whose weights give the test numbers.</param>
/// <param name="ValidationTop1">Validation top-1 of that epoch.</param>
/// <param name="Top1">Test top-1 of the selected weights, ToMe off.</param>
/// <param name="Top1Final">Test top-1 of the last epoch's weights, ToMe off (to show what the selection changed).</param>
/// <param name="LogLoss">Test log-loss, ToMe off.</param>
/// <param name="Ece">Test expected calibration error (15 bins), ToMe off.</param>
/// <param name="Top1Tome">Test top-1 with ToMe at inference.</param>
/// <param name="EceTome">Test ECE with ToMe at inference.</param>
/// <param name="ImagesPerSecond">Inference throughput, ToMe off.</param>
/// <param name="ImagesPerSecondTome">Inference throughput, ToMe on.</param>
/// <param name="TrainSecondsPerEpoch">Mean wall time of an epoch's training steps (validation excluded).</param>
/// <param name="Occlusion">Test top-1 per occlusion fraction of <see cref="BenchResults.OcclusionFractions"/>, ToMe off.</param>
public sealed record BenchRow(string Method, int Seed, int Epochs, int BestEpoch, double ValidationTop1, double Top1, double Top1Final,
    double LogLoss, double Ece, double Top1Tome, double EceTome, double ImagesPerSecond, double ImagesPerSecondTome,
    double TrainSecondsPerEpoch, IReadOnlyList<double> Occlusion);

/// <summary>One epoch of one method × seed (one row of <c>bench-&lt;preset&gt;-epochs.csv</c>).</summary>
/// <param name="Method">Mixing policy name.</param>
/// <param name="Seed">Training seed.</param>
/// <param name="Epoch">1-based epoch.</param>
/// <param name="TrainLoss">Mean training loss.</param>
/// <param name="Seconds">Wall time of the epoch's training steps.</param>
/// <param name="ValidationTop1">Validation top-1 after the epoch.</param>
/// <param name="ValidationLogLoss">Validation log-loss after the epoch.</param>
/// <param name="ValidationEce">Validation ECE after the epoch.</param>
public sealed record BenchEpochRow(string Method, int Seed, int Epoch, double TrainLoss, double Seconds,
    double ValidationTop1, double ValidationLogLoss, double ValidationEce);

/// <summary>Reading and appending the benchmark's CSV files (invariant culture, comma-separated, one header line).</summary>
public static class BenchResults
{
    /// <summary>The occlusion fractions of every preset: 0, 10, …, 90 % of the patches.</summary>
    public static IReadOnlyList<double> OcclusionFractions => MergeMix.ML.Classification.Occlusion.PaperFractions;

    /// <summary>Header of the results CSV.</summary>
    public static IReadOnlyList<string> Columns { get; } = new[]
    {
        "method", "seed", "epochs", "best_epoch", "val_top1", "top1", "top1_final", "log_loss", "ece", "top1_tome", "ece_tome",
        "img_per_s", "img_per_s_tome", "train_s_per_epoch",
    }.Concat(OcclusionFractions.Select(f => $"occ_{Math.Round(f * 100).ToString(CultureInfo.InvariantCulture)}")).ToArray();

    /// <summary>Header of the per-epoch CSV.</summary>
    public static IReadOnlyList<string> EpochColumns { get; } = new[]
        { "method", "seed", "epoch", "train_loss", "seconds", "val_top1", "val_log_loss", "val_ece" };

    /// <summary>Creates (or empties) both CSV files, writing only their headers.</summary>
    public static void Create(string resultsPath, string epochsPath)
    {
        File.WriteAllText(resultsPath, string.Join(",", Columns) + "\n");
        File.WriteAllText(epochsPath, string.Join(",", EpochColumns) + "\n");
    }

    /// <summary>Creates (or empties) a per-epoch CSV, writing only its header.</summary>
    public static void CreateEpochs(string epochsPath) => File.WriteAllText(epochsPath, string.Join(",", EpochColumns) + "\n");

    /// <summary>Appends the epochs of one run to a per-epoch CSV.</summary>
    public static void AppendEpochs(string epochsPath, IReadOnlyList<BenchEpochRow> epochs) =>
        File.AppendAllLines(epochsPath, epochs.Select(e => Join(e.Method, e.Seed, e.Epoch, e.TrainLoss, e.Seconds, e.ValidationTop1, e.ValidationLogLoss, e.ValidationEce)));

    /// <summary>
    /// Holds the lock file of an output folder until disposed, so that processes sharing the folder read and write its
    /// CSV files one at a time; waits while another process holds it.
    /// </summary>
    public static IDisposable Lock(string folder)
    {
        var path = Path.Combine(folder, "checkpoints", ".lock");
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        for (int attempt = 0; ; attempt++)
        {
            try
            {
                // FileShare.None takes an exclusive advisory lock (flock) on Unix and a share lock on Windows.
                return new FileStream(path, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
            }
            catch (IOException) when (attempt < 6_000)
            {
                Thread.Sleep(100);
            }
        }
    }

    /// <summary>
    /// Claims the run whose checkpoint folder is <paramref name="checkpoint"/> for this process (call under
    /// <see cref="Lock"/>): false when a live other process holds it; a dead claimant's run is taken over.
    /// </summary>
    public static bool TryClaim(string checkpoint)
    {
        Directory.CreateDirectory(checkpoint);
        var owner = Path.Combine(checkpoint, "owner.pid");
        int self = Environment.ProcessId;
        if (File.Exists(owner) && int.TryParse(File.ReadAllText(owner).Trim(), NumberStyles.Integer, CultureInfo.InvariantCulture, out int pid) && pid != self && IsAlive(pid))
            return false;
        File.WriteAllText(owner, self.ToString(CultureInfo.InvariantCulture));
        return true;
    }

    private static bool IsAlive(int pid)
    {
        try
        {
            using var process = System.Diagnostics.Process.GetProcessById(pid);
            return !process.HasExited;
        }
        catch (ArgumentException)
        {
            return false;
        }
    }

    /// <summary>
    /// Appends one finished run: its epochs first, then its result row, so a results row never exists without its
    /// epochs; each write is flushed when the call returns.
    /// </summary>
    public static void Append(string resultsPath, string epochsPath, BenchRow row, IReadOnlyList<BenchEpochRow> epochs)
    {
        File.AppendAllLines(epochsPath, epochs.Select(e => Join(e.Method, e.Seed, e.Epoch, e.TrainLoss, e.Seconds, e.ValidationTop1, e.ValidationLogLoss, e.ValidationEce)));
        var values = new object[] { row.Method, row.Seed, row.Epochs, row.BestEpoch, row.ValidationTop1, row.Top1, row.Top1Final, row.LogLoss, row.Ece,
            row.Top1Tome, row.EceTome, row.ImagesPerSecond, row.ImagesPerSecondTome, row.TrainSecondsPerEpoch }.Concat(row.Occlusion.Cast<object>());
        File.AppendAllLines(resultsPath, new[] { Join(values.ToArray()) });
    }

    /// <summary>
    /// Rewrites both files with exactly <paramref name="rows"/> and their epochs, dropping what an interrupted run left
    /// behind (a torn last line, epochs of a run whose result row was never written).
    /// </summary>
    public static void Rewrite(string resultsPath, string epochsPath, IReadOnlyList<BenchRow> rows, IReadOnlyList<BenchEpochRow> epochs)
    {
        Create(resultsPath, epochsPath);
        foreach (var row in rows)
            Append(resultsPath, epochsPath, row, epochs.Where(e => e.Method == row.Method && e.Seed == row.Seed).ToList());
    }

    /// <summary>Reads a results CSV written by <see cref="Append"/>; a missing file reads as no rows.</summary>
    public static IReadOnlyList<BenchRow> ReadRows(string path)
    {
        var rows = new List<BenchRow>();
        foreach (var v in Records(path, Columns))
        {
            var occlusion = Enumerable.Range(Columns.Count - OcclusionFractions.Count, OcclusionFractions.Count).Select(i => Number(v, i)).ToArray();
            rows.Add(new BenchRow(v[0], Integer(v, 1), Integer(v, 2), Integer(v, 3), Number(v, 4), Number(v, 5), Number(v, 6), Number(v, 7), Number(v, 8),
                Number(v, 9), Number(v, 10), Number(v, 11), Number(v, 12), Number(v, 13), occlusion));
        }
        return rows;
    }

    /// <summary>Reads a per-epoch CSV written by <see cref="Append"/>; a missing file reads as no rows.</summary>
    public static IReadOnlyList<BenchEpochRow> ReadEpochs(string path) =>
        Records(path, EpochColumns)
            .Select(v => new BenchEpochRow(v[0], Integer(v, 1), Integer(v, 2), Number(v, 3), Number(v, 4), Number(v, 5), Number(v, 6), Number(v, 7)))
            .ToList();

    private static IEnumerable<string[]> Records(string path, IReadOnlyList<string> columns)
    {
        if (!File.Exists(path)) return Array.Empty<string[]>();
        var lines = File.ReadAllText(path).Split('\n').ToList();
        // Every finished line ends with a newline; text after the last one is a write torn by an interrupted run.
        lines.RemoveAt(lines.Count - 1);
        if (lines.Count == 0 || lines[0] != string.Join(",", columns))
            throw new InvalidDataException($"'{path}' does not start with the expected header '{string.Join(",", columns)}'; move it away or run without --resume.");
        var records = new List<string[]>();
        for (int i = 1; i < lines.Count; i++)
        {
            var values = lines[i].Split(',');
            if (values.Length != columns.Count)
                throw new InvalidDataException($"'{path}' line {i + 1} has {values.Length} values, expected {columns.Count}.");
            records.Add(values);
        }
        return records;
    }

    private static string Join(params object[] values) =>
        string.Join(",", values.Select(v => v switch
        {
            double d => d.ToString("R", CultureInfo.InvariantCulture),
            IFormattable f => f.ToString(null, CultureInfo.InvariantCulture),
            _ => v.ToString(),
        }));

    private static double Number(string[] values, int index) => double.Parse(values[index], NumberStyles.Float, CultureInfo.InvariantCulture);

    private static int Integer(string[] values, int index) => int.Parse(values[index], NumberStyles.Integer, CultureInfo.InvariantCulture);
}
