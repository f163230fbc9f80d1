using System.Diagnostics;
using System.IO.Compression;
using System.Text.Json;
using System.Text.Json.Serialization;
using MergeMix.ML.Runtime;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace MergeMix.ML.Alignment;

/// <summary>
/// Trains a <see cref="MultimodalLm"/> on a <see cref="PreferenceDataset"/> with SFT, SimPO, MergeMix's mixed
/// SimPO, DPO, IPO or hinge (see <see cref="PreferenceTrainerOptions"/>), with AdamW.
/// </summary>
/// <remarks>
/// <para>Each step scores the chosen and rejected sides in one concatenated forward pass ([chosen; rejected], padded
/// to one length), or in two when <see cref="PreferenceTrainerOptions.DetachRejected"/> is set. Log-probs are summed
/// over answer tokens (answer + eos); SimPO variants use their length average, DPO variants the sums.</para>
/// <para>DPO-family objectives need reference log-probs: <see cref="ReferenceMode.Online"/> keeps a frozen deep copy
/// of the initial policy (<see cref="ReferenceModel"/>: eval mode, no gradient, parameters not trainable), built
/// with the vision-encoder factory given to the constructor; <see cref="ReferenceMode.Precomputed"/> scores the
/// dataset with the initial policy before the first step and keeps no copy. SFT and SimPO variants create no
/// reference.</para>
/// <para>Shuffling is seeded per epoch, so a run restored with <see cref="LoadCheckpoint(string, PreferenceDataset?, CheckpointMismatch)"/> continues exactly as
/// an uninterrupted one would. The trainer is not thread-safe.</para>
/// </remarks>
public sealed class PreferenceTrainer : IDisposable
{
    private const string FormatName = "mergemix-preference-checkpoint-v1";
    private const string ArchiveKind = "checkpoint";
    // Metrics hold NaN where an objective has no value (e.g. SFT rewards).
    private static readonly JsonSerializerOptions JsonOptions = new() { NumberHandling = JsonNumberHandling.AllowNamedFloatingPointLiterals };

    private readonly MultimodalLm policy;
    private readonly MultimodalLm? reference;
    private readonly PreferenceTrainerOptions options;
    private readonly Device device;
    private readonly KeptAliveAdamW optimizer;
    private readonly Parameter[] trainable;
    private readonly List<PreferenceStepMetrics> history = new();
    private long tokensSeen;
    private readonly int maxLength;
    // What decides the result apart from the data: options, tokenizer, model options and initial weights.
    private readonly TrainingFingerprint setup;
    private TrainingFingerprint? dataFingerprint;
    // The validation pairs, when their reference log-probs are precomputed and so saved in checkpoints (SetValidation).
    private TrainingFingerprint? validationFingerprint;
    private (TrainingFingerprint Expected, CheckpointMismatch OnMismatch, string Path, string OptionName)? pendingDataCheck;
    // Reference log-probs (ReferenceMode.Precomputed) per dataset, keyed by a hash of the dataset's content, so that a
    // validation set never borrows the training set's values; they can only be computed while policy = reference (step 0).
    private readonly Dictionary<string, ReferenceLogProbs> precomputed = new(StringComparer.Ordinal);
    private ReferenceLogProbs? activeReference;

    /// <summary>
    /// Prepares training of <paramref name="model"/>, which is moved to <see cref="PreferenceTrainerOptions.Device"/>.
    /// </summary>
    /// <param name="model">The policy to train (updated in place).</param>
    /// <param name="options">Training options (copied; null = defaults).</param>
    /// <param name="visionEncoderFactory">Builds an encoder of the same architecture as the model's; needed only to
    /// copy the model into a frozen reference (DPO-family objectives with <see cref="ReferenceMode.Online"/>).</param>
    public PreferenceTrainer(MultimodalLm model, PreferenceTrainerOptions? options = null, Func<VisionEncoder>? visionEncoderFactory = null)
    {
        ArgumentNullException.ThrowIfNull(model);
        this.options = (options ?? new PreferenceTrainerOptions()).Clone();
        this.options.Validate();
        setup = SetupFingerprint(model, this.options);
        device = TorchDevice.Resolve(this.options.Device, nameof(PreferenceTrainerOptions.Device));
        policy = model;
        policy.to(device);
        if (!this.options.TrainVisionEncoder)
            foreach (var p in policy.Vision.parameters()) p.requires_grad = false;
        maxLength = this.options.MaxLength ?? policy.Options.MaxTextLength;
        if (maxLength > policy.Options.MaxTextLength)
            throw new ArgumentOutOfRangeException(nameof(PreferenceTrainerOptions.MaxLength), this.options.MaxLength,
                $"MaxLength must not exceed the model's MaxTextLength ({policy.Options.MaxTextLength}), its number of text positions.");
        if (this.options.MaxPromptLength is { } promptLimit && promptLimit >= maxLength)
            throw new ArgumentOutOfRangeException(nameof(PreferenceTrainerOptions.MaxPromptLength), promptLimit,
                $"MaxPromptLength must be below the maximum length ({maxLength}) so that every answer keeps a token.");
        trainable = policy.parameters().Where(p => p.requires_grad).ToArray();
        if (trainable.Length == 0) throw new ArgumentException("model has no trainable parameters.", nameof(model));
        optimizer = new KeptAliveAdamW(trainable, this.options.LearningRate, this.options.WeightDecay);

        if (this.options.NeedsReference && this.options.Reference == ReferenceMode.Online)
        {
            if (visionEncoderFactory is null)
                throw new ArgumentNullException(nameof(visionEncoderFactory),
                    $"Objective = {this.options.Objective} with Reference = Online needs a vision-encoder factory to build the frozen reference copy; " +
                    "pass one, or set Reference = ReferenceMode.Precomputed.");
            reference = CopyForReference(policy, visionEncoderFactory());
        }
    }

    /// <summary>The frozen reference model, or null (SFT, SimPO variants, precomputed reference log-probs).</summary>
    public MultimodalLm? ReferenceModel => reference;

    /// <summary>Optimisation steps done so far (restored by <see cref="LoadCheckpoint(string, PreferenceDataset?, CheckpointMismatch)"/>).</summary>
    public long Step { get; private set; }

    /// <summary>Texts (chosen and rejected sides counted apart) that the last <see cref="Train"/> or <see cref="Evaluate"/> call
    /// truncated under <see cref="PreferenceTrainerOptions.Truncation"/>.</summary>
    public int TruncatedRows { get; private set; }

    /// <summary>Metrics of every step done so far, in order.</summary>
    public IReadOnlyList<PreferenceStepMetrics> History => history;

    /// <summary>
    /// Trains until <see cref="PreferenceTrainerOptions.Epochs"/> passes over <paramref name="data"/> are done in
    /// total (continuing from <see cref="Step"/> after a restore).
    /// </summary>
    /// <param name="data">Pairs; every text is tokenized up front, so an empty answer or an over-long text fails before any step.</param>
    /// <param name="progress">Receives each step's metrics, synchronously, on the training thread.</param>
    /// <param name="cancellationToken">Checked before every step; cancelling throws <see cref="OperationCanceledException"/>
    /// between steps, leaving a consistent state that <see cref="SaveCheckpoint"/> can store.</param>
    /// <returns>All step metrics so far (<see cref="History"/>).</returns>
    public IReadOnlyList<PreferenceStepMetrics> Train(PreferenceDataset data, IProgress<PreferenceStepMetrics>? progress = null,
        CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(data);
        var fingerprint = DataFingerprint(data);
        if (pendingDataCheck is { } pending)
        {
            var differences = WithValidation(fingerprint).DifferencesFrom(pending.Expected);
            if (differences.Count > 0 && pending.OnMismatch == CheckpointMismatch.Fail)
                throw TrainingFingerprint.MismatchError(pending.Path, differences, pending.OptionName);
            pendingDataCheck = null;
        }
        dataFingerprint = fingerprint;
        using var texts = Prepare(data);
        int n = data.Count;
        int pairsPerStep = options.BatchSize * options.GradientAccumulationSteps;
        int stepsPerEpoch = StepsPerEpoch(n);
        long totalSteps = (long)options.Epochs * stepsPerEpoch;
        long warmup = options.WarmupStepsFor(totalSteps);
        if (options.NeedsReference && options.Reference == ReferenceMode.Precomputed)
            EnsurePrecomputed(data, texts);

        long[]? order = null;
        int orderEpoch = -1;
        while (Step < totalSteps)
        {
            cancellationToken.ThrowIfCancellationRequested();
            int epoch = (int)(Step / stepsPerEpoch);
            int batch = (int)(Step % stepsPerEpoch);
            if (epoch != orderEpoch)
            {
                order = EpochOrder(n, epoch);
                orderEpoch = epoch;
            }
            var rows = order![(batch * pairsPerStep)..Math.Min(n, (batch + 1) * pairsPerStep)];
            double learningRate = options.LearningRate * LearningRateSchedules.Factor(options.Schedule, Step, totalSteps, warmup);
            var metrics = TrainStep(data, texts, rows, epoch, learningRate);
            history.Add(metrics);
            progress?.Report(metrics);
        }
        return history;
    }

    /// <summary>Optimiser steps per pass over <paramref name="pairCount"/> pairs: ⌈pairs / (BatchSize × GradientAccumulationSteps)⌉.</summary>
    public int StepsPerEpoch(int pairCount)
    {
        int pairsPerStep = options.BatchSize * options.GradientAccumulationSteps;
        return (pairCount + pairsPerStep - 1) / pairsPerStep;
    }

    /// <summary>
    /// Scores <paramref name="data"/> without training (eval mode, no gradient): per-pair metrics averaged over all
    /// pairs, the CE as a token mean over all chosen answers. <see cref="PreferenceStepMetrics.Epoch"/> is −1 and
    /// <see cref="PreferenceStepMetrics.IsEvaluation"/> is true, so its TRL names carry the "eval_" prefix.
    /// </summary>
    public PreferenceStepMetrics Evaluate(PreferenceDataset data)
    {
        using var texts = Prepare(data);
        if (options.NeedsReference && options.Reference == ReferenceMode.Precomputed)
            EnsurePrecomputed(data, texts);
        bool wasTraining = policy.training;
        policy.eval();
        try
        {
            using var noGrad = no_grad();
            var total = new Totals();
            for (int start = 0; start < data.Count; start += options.BatchSize)
            {
                using var scope = NewDisposeScope();
                var rows = Enumerable.Range(start, Math.Min(options.BatchSize, data.Count - start)).Select(i => (long)i).ToArray();
                total.Add(Score(data, texts, rows, withGradient: false));
            }
            return total.Metrics(Step, -1, data.Count, options, PhaseName) with { IsEvaluation = true, NumTokens = total.TextTokens };
        }
        finally
        {
            policy.train(wasTraining);
        }
    }

    /// <summary>The phase name logged with every step: TRL's loss name of the objective ("sft", "dpo", "mixed_simpo", ...).</summary>
    public string PhaseName => options.Objective switch
    {
        PreferenceObjective.Sft => "sft",
        PreferenceObjective.SimPo => "simpo",
        PreferenceObjective.MixedSimPo => "mixed_simpo",
        PreferenceObjective.Dpo => "dpo",
        PreferenceObjective.Ipo => "ipo",
        PreferenceObjective.Hinge => "hinge",
        PreferenceObjective.RobustDpo => "robust",
        PreferenceObjective.DpoLengthNormalized => "sigmoid_norm",
        PreferenceObjective.Rpo => "rpo",
        PreferenceObjective.IpoSummed => "ipo_summed",
        _ => options.Objective.ToString(),
    };

    /// <summary>
    /// Writes a zip checkpoint: step, history, precomputed reference log-probs, policy and reference weights, AdamW
    /// state, the global torch random state (dropout), and the fingerprint of what decides the result (options,
    /// tokenizer, model options, initial weights and the content of the data last given to <see cref="Train"/>).
    /// </summary>
    public void SaveCheckpoint(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        using var file = File.Create(path);
        using var zip = new ZipArchive(file, ZipArchiveMode.Create);
        using (var entry = zip.CreateEntry("state.json").Open())
            JsonSerializer.Serialize(entry, new CheckpointState(FormatName, options.Objective, Step, null, null, history) { Precomputed = precomputed }, JsonOptions);
        using (var entry = zip.CreateEntry(TrainingFingerprint.FileName).Open())
            (dataFingerprint is null ? setup : setup.Merge(WithValidation(dataFingerprint))).Write(entry);
        using (var randomState = torch.random.get_rng_state())
        using (var entry = zip.CreateEntry(RandomStateEntry).Open())
            entry.Write(randomState.bytes);
        ArchiveEntries.Write(zip, "policy.bin", w => policy.save(w));
        ArchiveEntries.Write(zip, "optimizer.bin", optimizer.save_state_dict);
        if (reference is not null) ArchiveEntries.Write(zip, "reference.bin", w => reference.save(w));
    }

    /// <summary>
    /// Restores a checkpoint written by <see cref="SaveCheckpoint"/> into this trainer; the next <see cref="Train"/>
    /// continues from its step. The checkpoint's fingerprint is compared with this trainer's options, tokenizer, model
    /// options and initial weights, and with <paramref name="data"/>'s content (when null, with the data of the next
    /// <see cref="Train"/> call). Under <see cref="CheckpointMismatch.Fail"/> a difference throws an
    /// <see cref="InvalidOperationException"/> naming each one ("Beta: checkpoint 1, options 0.5") before anything
    /// is loaded; under <see cref="CheckpointMismatch.Resume"/> the checkpoint is loaded anyway.
    /// </summary>
    /// <returns>The differences found (empty when everything matches or the checkpoint predates fingerprints).</returns>
    public IReadOnlyList<string> LoadCheckpoint(string path, PreferenceDataset? data = null, CheckpointMismatch onMismatch = CheckpointMismatch.Fail) =>
        LoadCheckpoint(path, data, onMismatch, nameof(onMismatch));

    internal IReadOnlyList<string> LoadCheckpoint(string path, PreferenceDataset? data, CheckpointMismatch onMismatch, string optionName)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        if (!File.Exists(path)) throw new FileNotFoundException($"checkpoint '{path}' was not found.", path);
        using var file = File.OpenRead(path);
        using var zip = ModelFiles.OpenArchive(file, $"preference-tuning checkpoint ('{path}')");
        CheckpointState state;
        using (var entry = ArchiveEntries.Get(zip, "state.json", ArchiveKind).Open())
            state = JsonSerializer.Deserialize<CheckpointState>(entry, JsonOptions) ?? throw new InvalidDataException("the checkpoint's state.json is empty.");
        if (state.Format != FormatName)
            throw new InvalidDataException($"checkpoint '{path}' has format '{state.Format}', expected '{FormatName}'.");
        var differences = new List<string>();
        TrainingFingerprint? saved = null;
        if (zip.GetEntry(TrainingFingerprint.FileName) is { } fingerprintEntry)
        {
            using (var entry = fingerprintEntry.Open()) saved = TrainingFingerprint.Read(entry, $"'{TrainingFingerprint.FileName}' of '{path}'");
            differences.AddRange(setup.DifferencesFrom(saved.WithoutData()));
            // A checkpoint saved before any Train call has no data entries: nothing to compare the data with.
            if (data is not null && saved.DataOnly().Entries.Count > 0) differences.AddRange(WithValidation(DataFingerprint(data)).DifferencesFrom(saved.DataOnly()));
            if (differences.Count > 0 && onMismatch == CheckpointMismatch.Fail) throw TrainingFingerprint.MismatchError(path, differences, optionName);
        }
        if (state.Objective != options.Objective && onMismatch == CheckpointMismatch.Fail)
            throw new InvalidOperationException($"checkpoint '{path}' was trained with Objective = {state.Objective}, this trainer uses {options.Objective}.");
        if (reference is not null && zip.GetEntry("reference.bin") is null)
            throw new InvalidDataException($"checkpoint '{path}' holds no reference weights, but this trainer uses an online reference.");

        ArchiveEntries.Read(zip, "policy.bin", ArchiveKind, r => ModelFiles.LoadWeights(policy, r.BaseStream, $"policy.bin of '{path}'"));
        ArchiveEntries.Read(zip, "optimizer.bin", ArchiveKind, optimizer.load_state_dict);
        if (reference is not null) ArchiveEntries.Read(zip, "reference.bin", ArchiveKind, r => ModelFiles.LoadWeights(reference, r.BaseStream, $"reference.bin of '{path}'"));
        Step = state.Step;
        precomputed.Clear();
        foreach (var (key, values) in state.Precomputed ?? new Dictionary<string, ReferenceLogProbs>()) precomputed[key] = values;
        // Checkpoints written before the per-dataset keys hold the training set's values only.
        if (state.PrecomputedChosen is not null && state.PrecomputedRejected is not null)
            precomputed[LegacyKey] = new ReferenceLogProbs(state.PrecomputedChosen, state.PrecomputedRejected);
        history.Clear();
        history.AddRange(state.History);
        tokensSeen = history.Count == 0 ? 0 : history[^1].NumTokens;
        if (zip.GetEntry(RandomStateEntry) is { } randomEntry)
        {
            using var bytes = new MemoryStream();
            using (var entry = randomEntry.Open()) entry.CopyTo(bytes);
            using var randomState = tensor(bytes.ToArray(), ScalarType.Byte);
            torch.random.set_rng_state(randomState);
        }
        pendingDataCheck = saved is not null && data is null && saved.DataOnly().Entries.Count > 0 ? (saved.DataOnly(), onMismatch, path, optionName) : null;
        return differences;
    }

    private const string RandomStateEntry = "random-state.bin";

    /// <summary>Options (but the device: where training runs, not what it computes), tokenizer, model options and initial weights.</summary>
    private static TrainingFingerprint SetupFingerprint(MultimodalLm model, PreferenceTrainerOptions options)
    {
        var fingerprint = new TrainingFingerprint();
        fingerprint.AddOptions("", options, new[] { nameof(PreferenceTrainerOptions.Device) });
        fingerprint.AddOptions("Model", model.Options);
        fingerprint.Add("Model.Vision", model.Vision.GetType().Name);
        fingerprint.Add("Model.InitialWeights", TrainingFingerprint.Hash(model));
        fingerprint.Add("Tokenizer", TrainingFingerprint.Hash(model.Tokenizer));
        return fingerprint;
    }

    /// <summary>The content of every column of the pairs, under <paramref name="prefix"/>.</summary>
    private static TrainingFingerprint DataFingerprint(PreferenceDataset data, string prefix = "")
    {
        var fingerprint = new TrainingFingerprint();
        fingerprint.AddData(prefix + "ChosenImages", TrainingFingerprint.Hash(data.ChosenImages));
        fingerprint.AddData(prefix + "RejectedImages", TrainingFingerprint.Hash(data.RejectedImages));
        fingerprint.AddData(prefix + "Prompts", TrainingFingerprint.Hash(data.Prompts, "prompts"));
        fingerprint.AddData(prefix + "ChosenAnswers", TrainingFingerprint.Hash(data.ChosenAnswers, "chosen answers"));
        fingerprint.AddData(prefix + "RejectedAnswers", TrainingFingerprint.Hash(data.RejectedAnswers, "rejected answers"));
        fingerprint.AddData(prefix + "Lambdas", data.Lambdas is { } lambdas ? TrainingFingerprint.Hash(lambdas.ToArray(), "λ values") : "none");
        return fingerprint;
    }

    private TrainingFingerprint WithValidation(TrainingFingerprint data) => validationFingerprint is null ? data : data.Merge(validationFingerprint);

    /// <summary>
    /// Names the validation pairs that will be evaluated during training. With <see cref="ReferenceMode.Precomputed"/>
    /// their reference log-probs are part of the checkpoint, so they join its fingerprint ("Data.Validation.*") and a
    /// resume with other validation pairs is a mismatch; otherwise the validation pairs change nothing a checkpoint holds.
    /// Call before <see cref="LoadCheckpoint(string, PreferenceDataset?, CheckpointMismatch)"/>.
    /// </summary>
    internal void SetValidation(PreferenceDataset? data) =>
        validationFingerprint = data is not null && options.NeedsReference && options.Reference == ReferenceMode.Precomputed
            ? DataFingerprint(data, "Validation.") : null;

    /// <summary>Whether <paramref name="data"/> can be scored now: no reference needed, or its reference log-probs are
    /// held, or the policy still equals the reference (step 0).</summary>
    internal bool CanEvaluate(PreferenceDataset data) =>
        !(options.NeedsReference && options.Reference == ReferenceMode.Precomputed) || Step == 0 || precomputed.ContainsKey(ContentKey(data));

    /// <summary>Disposes the optimizer and the reference copy (not the trained model).</summary>
    public void Dispose()
    {
        optimizer.Dispose();
        reference?.Dispose();
    }

    // One optimiser step over `rows`, in micro-batches of BatchSize. Each micro-batch's loss is normalised by the whole
    // step's pair and answer-token counts, so the summed gradients equal those of one batch holding every row.
    private PreferenceStepMetrics TrainStep(PreferenceDataset data, TextBatch texts, long[] rows, int epoch, double learningRate)
    {
        var watch = Stopwatch.StartNew();
        using var scope = NewDisposeScope();
        policy.train();
        foreach (var group in optimizer.ParamGroups) group.LearningRate = learningRate;
        optimizer.zero_grad();
        double sftWeight = options.EffectiveSftWeight;
        double stepAnswerTokens = Math.Max(1, ChosenTokenCount(texts, rows));
        var total = new Totals();
        for (int start = 0; start < rows.Length; start += options.BatchSize)
        {
            using var micro = NewDisposeScope();
            var r = Score(data, texts, rows[start..Math.Min(rows.Length, start + options.BatchSize)], withGradient: true);
            using var tokenScale = (1.0 / stepAnswerTokens).ToScalar();
            var ce = r.NllSum.mul(tokenScale);
            Tensor loss;
            if (r.PerPairLoss is null)
            {
                loss = ce;
            }
            else
            {
                using var pairScale = (1.0 / rows.Length).ToScalar();
                using var weight = sftWeight.ToScalar();
                loss = r.PerPairLoss.sum().mul(pairScale).add(ce.mul(weight), Scalars.One);
            }
            loss.backward();
            total.Add(r);
        }
        double gradNorm = GradientNorm();
        if (options.MaxGradNorm > 0) nn.utils.clip_grad_norm_(trainable, options.MaxGradNorm);
        optimizer.step();
        Step++;
        tokensSeen += total.TextTokens;
        double seconds = watch.Elapsed.TotalSeconds;
        return total.Metrics(Step, epoch, rows.Length, options, PhaseName) with
        {
            GradNorm = gradNorm,
            LearningRate = learningRate,
            NumTokens = tokensSeen,
            TokensPerSecond = total.TextTokens / Math.Max(seconds, 1e-9),
        };
    }

    private double GradientNorm()
    {
        using var scope = NewDisposeScope();
        double squares = 0;
        foreach (var p in trainable)
            if (p.grad is { } g) squares += g.detach().to_type(ScalarType.Float64).pow(Scalars.Two).sum().item<double>();
        return Math.Sqrt(squares);
    }

    private static long ChosenTokenCount(TextBatch texts, long[] rows)
    {
        using var scope = NewDisposeScope();
        using var ignore = SequenceLogProbs.IgnoreIndex.ToScalar();
        return texts.Labels.index_select(0, tensor(rows))[.., 1..].ne(ignore).sum().item<long>();
    }

    // Everything created here belongs to the caller's dispose scope.
    private BatchScore Score(PreferenceDataset data, TextBatch texts, long[] rows, bool withGradient)
    {
        int n = data.Count;
        var chosenRows = tensor(rows);
        var chosenImages = data.ChosenImages.index_select(0, chosenRows).to(device);
        if (options.Objective == PreferenceObjective.Sft)
        {
            var (ids, labels, tokens) = Slice(texts, rows);
            var side = SideScore.Compute(policy.forward(chosenImages, ids), labels);
            return new BatchScore(null, -side.LogProbs.Sum.sum(), side, null, null, tokens);
        }

        var rejectedImages = data.RejectedImages.index_select(0, chosenRows).to(device);
        var bothRows = rows.Concat(rows.Select(r => r + n)).ToArray();
        SideScore chosenSide, rejectedSide;
        Tensor? referenceChosen = null, referenceRejected = null;
        var (bothIds, bothLabels, bothTokens) = Slice(texts, bothRows);
        var bothImages = cat(new[] { chosenImages, rejectedImages }, 0);
        if (options.DetachRejected && withGradient)
        {
            int b = rows.Length;
            chosenSide = SideScore.Compute(policy.forward(chosenImages, bothIds[..b]), bothLabels[..b]);
            using (no_grad()) rejectedSide = SideScore.Compute(policy.forward(rejectedImages, bothIds[b..]), bothLabels[b..]);
        }
        else
        {
            (chosenSide, rejectedSide) = SideScore.Compute(policy.forward(bothImages, bothIds), bothLabels).Split();
        }
        var chosen = chosenSide.LogProbs;
        var rejected = rejectedSide.LogProbs;

        if (options.NeedsReference)
        {
            if (reference is not null)
            {
                using var noGrad = no_grad();
                var (rc, rr) = Split(SequenceLogProbs.Compute(reference.forward(bothImages, bothIds), bothLabels));
                (referenceChosen, referenceRejected) = (rc.Sum, rr.Sum);
            }
            else
            {
                referenceChosen = tensor(rows.Select(r => activeReference!.Chosen[r]).ToArray(), device: device);
                referenceRejected = tensor(rows.Select(r => activeReference!.Rejected[r]).ToArray(), device: device);
            }
        }

        Tensor perPair;
        PreferenceRewards rewards;
        double beta = options.Beta;
        double smoothing = options.LabelSmoothing;
        Tensor rc0 = referenceChosen!, rr0 = referenceRejected!;
        switch (options.Objective)
        {
            case PreferenceObjective.SimPo:
            case PreferenceObjective.MixedSimPo:
                var aw = chosen.Average();
                var al = rejected.Average();
                if (options.Objective == PreferenceObjective.SimPo)
                {
                    double gamma = options.SimPoConvention == SimPoConvention.Paper ? options.Gamma : beta * options.Gamma;
                    perPair = PreferenceLosses.SimPo(aw, al, beta, gamma, smoothing);
                }
                else
                {
                    var lambdas = tensor(rows.Select(r => data.Lambdas![(int)r]).ToArray(), device: device);
                    perPair = PreferenceLosses.MixedSimPo(aw, al, beta, lambdas, options.SimPoConvention);
                }
                rewards = PreferenceLosses.SimPoRewards(aw, al, beta);
                // TRL's CPO trainer logs the averaged log-probs its SimPO loss compares.
                return new BatchScore(perPair, -chosen.Sum.sum(), chosenSide, rejectedSide, rewards, bothTokens, aw.detach(), al.detach());
            case PreferenceObjective.Dpo:
            case PreferenceObjective.Rpo:
                perPair = smoothing > 0
                    ? PreferenceLosses.ConservativeDpo(chosen.Sum, rejected.Sum, rc0, rr0, beta, smoothing)
                    : PreferenceLosses.Dpo(chosen.Sum, rejected.Sum, rc0, rr0, beta);
                break;
            case PreferenceObjective.RobustDpo:
                perPair = PreferenceLosses.RobustDpo(chosen.Sum, rejected.Sum, rc0, rr0, beta, smoothing);
                break;
            case PreferenceObjective.DpoLengthNormalized:
                perPair = PreferenceLosses.DpoLengthNormalized(chosen.Sum, rejected.Sum, rc0, rr0, chosen.TokenCount, rejected.TokenCount, beta);
                break;
            case PreferenceObjective.Ipo:
                perPair = PreferenceLosses.IpoTokenNormalized(chosen.Sum, rejected.Sum, rc0, rr0, chosen.TokenCount, rejected.TokenCount, beta);
                break;
            case PreferenceObjective.IpoSummed:
                perPair = PreferenceLosses.Ipo(chosen.Sum, rejected.Sum, rc0, rr0, beta);
                break;
            case PreferenceObjective.Hinge:
                perPair = PreferenceLosses.Hinge(chosen.Sum, rejected.Sum, rc0, rr0, beta);
                break;
            default:
                throw new InvalidOperationException($"unhandled objective {options.Objective}.");
        }
        rewards = PreferenceLosses.DpoRewards(chosen.Sum, rejected.Sum, rc0, rr0, beta);
        return new BatchScore(perPair, -chosen.Sum.sum(), chosenSide, rejectedSide, rewards, bothTokens);
    }

    // Rows 0..N−1 hold the chosen texts and N..2N−1 the rejected ones, so one padded tokenisation serves both sides.
    // Tokenising up front makes an empty answer or an over-long text fail before any step.
    private TextBatch Prepare(PreferenceDataset data)
    {
        ArgumentNullException.ThrowIfNull(data);
        if (options.Objective == PreferenceObjective.MixedSimPo && data.Lambdas is null)
            throw new ArgumentException(
                "Objective = MixedSimPo needs λ per pair; build the dataset with PreferenceDataset.FromMixing (explicit pairs have no λ).", nameof(data));
        TruncatedRows = 0;
        using var chosen = BuildSide(data.Prompts, data.ChosenAnswers, "chosen");
        using var rejected = BuildSide(data.Prompts, data.RejectedAnswers, "rejected");
        long length = Math.Max(chosen.InputIds.shape[1], rejected.InputIds.shape[1]);
        Tensor Join(Tensor a, Tensor b, long fill)
        {
            using var scope = NewDisposeScope();
            var padded = new[] { a, b }.Select(t => nn.functional.pad(t, new[] { 0, length - t.shape[1] }, value: fill));
            return cat(padded.ToArray(), 0).DetachFromDisposeScope();
        }
        return new TextBatch(
            Join(chosen.InputIds, rejected.InputIds, policy.Tokenizer.PadId),
            Join(chosen.Labels, rejected.Labels, SequenceLogProbs.IgnoreIndex),
            Join(chosen.AttentionMask, rejected.AttentionMask, 0));
    }

    private TextBatch BuildSide(IReadOnlyList<string> prompts, IReadOnlyList<string> answers, string side)
    {
        try
        {
            var batch = TextBatch.Build(policy.Tokenizer, prompts, answers, maxLength, truncation: options.Truncation, maxPromptLength: options.MaxPromptLength);
            TruncatedRows += batch.TruncatedRows;
            return batch;
        }
        catch (ArgumentException e)
        {
            string reason = ExceptionMessages.WithoutParameter(e);
            throw new ArgumentException($"data, {side} side: {reason}", "data", e);
        }
    }

    /// <summary>
    /// Scores <paramref name="data"/> with the initial policy and keeps the values as its reference log-probs
    /// (<see cref="ReferenceMode.Precomputed"/>), as TRL's <c>precompute_ref_log_probs</c> does for its train and eval sets.
    /// <see cref="Train"/> and <see cref="Evaluate"/> do it themselves at step 0; call it for a validation set that is
    /// first evaluated after training has started. The values are saved in checkpoints.
    /// </summary>
    /// <exception cref="InvalidOperationException">Training has started, so the policy no longer equals the reference.</exception>
    public void PrecomputeReference(PreferenceDataset data)
    {
        using var texts = Prepare(data);
        if (options.NeedsReference && options.Reference == ReferenceMode.Precomputed) EnsurePrecomputed(data, texts);
    }

    private void EnsurePrecomputed(PreferenceDataset data, TextBatch texts)
    {
        string key = ContentKey(data);
        if (!precomputed.TryGetValue(key, out var values) && precomputed.Remove(LegacyKey, out var legacy))
        {
            if (legacy.Chosen.Length != data.Count)
                throw new ArgumentException(
                    $"the checkpoint's reference log-probs were precomputed for {legacy.Chosen.Length} pairs, but data has {data.Count}.", nameof(data));
            precomputed[key] = values = legacy;
        }
        if (values is not null) { activeReference = values; return; }
        if (Step > 0)
            throw new InvalidOperationException(
                $"reference log-probs of this dataset ({data.Count} pairs) were not precomputed, and after {Step} steps the policy is no longer " +
                "the reference (ReferenceMode.Precomputed keeps no copy). Call PrecomputeReference (or Evaluate) on it before training, or use ReferenceMode.Online.");
        var chosenValues = new float[data.Count];
        var rejectedValues = new float[data.Count];
        bool wasTraining = policy.training;
        policy.eval();
        try
        {
            using var noGrad = no_grad();
            for (int start = 0; start < data.Count; start += options.BatchSize)
            {
                using var scope = NewDisposeScope();
                var rows = Enumerable.Range(start, Math.Min(options.BatchSize, data.Count - start)).Select(i => (long)i).ToArray();
                var index = tensor(rows);
                var images = cat(new[] { data.ChosenImages.index_select(0, index), data.RejectedImages.index_select(0, index) }, 0).to(device);
                var (ids, labels, _) = Slice(texts, rows.Concat(rows.Select(r => r + data.Count)).ToArray());
                var (c, r) = Split(SequenceLogProbs.Compute(policy.forward(images, ids), labels));
                c.Sum.cpu().data<float>().CopyTo(chosenValues.AsSpan(start));
                r.Sum.cpu().data<float>().CopyTo(rejectedValues.AsSpan(start));
            }
        }
        finally
        {
            policy.train(wasTraining);
        }
        precomputed[key] = activeReference = new ReferenceLogProbs(chosenValues, rejectedValues);
    }

    private const string LegacyKey = "";

    // SHA-256 of the pairs' texts, images and λ: the identity of a dataset for its precomputed reference values.
    private static string ContentKey(PreferenceDataset data)
    {
        using var hash = System.Security.Cryptography.IncrementalHash.CreateHash(System.Security.Cryptography.HashAlgorithmName.SHA256);
        void Text(IEnumerable<string> texts)
        {
            foreach (string t in texts) hash.AppendData(System.Text.Encoding.UTF8.GetBytes(t + "\u0000"));
        }
        Text(data.Prompts);
        Text(data.ChosenAnswers);
        Text(data.RejectedAnswers);
        foreach (var images in new[] { data.ChosenImages, data.RejectedImages })
        {
            using var cpu = images.to(CPU).contiguous();
            hash.AppendData(System.Runtime.InteropServices.MemoryMarshal.AsBytes(cpu.data<float>().ToArray().AsSpan()));
        }
        if (data.Lambdas is { } lambdas) hash.AppendData(System.Runtime.InteropServices.MemoryMarshal.AsBytes(lambdas.ToArray().AsSpan()));
        return Convert.ToHexString(hash.GetHashAndReset());
    }

    // Selects rows of the pre-tokenised texts and trims the padding columns no selected row needs; also counts the real tokens.
    private (Tensor Ids, Tensor Labels, long Tokens) Slice(TextBatch texts, long[] rows)
    {
        var index = tensor(rows);
        var lengths = texts.AttentionMask.index_select(0, index).sum(1);
        long length = lengths.max().item<long>();
        long tokens = lengths.sum().item<long>();
        var ids = texts.InputIds.index_select(0, index).narrow(1, 0, length).to(device);
        var labels = texts.Labels.index_select(0, index).narrow(1, 0, length).to(device);
        return (ids, labels, tokens);
    }

    private static (SequenceLogProb Chosen, SequenceLogProb Rejected) Split(SequenceLogProb both)
    {
        var sums = both.Sum.chunk(2);
        var counts = both.TokenCount.chunk(2);
        return (new SequenceLogProb(sums[0], counts[0]), new SequenceLogProb(sums[1], counts[1]));
    }

    private long[] EpochOrder(int n, int epoch)
    {
        using var generator = new Generator(unchecked((ulong)(options.Seed * 1_000_003L + epoch)));
        using var perm = randperm(n, generator: generator);
        return perm.data<long>().ToArray();
    }

    private MultimodalLm CopyForReference(MultimodalLm source, VisionEncoder encoder)
    {
        var copy = new MultimodalLm(encoder, source.Tokenizer, source.Options);
        var sourceState = source.state_dict();
        var copyState = copy.state_dict();
        string? mismatch = copyState.Count != sourceState.Count
            ? $"{copyState.Count} tensors instead of {sourceState.Count}"
            : copyState.Where(kv => !sourceState.TryGetValue(kv.Key, out var t) || !t.shape.SequenceEqual(kv.Value.shape))
                .Select(kv => $"'{kv.Key}' [{string.Join(", ", kv.Value.shape)}]").FirstOrDefault();
        if (mismatch is not null)
        {
            copy.Dispose();
            throw new ArgumentException(
                $"the vision encoder made by visionEncoderFactory ({encoder.GetType().Name}) does not match the model's " +
                $"({source.Vision.GetType().Name}): the copy has {mismatch}.", "visionEncoderFactory");
        }
        copy.load_state_dict(sourceState, strict: true);
        copy.to(device);
        copy.eval();
        foreach (var p in copy.parameters()) p.requires_grad = false;
        return copy;
    }

    // Log-probs of one side plus the sum over its scored positions of the vocabulary-mean logit (TRL's logits/* numerator).
    private sealed record SideScore(SequenceLogProb LogProbs, Tensor LogitSum)
    {
        public static SideScore Compute(Tensor logits, Tensor labels)
        {
            var logProbs = SequenceLogProbs.Compute(logits, labels);
            using var noGrad = no_grad();
            using var ignore = SequenceLogProbs.IgnoreIndex.ToScalar();
            var scored = labels[.., 1..].ne(ignore).to_type(ScalarType.Float32);
            var logitSum = (logits.detach()[.., ..^1, ..].to_type(ScalarType.Float32).mean(new long[] { -1 }) * scored).sum(1);
            return new SideScore(logProbs, logitSum);
        }

        public (SideScore Chosen, SideScore Rejected) Split()
        {
            var (c, r) = PreferenceTrainer.Split(LogProbs);
            var logits = LogitSum.chunk(2);
            return (new SideScore(c, logits[0]), new SideScore(r, logits[1]));
        }
    }

    // ReportedChosen/Rejected: the per-pair log-probs logged as logps/* (sums, or averages for the SimPO objectives).
    private sealed record BatchScore(Tensor? PerPairLoss, Tensor NllSum, SideScore Chosen, SideScore? Rejected, PreferenceRewards? Rewards,
        long TextTokens, Tensor? ReportedChosen = null, Tensor? ReportedRejected = null);

    // Sums of a step's (or an evaluation's) batch scores, turned into means by Metrics.
    private sealed class Totals
    {
        private double loss, nll, chosenTokens, rejectedTokens, chosenLogits, rejectedLogits, chosenLogps, rejectedLogps;
        private double chosenReward, rejectedReward, accuracy;
        private bool pairs;
        public long TextTokens;

        public void Add(BatchScore r)
        {
            static double Sum(Tensor t) => t.detach().sum().to_type(ScalarType.Float64).item<double>();
            nll += Sum(r.NllSum);
            chosenTokens += Sum(r.Chosen.LogProbs.TokenCount);
            chosenLogits += Sum(r.Chosen.LogitSum);
            chosenLogps += Sum(r.ReportedChosen ?? r.Chosen.LogProbs.Sum);
            TextTokens += r.TextTokens;
            if (r.PerPairLoss is not null) loss += Sum(r.PerPairLoss);
            if (r.Rejected is not null)
            {
                pairs = true;
                rejectedTokens += Sum(r.Rejected.LogProbs.TokenCount);
                rejectedLogits += Sum(r.Rejected.LogitSum);
                rejectedLogps += Sum(r.ReportedRejected ?? r.Rejected.LogProbs.Sum);
            }
            if (r.Rewards is not null)
            {
                chosenReward += Sum(r.Rewards.Chosen);
                rejectedReward += Sum(r.Rewards.Rejected);
                accuracy += Sum(r.Rewards.Accuracies);
            }
        }

        public PreferenceStepMetrics Metrics(long step, int epoch, int count, PreferenceTrainerOptions options, string phase)
        {
            double ce = nll / Math.Max(1, chosenTokens);
            double none = double.NaN;
            return new PreferenceStepMetrics(step, epoch,
                pairs ? loss / count + options.EffectiveSftWeight * ce : ce,
                pairs ? chosenReward / count : none,
                pairs ? rejectedReward / count : none,
                pairs ? (chosenReward - rejectedReward) / count : none,
                pairs ? accuracy / count : none,
                chosenLogps / count,
                pairs ? rejectedLogps / count : none,
                ce)
            {
                Phase = phase,
                LogitsChosen = chosenLogits / Math.Max(1, chosenTokens),
                LogitsRejected = pairs ? rejectedLogits / Math.Max(1, rejectedTokens) : none,
            };
        }
    }

    private sealed record CheckpointState(string Format, PreferenceObjective Objective, long Step, float[]? PrecomputedChosen,
        float[]? PrecomputedRejected, List<PreferenceStepMetrics> History)
    {
        public Dictionary<string, ReferenceLogProbs>? Precomputed { get; init; }
    }

    private sealed record ReferenceLogProbs(float[] Chosen, float[] Rejected);
}
