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
/// <para>Shuffling is seeded per epoch, so a run restored with <see cref="LoadCheckpoint"/> continues exactly as
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
    private readonly AdamW optimizer;
    private readonly Parameter[] trainable;
    private readonly List<PreferenceStepMetrics> history = new();
    private float[]? precomputedChosen;
    private float[]? precomputedRejected;

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
        device = TorchDevice.Resolve(this.options.Device, nameof(PreferenceTrainerOptions.Device));
        policy = model;
        policy.to(device);
        if (!this.options.TrainVisionEncoder)
            foreach (var p in policy.Vision.parameters()) p.requires_grad = false;
        trainable = policy.parameters().Where(p => p.requires_grad).ToArray();
        if (trainable.Length == 0) throw new ArgumentException("model has no trainable parameters.", nameof(model));
        optimizer = optim.AdamW(trainable, lr: this.options.LearningRate, weight_decay: this.options.WeightDecay);

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

    /// <summary>Optimisation steps done so far (restored by <see cref="LoadCheckpoint"/>).</summary>
    public long Step { get; private set; }

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
        using var texts = Prepare(data);
        int n = data.Count;
        int batchesPerEpoch = (n + options.BatchSize - 1) / options.BatchSize;
        long totalSteps = (long)options.Epochs * batchesPerEpoch;
        if (options.NeedsReference && options.Reference == ReferenceMode.Precomputed)
            EnsurePrecomputed(data, texts);

        long[]? order = null;
        int orderEpoch = -1;
        while (Step < totalSteps)
        {
            cancellationToken.ThrowIfCancellationRequested();
            int epoch = (int)(Step / batchesPerEpoch);
            int batch = (int)(Step % batchesPerEpoch);
            if (epoch != orderEpoch)
            {
                order = EpochOrder(n, epoch);
                orderEpoch = epoch;
            }
            var rows = order![(batch * options.BatchSize)..Math.Min(n, (batch + 1) * options.BatchSize)];
            var metrics = TrainStep(data, texts, rows, epoch);
            history.Add(metrics);
            progress?.Report(metrics);
        }
        return history;
    }

    /// <summary>
    /// Scores <paramref name="data"/> without training (eval mode, no gradient): per-pair metrics averaged over all
    /// pairs, the CE as a token mean over all chosen answers. <see cref="PreferenceStepMetrics.Epoch"/> is −1.
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
            double loss = 0, chosenReward = 0, rejectedReward = 0, accuracy = 0, chosenLogp = 0, rejectedLogp = 0, nll = 0, tokens = 0;
            for (int start = 0; start < data.Count; start += options.BatchSize)
            {
                using var scope = NewDisposeScope();
                var rows = Enumerable.Range(start, Math.Min(options.BatchSize, data.Count - start)).Select(i => (long)i).ToArray();
                var r = Score(data, texts, rows, withGradient: false);
                nll += r.NllSum.item<float>();
                tokens += r.TokenCount.item<float>();
                chosenLogp += r.ChosenLogps.sum().item<float>();
                if (r.PerPairLoss is not null) loss += r.PerPairLoss.sum().item<float>();
                if (r.RejectedLogps is not null) rejectedLogp += r.RejectedLogps.sum().item<float>();
                if (r.Rewards is not null)
                {
                    chosenReward += r.Rewards.Chosen.sum().item<float>();
                    rejectedReward += r.Rewards.Rejected.sum().item<float>();
                    accuracy += r.Rewards.Accuracies.sum().item<float>();
                }
            }
            int count = data.Count;
            double ce = nll / Math.Max(1, tokens);
            bool sft = options.Objective == PreferenceObjective.Sft;
            return new PreferenceStepMetrics(Step, -1,
                sft ? ce : loss / count + options.SftWeight * ce,
                sft ? double.NaN : chosenReward / count,
                sft ? double.NaN : rejectedReward / count,
                sft ? double.NaN : (chosenReward - rejectedReward) / count,
                sft ? double.NaN : accuracy / count,
                chosenLogp / count,
                sft ? double.NaN : rejectedLogp / count,
                ce);
        }
        finally
        {
            policy.train(wasTraining);
        }
    }

    /// <summary>
    /// Writes a zip checkpoint: step, history, precomputed reference log-probs, policy and reference weights, AdamW state.
    /// </summary>
    public void SaveCheckpoint(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        using var file = File.Create(path);
        using var zip = new ZipArchive(file, ZipArchiveMode.Create);
        using (var entry = zip.CreateEntry("state.json").Open())
            JsonSerializer.Serialize(entry, new CheckpointState(FormatName, options.Objective, Step, precomputedChosen, precomputedRejected, history), JsonOptions);
        ArchiveEntries.Write(zip, "policy.bin", w => policy.save(w));
        ArchiveEntries.Write(zip, "optimizer.bin", optimizer.save_state_dict);
        if (reference is not null) ArchiveEntries.Write(zip, "reference.bin", w => reference.save(w));
    }

    /// <summary>
    /// Restores a checkpoint written by <see cref="SaveCheckpoint"/> into this trainer (same model architecture and
    /// objective); the next <see cref="Train"/> continues from its step.
    /// </summary>
    public void LoadCheckpoint(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        if (!File.Exists(path)) throw new FileNotFoundException($"checkpoint '{path}' was not found.", path);
        using var zip = ZipFile.OpenRead(path);
        CheckpointState state;
        using (var entry = ArchiveEntries.Get(zip, "state.json", ArchiveKind).Open())
            state = JsonSerializer.Deserialize<CheckpointState>(entry, JsonOptions) ?? throw new InvalidDataException("the checkpoint's state.json is empty.");
        if (state.Format != FormatName)
            throw new InvalidDataException($"checkpoint '{path}' has format '{state.Format}', expected '{FormatName}'.");
        if (state.Objective != options.Objective)
            throw new InvalidOperationException($"checkpoint '{path}' was trained with Objective = {state.Objective}, this trainer uses {options.Objective}.");
        if (reference is not null && zip.GetEntry("reference.bin") is null)
            throw new InvalidDataException($"checkpoint '{path}' holds no reference weights, but this trainer uses an online reference.");

        ArchiveEntries.Read(zip, "policy.bin", ArchiveKind, r => policy.load(r, strict: true));
        ArchiveEntries.Read(zip, "optimizer.bin", ArchiveKind, optimizer.load_state_dict);
        if (reference is not null) ArchiveEntries.Read(zip, "reference.bin", ArchiveKind, r => reference.load(r, strict: true));
        Step = state.Step;
        precomputedChosen = state.PrecomputedChosen;
        precomputedRejected = state.PrecomputedRejected;
        history.Clear();
        history.AddRange(state.History);
    }

    /// <summary>Disposes the optimizer and the reference copy (not the trained model).</summary>
    public void Dispose()
    {
        optimizer.Dispose();
        reference?.Dispose();
    }

    private PreferenceStepMetrics TrainStep(PreferenceDataset data, TextBatch texts, long[] rows, int epoch)
    {
        using var scope = NewDisposeScope();
        policy.train();
        var r = Score(data, texts, rows, withGradient: true);
        var ce = r.NllSum / r.TokenCount.clamp_min(1);
        var loss = r.PerPairLoss is null ? ce : PreferenceLosses.WithSft(PreferenceLosses.Mean(r.PerPairLoss), ce, 1.0, options.SftWeight);

        optimizer.zero_grad();
        loss.backward();
        if (options.MaxGradNorm > 0) nn.utils.clip_grad_norm_(trainable, options.MaxGradNorm);
        optimizer.step();
        Step++;

        double Mean(Tensor? t) => t is null ? double.NaN : t.mean().item<float>();
        return new PreferenceStepMetrics(Step, epoch, loss.item<float>(),
            Mean(r.Rewards?.Chosen), Mean(r.Rewards?.Rejected), Mean(r.Rewards?.Margins), Mean(r.Rewards?.Accuracies),
            Mean(r.ChosenLogps), Mean(r.RejectedLogps), ce.item<float>());
    }

    // Everything created here belongs to the caller's dispose scope.
    private BatchScore Score(PreferenceDataset data, TextBatch texts, long[] rows, bool withGradient)
    {
        int n = data.Count;
        var chosenRows = tensor(rows);
        var chosenImages = data.ChosenImages.index_select(0, chosenRows).to(device);
        if (options.Objective == PreferenceObjective.Sft)
        {
            var (ids, labels) = Slice(texts, rows);
            var lp = SequenceLogProbs.Compute(policy.forward(chosenImages, ids), labels);
            return new BatchScore(null, -lp.Sum.sum(), lp.TokenCount.sum(), lp.Sum.detach(), null, null);
        }

        var rejectedImages = data.RejectedImages.index_select(0, chosenRows).to(device);
        var bothRows = rows.Concat(rows.Select(r => r + n)).ToArray();
        SequenceLogProb chosen, rejected;
        Tensor? referenceChosen = null, referenceRejected = null;
        var (bothIds, bothLabels) = Slice(texts, bothRows);
        var bothImages = cat(new[] { chosenImages, rejectedImages }, 0);
        if (options.DetachRejected && withGradient)
        {
            int b = rows.Length;
            chosen = SequenceLogProbs.Compute(policy.forward(chosenImages, bothIds[..b]), bothLabels[..b]);
            using (no_grad()) rejected = SequenceLogProbs.Compute(policy.forward(rejectedImages, bothIds[b..]), bothLabels[b..]);
        }
        else
        {
            (chosen, rejected) = Split(SequenceLogProbs.Compute(policy.forward(bothImages, bothIds), bothLabels));
        }

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
                referenceChosen = tensor(rows.Select(r => precomputedChosen![r]).ToArray(), device: device);
                referenceRejected = tensor(rows.Select(r => precomputedRejected![r]).ToArray(), device: device);
            }
        }

        Tensor perPair;
        PreferenceRewards rewards;
        double beta = options.Beta;
        switch (options.Objective)
        {
            case PreferenceObjective.SimPo:
            case PreferenceObjective.MixedSimPo:
                var aw = chosen.Average();
                var al = rejected.Average();
                if (options.Objective == PreferenceObjective.SimPo)
                {
                    double gamma = options.SimPoConvention == SimPoConvention.Paper ? options.Gamma : beta * options.Gamma;
                    perPair = PreferenceLosses.SimPo(aw, al, beta, gamma);
                }
                else
                {
                    var lambdas = tensor(rows.Select(r => data.Lambdas![(int)r]).ToArray(), device: device);
                    perPair = PreferenceLosses.MixedSimPo(aw, al, beta, lambdas, options.SimPoConvention);
                }
                rewards = PreferenceLosses.SimPoRewards(aw, al, beta);
                break;
            case PreferenceObjective.Dpo:
                perPair = options.LabelSmoothing > 0
                    ? PreferenceLosses.ConservativeDpo(chosen.Sum, rejected.Sum, referenceChosen!, referenceRejected!, beta, options.LabelSmoothing)
                    : PreferenceLosses.Dpo(chosen.Sum, rejected.Sum, referenceChosen!, referenceRejected!, beta);
                rewards = PreferenceLosses.DpoRewards(chosen.Sum, rejected.Sum, referenceChosen!, referenceRejected!, beta);
                break;
            case PreferenceObjective.Ipo:
                perPair = PreferenceLosses.Ipo(chosen.Sum, rejected.Sum, referenceChosen!, referenceRejected!, beta);
                rewards = PreferenceLosses.DpoRewards(chosen.Sum, rejected.Sum, referenceChosen!, referenceRejected!, beta);
                break;
            case PreferenceObjective.Hinge:
                perPair = PreferenceLosses.Hinge(chosen.Sum, rejected.Sum, referenceChosen!, referenceRejected!, beta);
                rewards = PreferenceLosses.DpoRewards(chosen.Sum, rejected.Sum, referenceChosen!, referenceRejected!, beta);
                break;
            default:
                throw new InvalidOperationException($"unhandled objective {options.Objective}.");
        }
        return new BatchScore(perPair, -chosen.Sum.sum(), chosen.TokenCount.sum(), chosen.Sum.detach(), rejected.Sum.detach(), rewards);
    }

    // Rows 0..N−1 hold the chosen texts and N..2N−1 the rejected ones, so one padded tokenisation serves both sides.
    // Tokenising up front makes an empty answer or an over-long text fail before any step.
    private TextBatch Prepare(PreferenceDataset data)
    {
        ArgumentNullException.ThrowIfNull(data);
        if (options.Objective == PreferenceObjective.MixedSimPo && data.Lambdas is null)
            throw new ArgumentException(
                "Objective = MixedSimPo needs λ per pair; build the dataset with PreferenceDataset.FromMixing (explicit pairs have no λ).", nameof(data));
        if (options.NeedsReference && options.Reference == ReferenceMode.Precomputed && precomputedChosen is not null && precomputedChosen.Length != data.Count)
            throw new ArgumentException(
                $"the reference log-probs were precomputed for {precomputedChosen.Length} pairs, but data has {data.Count}; " +
                "use one dataset per trainer (its pairs are fixed so the precomputed values stay valid).", nameof(data));
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
            return TextBatch.Build(policy.Tokenizer, prompts, answers, policy.Options.MaxTextLength);
        }
        catch (ArgumentException e)
        {
            string reason = e.ParamName is null ? e.Message : e.Message.Replace($" (Parameter '{e.ParamName}')", "", StringComparison.Ordinal);
            throw new ArgumentException($"data, {side} side: {reason}", "data", e);
        }
    }

    private void EnsurePrecomputed(PreferenceDataset data, TextBatch texts)
    {
        if (precomputedChosen is not null) return;
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
                var (ids, labels) = Slice(texts, rows.Concat(rows.Select(r => r + data.Count)).ToArray());
                var (c, r) = Split(SequenceLogProbs.Compute(policy.forward(images, ids), labels));
                c.Sum.cpu().data<float>().CopyTo(chosenValues.AsSpan(start));
                r.Sum.cpu().data<float>().CopyTo(rejectedValues.AsSpan(start));
            }
        }
        finally
        {
            policy.train(wasTraining);
        }
        precomputedChosen = chosenValues;
        precomputedRejected = rejectedValues;
    }

    // Selects rows of the pre-tokenised texts and trims the padding columns no selected row needs.
    private (Tensor Ids, Tensor Labels) Slice(TextBatch texts, long[] rows)
    {
        var index = tensor(rows);
        var mask = texts.AttentionMask.index_select(0, index);
        long length = mask.sum(1).max().item<long>();
        var ids = texts.InputIds.index_select(0, index).narrow(1, 0, length).to(device);
        var labels = texts.Labels.index_select(0, index).narrow(1, 0, length).to(device);
        return (ids, labels);
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

    private sealed record BatchScore(Tensor? PerPairLoss, Tensor NllSum, Tensor TokenCount, Tensor ChosenLogps, Tensor? RejectedLogps,
        PreferenceRewards? Rewards);

    private sealed record CheckpointState(string Format, PreferenceObjective Objective, long Step, float[]? PrecomputedChosen,
        float[]? PrecomputedRejected, List<PreferenceStepMetrics> History);
}
