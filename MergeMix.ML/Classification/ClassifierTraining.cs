using System.Diagnostics;
using System.Text.Json;
using MergeMix.ML.Augmentation;
using MergeMix.ML.Data;
using MergeMix.ML.Mixing;
using MergeMix.ML.Runtime;
using MergeMix.ML.Vision;
using Microsoft.ML.Runtime;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace MergeMix.ML.Classification;

/// <summary>
/// The training engine behind <see cref="VisionTransformerTrainer"/>, working on in-memory image sets: AdamW with
/// linear warm-up and cosine decay, label smoothing, gradient clipping, random crop/flip, optional online mixing,
/// per-epoch validation and checkpoints from which training resumes exactly.
/// </summary>
public static class ClassifierTraining
{
    /// <summary>
    /// Trains a new model on <paramref name="train"/>. <paramref name="softLabels"/> (N·K floats, optional) replaces the
    /// hard labels as targets. Returns the trained model (in eval mode, merging as <c>MergeAtInference</c> says) and the
    /// per-epoch history.
    /// </summary>
    public static (ImageClassifierModel Model, IReadOnlyList<EpochReport> History) Train(LabeledImageSet train, float[]? softLabels,
        LabeledImageSet? validation, VisionTransformerTrainerOptions options, IChannel? channel = null) =>
        Train(train, softLabels, validation, options, channel, pretrained: null);

    /// <summary>
    /// <see cref="Train(LabeledImageSet, float[], LabeledImageSet, VisionTransformerTrainerOptions, IChannel)"/> with
    /// <see cref="VisionTransformerTrainerOptions.InitialWeights"/> already read (and checked against the schema) by the
    /// caller, who keeps ownership; null reads it here.
    /// </summary>
    internal static (ImageClassifierModel Model, IReadOnlyList<EpochReport> History) Train(LabeledImageSet train, float[]? softLabels,
        LabeledImageSet? validation, VisionTransformerTrainerOptions options, IChannel? channel, VisionTransformerCheckpoint? pretrained)
    {
        ArgumentNullException.ThrowIfNull(train);
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        int classes = train.ClassNames.Count;
        if (train.Count < 2) throw new ArgumentException($"Training needs at least 2 images, got {train.Count}.", nameof(train));
        if (softLabels is not null && softLabels.Length != train.Count * classes)
            throw new ArgumentException($"Soft labels must hold {train.Count}×{classes} values, got {softLabels.Length}.", nameof(softLabels));
        if (softLabels is not null && options.OnlineMixing is not null)
            throw new ArgumentException(VisionTransformerTrainerOptions.SoftLabelsWithOnlineMixing, nameof(options));
        if (validation is not null && (validation.ImageSize != train.ImageSize || !validation.ClassNames.SequenceEqual(train.ClassNames)))
            throw new ArgumentException($"The validation set must have the training set's image shape ({train.Channels}×{train.Height}×{train.Width}) and classes ({string.Join(", ", train.ClassNames)}), in that order.", nameof(validation));
        if (options.RandAugment is not null) RandAugmentation.CheckPixelRange(train, nameof(options.RandAugment));

        var device = TorchDevice.Resolve(options.Device, nameof(options.Device));
        if (options.KeepNativeMemory && device.type == DeviceType.CPU && !NativeAllocator.IsKeepingFreedMemory && NativeAllocator.KeepFreedMemory())
            channel?.Info(MessageSensitivity.None, "KeepNativeMemory: glibc's malloc trim and mmap thresholds are now set for this whole process (freed "
                + "native memory is kept for the next training step, not returned to the OS); set KeepNativeMemory = false to leave the allocator as it is.");
        using (TorchThreads.Use(options.Threads))
            return Run(train, softLabels, validation, options, channel, device, pretrained);
    }

    private static (ImageClassifierModel Model, IReadOnlyList<EpochReport> History) Run(LabeledImageSet train, float[]? softLabels,
        LabeledImageSet? validation, VisionTransformerTrainerOptions options, IChannel? channel, Device device, VisionTransformerCheckpoint? given)
    {
        if (train.Height != train.Width)
            throw new ArgumentException($"The Vision Transformer needs square images, got {train.Height}×{train.Width}; resize them first (ResizeImages).", nameof(train));
        var pretrained = given ?? (options.InitialWeights is { } weights ? VisionTransformerCheckpoint.Read(weights) : null);
        VisionTransformerOptions modelOptions;
        try
        {
            modelOptions = pretrained is null
                ? ModelOptionsFor(options.Model, train)
                : PretrainedModelOptions(pretrained, options, train.Channels, train.Height, train.ClassNames.Count, "The training set");
        }
        catch
        {
            if (given is null) pretrained?.Dispose();
            throw;
        }
        var (dataMean, dataStd) = options.ChannelMean is null || options.ChannelStd is null ? ChannelStatistics(train) : (null, null);
        var (mean, std) = (options.ChannelMean ?? dataMean!, options.ChannelStd ?? dataStd!);

        ImageClassifierModel model;
        using (given is null ? pretrained : null)
        using (var initGenerator = new Generator((ulong)options.Seed))
        {
            model = new ImageClassifierModel(modelOptions, mean, std, initGenerator);
            try
            {
                if (pretrained is not null)
                {
                    bool headLoaded = pretrained.LoadInto(model.Backbone, options.InitialWeights!.LoadHead);
                    channel?.Info(MessageSensitivity.None, "Started from {0} ({1} layout, width {2}, depth {3}, {4} heads, patch {5}); head {6}.{7}",
                        options.InitialWeights.Path, pretrained.Layout, modelOptions.Width, modelOptions.Depth, modelOptions.Heads, modelOptions.PatchSize,
                        headLoaded ? "loaded" : $"fresh ({modelOptions.ClassCount} classes)",
                        pretrained.Notes.Count == 0 ? "" : " " + string.Join(" ", pretrained.Notes));
                    if (options.ChannelMean is null || options.ChannelStd is null)
                        channel?.Warning(MessageSensitivity.None,
                            "InitialWeights is set but ChannelMean/ChannelStd are not: normalising with the training images' statistics, not the pretrained model's.");
                }
            }
            catch
            {
                model.Dispose();
                throw;
            }
        }
        try
        {
            model.to(device);
            return (model, Fit(model, train, softLabels, validation, options, channel, device));
        }
        catch
        {
            // Cancellation and bad data end here: free the native weights now rather than at some later GC.
            model.Dispose();
            throw;
        }
    }

    /// <summary>
    /// The model options for training from <paramref name="checkpoint"/> on square images of <paramref name="side"/>
    /// pixels: its architecture at that image size and class count with the training-time settings of
    /// <see cref="VisionTransformerTrainerOptions.Model"/>. Throws naming the option or column that does not fit.
    /// </summary>
    internal static VisionTransformerOptions PretrainedModelOptions(VisionTransformerCheckpoint checkpoint, VisionTransformerTrainerOptions options,
        int channels, int side, int classCount, string imageSource)
    {
        string path = options.InitialWeights?.Path ?? "the checkpoint";
        var architecture = checkpoint.Options;
        if (architecture.Channels != channels)
            throw new ArgumentOutOfRangeException(nameof(options.FeatureColumnName),
                $"{imageSource} holds {channels}-channel images but InitialWeights {path} takes {architecture.Channels} channels.");
        if (side % architecture.PatchSize != 0)
            throw new ArgumentOutOfRangeException(nameof(options.FeatureColumnName),
                $"{imageSource} holds {side}×{side} images, which the patch size {architecture.PatchSize} of InitialWeights {path} does not divide; " +
                $"resize them to a multiple of {architecture.PatchSize} (its own size is {architecture.ImageSize}).");
        if (options.FrozenBlocks > architecture.Depth)
            throw new ArgumentOutOfRangeException(nameof(options.FrozenBlocks),
                $"FrozenBlocks ({options.FrozenBlocks}) must be at most the depth of InitialWeights {path} ({architecture.Depth}).");
        try
        {
            return checkpoint.ModelOptions(side, classCount, options.Model);
        }
        catch (ArgumentException e) when (e.ParamName is { } field)
        {
            throw new ArgumentException($"Model.{ExceptionMessages.WithoutParameter(e)} (with the architecture of InitialWeights {path} on {side}×{side} images)",
                $"Model.{field}", e);
        }
    }

    /// <summary>The epochs of <c>Train</c> on a freshly initialised <paramref name="model"/>; returns the history.</summary>
    private static List<EpochReport> Fit(ImageClassifierModel model, LabeledImageSet train, float[]? softLabels, LabeledImageSet? validation,
        VisionTransformerTrainerOptions options, IChannel? channel, Device device)
    {
        int classes = train.ClassNames.Count;
        var (optimizer, rateScales, trainable) = CreateOptimizer(model, options);
        using var _ = optimizer;
        int stepsPerEpoch = Batches(train.Count, options.BatchSize).Count();
        long totalSteps = (long)stepsPerEpoch * options.Epochs;
        long warmupSteps = (long)Math.Round(options.WarmupEpochs * stepsPerEpoch);

        var history = new List<EpochReport>();
        int firstEpoch = 0;
        EpochPosition? resumeAt = null;
        string? folder = options.CheckpointFolder;
        var fingerprint = folder is null ? null : Fingerprint(train, softLabels, options);
        if (folder is not null && Checkpoint.Exists(folder))
        {
            CheckFingerprint(folder, fingerprint!, options, channel);
            var saved = Checkpoint.Load(folder, model, optimizer);
            history.AddRange(saved.History);
            firstEpoch = saved.History.Count;
            resumeAt = saved.Position is { } position && position.Epoch == firstEpoch ? position : null;
            channel?.Info(MessageSensitivity.None, "Resuming from checkpoint {0} after epoch {1}{2}.", folder, firstEpoch,
                resumeAt is null ? "" : $" and {resumeAt.Steps} steps of epoch {firstEpoch + 1}");
        }

        var trainingStep = new TrainingStep(model, optimizer, trainable, options, classes);
        for (int epoch = firstEpoch; epoch < options.Epochs; epoch++)
        {
            var watch = Stopwatch.StartNew();
            // Every random stream is a function of (seed, epoch), so a run resumed from a checkpoint replays exactly.
            torch.manual_seed(EpochSeed(options.Seed, epoch, 1));
            var random = new Random(EpochSeed(options.Seed, epoch, 2));
            using var generator = new Generator((ulong)EpochSeed(options.Seed, epoch, 3), device);
            using var augmentGenerator = options.RandAugment is null ? null : new Generator((ulong)EpochSeed(options.Seed, epoch, 4));
            var randAugment = augmentGenerator is null ? null : new RandAugmentation(options.RandAugment!, augmentGenerator);
            var order = Enumerable.Range(0, train.Count).ToArray();
            random.Shuffle(order);
            model.train();
            double lossSum = 0, earlierSeconds = 0;
            int steps = 0;
            var resume = resumeAt is { } at && at.Epoch == epoch ? at : null;
            if (resume is not null)
            {
                lossSum = resume.LossSum;
                earlierSeconds = resume.Seconds;
                RestoreRandomState(resume, generator, augmentGenerator);
            }
            foreach (var (start, count) in Batches(train.Count, options.BatchSize))
            {
                if (resume is not null && steps < resume.Steps)
                {
                    // Steps done before the checkpoint: consume their augmentation draws so the next step sees the same stream.
                    for (int b = 0; b < count; b++) DrawAugmentation(random, options);
                    steps++;
                    continue;
                }
                options.CancellationToken.ThrowIfCancellationRequested();
                long step = (long)epoch * stepsPerEpoch + steps;
                double lr = LearningRateAt(step, totalSteps, warmupSteps, options.LearningRate, options.MinLearningRate);
                int g = 0;
                foreach (var group in optimizer.ParamGroups) group.LearningRate = lr * rateScales[g++];

                using var scope = NewDisposeScope();
                var indices = order.AsSpan(start, count);
                var images = AugmentedBatch(train, indices, options, random, device, randAugment);
                var labels = tensor(indices.ToArray().Select(i => (long)train.Labels[i]).ToArray(), device: device);
                var targets = softLabels is null
                    ? nn.functional.one_hot(labels, classes).to(ScalarType.Float32)
                    : SoftTargets(softLabels, indices, classes, device);

                lossSum += trainingStep.Run(images, labels, targets, generator);
                steps++;
                if (folder is not null && options.CheckpointEverySteps > 0 && steps % options.CheckpointEverySteps == 0 && steps < stepsPerEpoch)
                    Checkpoint.Save(folder, model, optimizer, history, fingerprint!,
                        CapturePosition(epoch, steps, lossSum, earlierSeconds + watch.Elapsed.TotalSeconds, generator, augmentGenerator));
            }
            resumeAt = null;
            watch.Stop();
            model.Backbone.MergeEnabled = options.MergeAtInference;
            var metrics = validation is null ? null : Evaluate(model, validation, options.BatchSize);
            var report = new EpochReport(epoch + 1, options.Epochs, lossSum / steps,
                LearningRateAt((long)(epoch + 1) * stepsPerEpoch - 1, totalSteps, warmupSteps, options.LearningRate, options.MinLearningRate),
                earlierSeconds + watch.Elapsed.TotalSeconds, metrics);
            history.Add(report);
            channel?.Info(MessageSensitivity.None, "Epoch {0}/{1}: loss {2:F4}, {3:F1} s{4}", report.Epoch, report.Epochs, report.TrainLoss, report.Seconds,
                metrics is null ? "" : $", validation accuracy {metrics.Accuracy:P2}, log-loss {metrics.LogLoss:F4}, ECE {metrics.ExpectedCalibrationError:P2}");
            if (folder is not null) Checkpoint.Save(folder, model, optimizer, history, fingerprint!, position: null);
            options.Progress?.Report(report);
        }
        model.Backbone.MergeEnabled = options.MergeAtInference;
        model.eval();
        return history;
    }

    /// <summary>Softmax probabilities [N·K] of <paramref name="model"/> (eval mode, no gradient) over raw images.</summary>
    public static float[] PredictProbabilities(ImageClassifierModel model, ReadOnlySpan<float> pixels, int count, int batchSize = 256)
    {
        var o = model.Options;
        int size = o.Channels * o.ImageSize * o.ImageSize;
        if (pixels.Length != count * size)
            throw new ArgumentException($"Expected {count} images of {size} floats, got {pixels.Length} floats.", nameof(pixels));
        var device = model.parameters().First().device;
        var result = new float[count * o.ClassCount];
        bool wasTraining = model.training;
        model.eval();
        try
        {
            using var _ = no_grad();
            for (int start = 0; start < count; start += batchSize)
            {
                int n = Math.Min(batchSize, count - start);
                using var scope = NewDisposeScope();
                var batch = tensor(pixels.Slice(start * size, n * size).ToArray(), new long[] { n, o.Channels, o.ImageSize, o.ImageSize }, device: device);
                var probabilities = nn.functional.softmax(model.call(batch), 1).cpu().data<float>();
                probabilities.CopyTo(result, start * o.ClassCount);
            }
        }
        finally
        {
            model.train(wasTraining);
        }
        return result;
    }

    /// <summary>Accuracy, log-loss and 15-bin ECE of <paramref name="model"/> on <paramref name="set"/>.</summary>
    public static ClassificationMetrics Evaluate(ImageClassifierModel model, LabeledImageSet set, int batchSize = 256) =>
        ClassificationMetrics.Compute(PredictProbabilities(model, set.Pixels, set.Count, batchSize), set.Labels, set.ClassNames.Count);

    /// <summary>Cross-entropy against (label-smoothed) soft targets, averaged over the batch.</summary>
    public static Tensor SoftCrossEntropy(Tensor logits, Tensor targets, double labelSmoothing)
    {
        var smoothed = labelSmoothing > 0 ? Smoothed(targets, labelSmoothing) : targets;
        return -(smoothed * nn.functional.log_softmax(logits, 1)).sum(1).mean();
    }

    private static Tensor Smoothed(Tensor targets, double labelSmoothing)
    {
        using var keep = (1 - labelSmoothing).ToScalar();
        using var spread = (labelSmoothing / targets.shape[1]).ToScalar();
        return targets.mul(keep).add(spread, Scalars.One);
    }

    /// <summary>Linear warm-up from lr/warmup to lr, then cosine decay to <paramref name="minLr"/> at the last step.</summary>
    public static double LearningRateAt(long step, long totalSteps, long warmupSteps, double lr, double minLr)
    {
        if (step < warmupSteps) return lr * (step + 1) / warmupSteps;
        double progress = Math.Clamp((step - warmupSteps) / (double)Math.Max(1, totalSteps - warmupSteps - 1), 0, 1);
        return minLr + (lr - minLr) * 0.5 * (1 + Math.Cos(Math.PI * progress));
    }

    /// <summary>The model options with the data's image size, channels and class count.</summary>
    internal static VisionTransformerOptions ModelOptionsFor(VisionTransformerOptions template, LabeledImageSet data)
    {
        if (data.Height != data.Width)
            throw new ArgumentException($"The Vision Transformer needs square images, got {data.Height}×{data.Width}; resize them first (ResizeImages).", nameof(data));
        return ModelOptionsFor(template, data.Channels, data.Height, data.ClassNames.Count, "The training set", nameof(data), "Model");
    }

    /// <summary>
    /// The model options for square images of <paramref name="side"/> pixels, validated before any data is read.
    /// Errors name the option as the caller's user spells it (<paramref name="optionPath"/>, e.g. "Model" for the
    /// trainer, "AttentionTraining.Model" for the mixer's attention model) and <paramref name="imageSource"/>, where the
    /// images come from (e.g. "Image column 'Features'"); an image side the patch does not divide is reported against
    /// <paramref name="columnOption"/>, the option naming that column.
    /// </summary>
    internal static VisionTransformerOptions ModelOptionsFor(VisionTransformerOptions template, int channels, int side, int classCount,
        string imageSource, string columnOption, string optionPath)
    {
        ArgumentNullException.ThrowIfNull(template, optionPath);
        if (template.PatchSize > 0 && side % template.PatchSize != 0)
            throw new ArgumentOutOfRangeException(columnOption,
                $"{imageSource} holds {side}×{side} images, which {optionPath}.{nameof(VisionTransformerOptions.PatchSize)} = {template.PatchSize} does not divide; " +
                "resize the images or choose a patch size that divides their side.");
        var o = template.Clone();
        o.ImageSize = side;
        o.Channels = channels;
        o.ClassCount = classCount;
        try
        {
            o.Validate();
        }
        catch (ArgumentException e) when (e.ParamName is { } field)
        {
            string reason = ExceptionMessages.WithoutParameter(e);
            if (reason.StartsWith(field, StringComparison.Ordinal)) reason = $"{optionPath}.{reason}";
            throw new ArgumentException($"{reason} ({imageSource} holds {channels}×{side}×{side} images of {classCount} classes.)", $"{optionPath}.{field}", e);
        }
        return o;
    }

    internal static readonly JsonSerializerOptions Json = new() { IncludeFields = true, WriteIndented = true };

    /// <summary>
    /// A seed for one random stream of one epoch. A fixed SplitMix64 mix, not <see cref="HashCode"/>: .NET randomises
    /// HashCode per process, which would make runs with the same seed differ between processes.
    /// </summary>
    internal static int EpochSeed(int seed, int epoch, int stream)
    {
        ulong z = unchecked((ulong)(uint)seed * 0x9E3779B97F4A7C15UL + (ulong)(uint)epoch * 0xBF58476D1CE4E5B9UL + (ulong)(uint)stream * 0x94D049BB133111EBUL);
        z = unchecked((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL);
        z = unchecked((z ^ (z >> 27)) * 0x94D049BB133111EBUL);
        return (int)((z ^ (z >> 31)) & int.MaxValue);
    }

    /// <summary>Batches of the epoch: full batches, and the remainder when it has at least 2 images (BatchNorm-free, but mixing needs pairs).</summary>
    internal static IEnumerable<(int Start, int Count)> Batches(int n, int batchSize)
    {
        for (int start = 0; start < n; start += batchSize)
        {
            int count = Math.Min(batchSize, n - start);
            if (count >= 2) yield return (start, count);
        }
    }

    private static Tensor SoftTargets(float[] softLabels, ReadOnlySpan<int> indices, int classes, Device device)
    {
        var values = new float[indices.Length * classes];
        for (int b = 0; b < indices.Length; b++) softLabels.AsSpan(indices[b] * classes, classes).CopyTo(values.AsSpan(b * classes));
        return tensor(values, new long[] { indices.Length, classes }, device: device);
    }

    /// <summary>Copies the batch with a random shift (zero padding) and horizontal flip per image, then RandAugment if on.</summary>
    /// <remarks>
    /// Crop and flip stay our own rather than TorchVision's RandomCrop/RandomHorizontalFlip: those draw once per call,
    /// so a batch call shifts and flips every image alike, and per-image calls cost a few tensor ops per image where
    /// this is one pass over the batch while it is copied.
    /// </remarks>
    private static Tensor AugmentedBatch(LabeledImageSet set, ReadOnlySpan<int> indices, VisionTransformerTrainerOptions o, Random random, Device device,
        RandAugmentation? randAugment)
    {
        int c = set.Channels, h = set.Height, w = set.Width, size = set.ImageSize, pad = o.RandomCropPadding;
        var buffer = new float[indices.Length * size];
        for (int b = 0; b < indices.Length; b++)
        {
            var source = set.Image(indices[b]);
            var target = buffer.AsSpan(b * size, size);
            var (dy, dx, flip) = DrawAugmentation(random, o);
            for (int ch = 0; ch < c; ch++)
                for (int y = 0; y < h; y++)
                {
                    int sy = y + dy;
                    if (sy < 0 || sy >= h) continue;
                    var sourceRow = source.Slice(ch * h * w + sy * w, w);
                    var targetRow = target.Slice(ch * h * w + y * w, w);
                    for (int x = 0; x < w; x++)
                    {
                        int sx = (flip ? w - 1 - x : x) + dx;
                        if (sx >= 0 && sx < w) targetRow[x] = sourceRow[sx];
                    }
                }
        }
        if (randAugment is null) return tensor(buffer, new long[] { indices.Length, c, h, w }, device: device);
        using var cpu = tensor(buffer, new long[] { indices.Length, c, h, w });
        return randAugment.Apply(cpu).to(device);
    }

    /// <summary>One image's random shift and flip: every draw from <paramref name="random"/> an augmented image makes.</summary>
    private static (int Dy, int Dx, bool Flip) DrawAugmentation(Random random, VisionTransformerTrainerOptions o)
    {
        int pad = o.RandomCropPadding;
        int dy = pad > 0 ? random.Next(-pad, pad + 1) : 0;
        int dx = pad > 0 ? random.Next(-pad, pad + 1) : 0;
        bool flip = o.HorizontalFlip && random.Next(2) == 1;
        return (dy, dx, flip);
    }

    /// <summary>Per-channel mean and standard deviation (floored at 1e-3) of every pixel of the set.</summary>
    private static (float[] Mean, float[] Std) ChannelStatistics(LabeledImageSet set)
    {
        int plane = set.Height * set.Width;
        double count = (double)set.Count * plane;
        var mean = new double[set.Channels];
        var variance = new double[set.Channels];
        for (int i = 0; i < set.Count; i++)
            for (int ch = 0; ch < set.Channels; ch++)
            {
                double sum = 0;
                foreach (float v in set.Image(i).Slice(ch * plane, plane)) sum += v;
                mean[ch] += sum;
            }
        var meanOfChannel = mean.Select(m => (float)(m / count)).ToArray();
        // Second pass around the mean: the one-pass Σx² − n·mean² loses precision on 0..255 pixels.
        for (int i = 0; i < set.Count; i++)
            for (int ch = 0; ch < set.Channels; ch++)
            {
                double sum = 0;
                foreach (float v in set.Image(i).Slice(ch * plane, plane)) sum += (v - meanOfChannel[ch]) * (v - meanOfChannel[ch]);
                variance[ch] += sum;
            }
        return (meanOfChannel, variance.Select(v => (float)Math.Max(Math.Sqrt(v / count), 1e-3)).ToArray());
    }

    /// <summary>
    /// AdamW over the trainable parameters, their learning-rate scale per group (the head's multiplier), and those
    /// parameters. Frozen ones (<see cref="VisionTransformerTrainerOptions.FrozenBlocks"/>,
    /// <see cref="VisionTransformerTrainerOptions.FreezePatchEmbedding"/>) stop requiring gradients and stay out of the
    /// optimizer, so backward skips them and weight decay cannot move them.
    /// </summary>
    internal static (KeptAliveAdamW Optimizer, double[] RateScales, List<Parameter> Trainable) CreateOptimizer(ImageClassifierModel model, VisionTransformerTrainerOptions o)
    {
        bool freezeEmbedding = o.FreezePatchEmbedding || o.FrozenBlocks > 0;
        bool Frozen(string name)
        {
            if (freezeEmbedding && (name.StartsWith("backbone.patchEmbed.", StringComparison.Ordinal) || name is "backbone.clsToken" or "backbone.posEmbed"))
                return true;
            for (int i = 0; i < o.FrozenBlocks; i++)
                if (name.StartsWith($"backbone.blocks.{i}.", StringComparison.Ordinal)) return true;
            return false;
        }

        // No decay on norms, biases, the CLS token and position embeddings (DeiT recipe, mergemix-method.md §4).
        // The head gets groups of its own only when its rate differs, so checkpoints of runs without it keep their layout.
        bool headGroups = o.HeadLearningRateMultiplier != 1.0;
        var lists = new[] { new List<Parameter>(), new List<Parameter>(), new List<Parameter>(), new List<Parameter>() };
        var trainable = new List<Parameter>();
        foreach (var (name, parameter) in model.named_parameters())
        {
            if (Frozen(name))
            {
                parameter.requires_grad_(false);
                continue;
            }
            trainable.Add(parameter);
            bool noDecay = parameter.dim() <= 1 || name.Contains("cls", StringComparison.OrdinalIgnoreCase) || name.Contains("pos", StringComparison.OrdinalIgnoreCase);
            bool head = headGroups && name.StartsWith("backbone.head.", StringComparison.Ordinal);
            lists[(head ? 2 : 0) + (noDecay ? 1 : 0)].Add(parameter);
        }
        var groups = new List<AdamW.ParamGroup>();
        var scales = new List<double>();
        for (int i = 0; i < lists.Length; i++)
        {
            if (lists[i].Count == 0) continue;
            double decay = i % 2 == 0 ? o.WeightDecay : 0;
            double scale = i >= 2 ? o.HeadLearningRateMultiplier : 1.0;
            groups.Add(new AdamW.ParamGroup(lists[i], new AdamW.Options { LearningRate = o.LearningRate * scale, weight_decay = decay }));
            scales.Add(scale);
        }
        return (new KeptAliveAdamW(groups, o.LearningRate, o.WeightDecay), scales.ToArray(), trainable);
    }

    /// <summary>
    /// File name of the weights in <see cref="VisionTransformerTrainerOptions.CheckpointFolder"/>; an epoch's file is
    /// complete when that epoch's <see cref="VisionTransformerTrainerOptions.Progress"/> report arrives.
    /// </summary>
    public const string CheckpointWeightsFile = "model.bin";

    /// <summary>
    /// What decides the result of training on <paramref name="train"/> with <paramref name="options"/>: every option
    /// but those of <see cref="VisionTransformerTrainerOptions.NotInFingerprint"/>, the initial weights file and the
    /// content of the images, labels, class names and soft labels.
    /// </summary>
    internal static TrainingFingerprint Fingerprint(LabeledImageSet train, float[]? softLabels, VisionTransformerTrainerOptions options)
    {
        var fingerprint = new TrainingFingerprint();
        fingerprint.AddOptions("", options, VisionTransformerTrainerOptions.NotInFingerprint);
        if (options.InitialWeights is { } weights) fingerprint.Add($"{nameof(options.InitialWeights)}.File", TrainingFingerprint.HashFile(weights.Path));
        fingerprint.AddData("Images", TrainingFingerprint.Hash(train.Pixels, $"pixels of {train.Count} {train.Channels}×{train.Height}×{train.Width} images"));
        fingerprint.AddData("Labels", TrainingFingerprint.Hash(train.Labels, "labels"));
        fingerprint.AddData("ClassNames", TrainingFingerprint.Hash(train.ClassNames, "class names"));
        fingerprint.AddData("SoftLabels", softLabels is null ? "none" : TrainingFingerprint.Hash(softLabels, "soft-label values"));
        return fingerprint;
    }

    private static void CheckFingerprint(string folder, TrainingFingerprint current, VisionTransformerTrainerOptions options, IChannel? channel)
    {
        var saved = Checkpoint.ReadFingerprint(folder);
        if (saved is null)
        {
            channel?.Warning(MessageSensitivity.None,
                "Checkpoint {0} has no {1} (written by an earlier version): resuming without checking that its data and options match.",
                folder, TrainingFingerprint.FileName);
            return;
        }
        var differences = current.DifferencesFrom(saved);
        if (differences.Count == 0) return;
        if (options.OnCheckpointMismatch == CheckpointMismatch.Fail)
            throw TrainingFingerprint.MismatchError(folder, differences, nameof(VisionTransformerTrainerOptions.OnCheckpointMismatch));
        channel?.Warning(MessageSensitivity.None, "Resuming from checkpoint {0} although it was made with other data or options " +
            "(OnCheckpointMismatch = Resume): {1}.", folder, string.Join("; ", differences));
    }

    /// <summary>Where a checkpoint written inside an epoch stopped, with the random streams' states at that point.</summary>
    private sealed record EpochPosition(int Epoch, int Steps, double LossSum, double Seconds, byte[] TorchRandomState, byte[] GeneratorState,
        byte[]? RandAugmentGeneratorState = null);

    /// <summary>The checkpoint's state file: finished epochs and, inside an epoch, where it stopped.</summary>
    private sealed record CheckpointState(List<EpochReport> History, EpochPosition? Position);

    private static EpochPosition CapturePosition(int epoch, int steps, double lossSum, double seconds, Generator generator, Generator? randAugmentGenerator)
    {
        using var torchState = torch.random.get_rng_state();
        using var generatorState = generator.get_state();
        using var randAugmentState = randAugmentGenerator?.get_state();
        return new EpochPosition(epoch, steps, lossSum, seconds, torchState.bytes.ToArray(), generatorState.bytes.ToArray(), randAugmentState?.bytes.ToArray());
    }

    private static void RestoreRandomState(EpochPosition position, Generator generator, Generator? randAugmentGenerator)
    {
        using var torchState = tensor(position.TorchRandomState, ScalarType.Byte);
        torch.random.set_rng_state(torchState);
        using var generatorState = tensor(position.GeneratorState, ScalarType.Byte);
        generator.set_state(generatorState);
        if (randAugmentGenerator is not null && position.RandAugmentGeneratorState is { } randAugmentBytes)
        {
            using var randAugmentState = tensor(randAugmentBytes, ScalarType.Byte);
            randAugmentGenerator.set_state(randAugmentState);
        }
    }

    private static class Checkpoint
    {
        private const string ModelFile = CheckpointWeightsFile;
        private const string OptimizerFile = "optimizer.bin";
        private const string StateFile = "state.json";
        private const string FingerprintFile = TrainingFingerprint.FileName;

        public static bool Exists(string folder) => File.Exists(Path.Combine(folder, StateFile));

        public static void Save(string folder, ImageClassifierModel model, AdamW optimizer, List<EpochReport> history, TrainingFingerprint fingerprint,
            EpochPosition? position)
        {
            Directory.CreateDirectory(folder);
            // Write to temporary names, then rename, so an interrupted save never leaves a torn checkpoint.
            model.save(Path.Combine(folder, ModelFile + ".tmp"));
            optimizer.save_state_dict(Path.Combine(folder, OptimizerFile + ".tmp"));
            using (var file = File.Create(Path.Combine(folder, FingerprintFile + ".tmp"))) fingerprint.Write(file);
            File.WriteAllText(Path.Combine(folder, StateFile + ".tmp"), JsonSerializer.Serialize(new CheckpointState(history, position), Json));
            foreach (var file in new[] { ModelFile, OptimizerFile, FingerprintFile, StateFile })
                File.Move(Path.Combine(folder, file + ".tmp"), Path.Combine(folder, file), overwrite: true);
        }

        public static TrainingFingerprint? ReadFingerprint(string folder)
        {
            string path = Path.Combine(folder, FingerprintFile);
            if (!File.Exists(path)) return null;
            using var file = File.OpenRead(path);
            return TrainingFingerprint.Read(file, path);
        }

        public static CheckpointState Load(string folder, ImageClassifierModel model, AdamW optimizer)
        {
            string statePath = Path.Combine(folder, StateFile);
            string text = File.ReadAllText(statePath);
            // Checkpoints of earlier versions hold the history alone, as a JSON array.
            var state = text.TrimStart().StartsWith('[')
                ? new CheckpointState(JsonSerializer.Deserialize<List<EpochReport>>(text, Json) ?? new(), null)
                : JsonSerializer.Deserialize<CheckpointState>(text, Json) ?? throw new InvalidDataException($"Checkpoint state {statePath} is empty.");
            string weights = Path.Combine(folder, ModelFile);
            using (var file = File.OpenRead(weights)) ModelFiles.LoadWeights(model, file, weights);
            optimizer.load_state_dict(Path.Combine(folder, OptimizerFile));
            return state;
        }
    }
}
