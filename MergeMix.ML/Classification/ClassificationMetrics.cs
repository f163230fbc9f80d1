namespace MergeMix.ML.Classification;

/// <summary>Accuracy, log-loss and calibration of class-probability predictions.</summary>
/// <param name="Accuracy">Top-1 accuracy in [0, 1].</param>
/// <param name="LogLoss">Mean −ln p(true class), with p clamped at 1e-15 as ML.NET does.</param>
/// <param name="ExpectedCalibrationError">ECE over equal-width confidence bins, in [0, 1].</param>
/// <param name="Count">Number of predictions.</param>
public sealed record ClassificationMetrics(double Accuracy, double LogLoss, double ExpectedCalibrationError, int Count)
{
    /// <summary>
    /// Computes the metrics from row-major probabilities [N, K] and true labels. ECE (Guo et al., 2017):
    /// Σ_b |B_b|/N · |accuracy(B_b) − mean confidence(B_b)|, confidence = max probability, bins (i/B, (i+1)/B].
    /// </summary>
    public static ClassificationMetrics Compute(ReadOnlySpan<float> probabilities, ReadOnlySpan<int> labels, int classCount, int bins = 15)
    {
        if (classCount < 2) throw new ArgumentOutOfRangeException(nameof(classCount), $"Need at least 2 classes, got {classCount}.");
        if (bins < 1) throw new ArgumentOutOfRangeException(nameof(bins), $"Need at least one bin, got {bins}.");
        int n = labels.Length;
        if (n == 0) throw new ArgumentException("No predictions.", nameof(labels));
        if (probabilities.Length != n * classCount)
            throw new ArgumentException($"Expected {n}×{classCount} probabilities, got {probabilities.Length}.", nameof(probabilities));

        var binCount = new int[bins];
        var binCorrect = new int[bins];
        var binConfidence = new double[bins];
        int correct = 0;
        double logLoss = 0;
        for (int i = 0; i < n; i++)
        {
            var row = probabilities.Slice(i * classCount, classCount);
            int argmax = 0;
            for (int k = 1; k < classCount; k++) if (row[k] > row[argmax]) argmax = k;
            bool hit = argmax == labels[i];
            if (hit) correct++;
            logLoss -= Math.Log(Math.Max(row[labels[i]], 1e-15));
            double confidence = row[argmax];
            int bin = Math.Clamp((int)Math.Ceiling(confidence * bins) - 1, 0, bins - 1);
            binCount[bin]++;
            binConfidence[bin] += confidence;
            if (hit) binCorrect[bin]++;
        }
        double ece = 0;
        for (int b = 0; b < bins; b++)
            if (binCount[b] > 0)
                ece += binCount[b] / (double)n * Math.Abs(binCorrect[b] / (double)binCount[b] - binConfidence[b] / binCount[b]);
        return new ClassificationMetrics(correct / (double)n, logLoss / n, ece, n);
    }
}
