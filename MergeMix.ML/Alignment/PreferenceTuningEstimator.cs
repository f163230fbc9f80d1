using System.Diagnostics;
using System.Globalization;
using MergeMix.ML.Data;
using MergeMix.ML.Mixing;
using MergeMix.ML.Runtime;
using MergeMix.ML.Transforms;
using MergeMix.ML.Vision;
using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace MergeMix.ML.Alignment;

/// <summary>
/// Trains a small LLaVA-style multimodal LM (<see cref="VisionTransformerEncoder"/> → projector → decoder) on an image
/// column and text columns: supervised fine-tuning, then preference optimisation (MergeMix's mixed SimPO by default,
/// or SimPO, DPO, IPO, hinge), and returns a <see cref="PreferenceTuningTransformer"/> that adds a generated
/// <c>Response</c> column. Use <c>mlContext.Alignment().PreferenceTuning(options)</c>.
/// </summary>
/// <remarks>
/// <para>Two kinds of data. Rows (image, prompt, answer): SFT learns the answers; preference pairs are then built as
/// (raw image → answer) preferred over (mixed image → answer) by <see cref="Options.Mixing"/> (MergeMix by default,
/// with attention from the model's own ViT after SFT), λ per pair. Rows (image, prompt, chosen, rejected), as in
/// standard DPO data: SFT learns the chosen answers and the pairs are taken as given.</para>
/// <para>The mixed images are drawn once from <see cref="Options.Seed"/>, so every preference epoch (and DPO's
/// precomputed reference log-probs, and a resumed run) sees the same pairs.</para>
/// </remarks>
public sealed class PreferenceTuningEstimator : IEstimator<PreferenceTuningTransformer>
{
    private const string SftCheckpointName = "sft.checkpoint.zip";
    private const string PreferenceCheckpointName = "preference.checkpoint.zip";

    /// <summary>Options of <see cref="PreferenceTuningEstimator"/>.</summary>
    public sealed class Options
    {
        /// <summary>Image column: a known-size <c>Vector&lt;Single&gt;</c> of square planar CHW images in raw pixel units
        /// (0..255, as <c>ExtractPixels</c> writes them); the encoder normalises them.</summary>
        public string ImageColumnName = "Features";

        /// <summary>Text column with the prompt (question) of each row; may be empty text.</summary>
        public string PromptColumnName = "Prompt";

        /// <summary>Text column with the ground-truth answer, for rows (image, prompt, answer): SFT targets and the answer of
        /// both sides of the mixed preference pairs. Ignored when <see cref="ChosenColumnName"/> is set.</summary>
        public string? AnswerColumnName = "Answer";

        /// <summary>Text column with the preferred answer of explicit pairs (image, prompt, chosen, rejected); null = rows with
        /// <see cref="AnswerColumnName"/> and pairs made by <see cref="Mixing"/>.</summary>
        public string? ChosenColumnName;

        /// <summary>Text column with the dispreferred answer of explicit pairs (required with <see cref="ChosenColumnName"/>).</summary>
        public string? RejectedColumnName;

        /// <summary>Output text column: the generated response.</summary>
        public string ResponseColumnName = "Response";

        /// <summary>Optional input text column whose response the transformer scores (given image and prompt); null = no scoring.</summary>
        public string? ScoreResponseColumnName;

        /// <summary>Output Single column (only with <see cref="ScoreResponseColumnName"/>): the average log-probability per
        /// token of that response (answer tokens + eos), as SimPO uses it.</summary>
        public string LogProbColumnName = "ResponseLogProb";

        /// <summary>Mixing policy that makes the rejected images of rows (image, prompt, answer); null = MergeMix
        /// (<see cref="MergeMixPolicy"/>) with attention from the model's own ViT. Mixup, CutMix, ResizeMix, ... work too
        /// (<see cref="MixPolicies.Create"/>). λ must lie in [0, 1].</summary>
        public IMixPolicy? Mixing;

        /// <summary>Rows mixed together (mixing partners come from the same group), ≥ 2.</summary>
        public int MixGroupSize = 16;

        /// <summary>Epochs of supervised fine-tuning before the preference phase (0 = none).</summary>
        public int SftEpochs = 6;

        /// <summary>Epochs of <see cref="PreferenceTrainerOptions.Objective"/> after SFT (0 = none).</summary>
        public int PreferenceEpochs = 1;

        /// <summary>AdamW learning rate of the SFT phase (the preference phase uses <see cref="Trainer"/>'s).</summary>
        public double SftLearningRate = 1e-3;

        /// <summary>
        /// The preference phase: objective (mixed SimPO by default), β, γ, SFT weight, reference mode, learning rate, batch
        /// size, ... Its <see cref="PreferenceTrainerOptions.Epochs"/>, <see cref="PreferenceTrainerOptions.Seed"/> and
        /// <see cref="PreferenceTrainerOptions.Device"/> are replaced by <see cref="PreferenceEpochs"/>, <see cref="Seed"/>
        /// and <see cref="Device"/>; its batch size, weight decay, clipping and vision-encoder flag also apply to SFT.
        /// </summary>
        public PreferenceTrainerOptions Trainer = new() { LearningRate = 2e-4, BatchSize = 32 };

        /// <summary>The image tower. Its ViT's ImageSize and Channels are taken from the image column.</summary>
        public VisionTransformerEncoderOptions Encoder = new();

        /// <summary>
        /// Optional trained ViT (e.g. <c>VisionTransformerClassifier.Model.Backbone</c>) whose weights initialise the
        /// encoder's ViT, as LLaVA starts from a pretrained vision tower. Every parameter but the classification head is
        /// copied, so its architecture must match <see cref="Encoder"/>'s (image size and channels as in the data); set
        /// <see cref="VisionTransformerEncoderOptions.ChannelMean"/>/<see cref="VisionTransformerEncoderOptions.ChannelStd"/>
        /// to the normalisation it was trained with. Not kept: the trained weights live in the returned model. For a timm or
        /// Hugging Face checkpoint file use <see cref="VisionTransformerEncoderOptions.InitialWeights"/> instead (not both).
        /// </summary>
        public VisionTransformer? PretrainedVision;

        /// <summary>The decoder.</summary>
        public MultimodalLmOptions Model = new() { ModelDim = 96, Layers = 2, Heads = 4, MaxTextLength = 24 };

        /// <summary>Tokenizer (e.g. <see cref="MultimodalTokenizer.FromFiles"/>); null = a byte-level BPE learned from the
        /// training texts with <see cref="MultimodalTokenizer.CreateFromCorpus"/>.</summary>
        public MultimodalTokenizer? Tokenizer;

        /// <summary>Most tokens generated per response (generation also stops at eos and at the context limit).</summary>
        public int MaxNewTokens = 16;

        /// <summary>0 = greedy decoding; &gt; 0 samples from softmax(logits / temperature).</summary>
        public double Temperature = 0;

        /// <summary>Sampling only: keep the k most likely tokens (Hugging Face <c>top_k</c>; 0 = all).</summary>
        public int TopK = 0;

        /// <summary>Sampling only: nucleus mass (Hugging Face <c>top_p</c>, in (0, 1]; 1 = all tokens).</summary>
        public double TopP = 1.0;

        /// <summary>How prompts are shown to the model in training and generation (null = raw; <see cref="Alignment.PromptTemplate.Chat"/>
        /// for chat roles). Its special tokens are added to a learned tokenizer and must be single tokens of a given one.</summary>
        public PromptTemplate? PromptTemplate;

        /// <summary>Rows generated together by <see cref="PreferenceTuningTransformer.Transform"/>.</summary>
        public int GenerationBatchSize = 64;

        /// <summary>Seed of shuffling, pair mixing and sampling (weight initialisation uses the sub-options' InitSeed).</summary>
        public int Seed = 0;

        /// <summary>"cpu", "cuda" or "cuda:N".</summary>
        public string Device = "cpu";

        /// <summary>
        /// Optional held-out rows with the training data's columns, scored after every epoch of both phases (TRL's
        /// eval_dataset): SFT epochs report the CE, preference epochs the objective's metrics on validation pairs (explicit
        /// pairs as given; mixing pairs made with the same policy, seeded with <see cref="Seed"/> + 1). The metrics, named
        /// eval_loss, eval_rewards/margins, ... (<see cref="PreferenceStepMetrics.IsEvaluation"/>), go to <see cref="Progress"/>,
        /// the ML.NET log and <see cref="PreferenceTuningHistory.Evaluations"/>. Not used to choose anything.
        /// </summary>
        public IDataView? ValidationSet;

        /// <summary>Receives every optimisation step's metrics (SFT steps, then preference steps), synchronously on the training thread.</summary>
        public IProgress<PreferenceStepMetrics>? Progress;

        /// <summary>Checked before every step; cancelling makes <c>Fit</c> throw <see cref="OperationCanceledException"/>.</summary>
        public CancellationToken CancellationToken;

        /// <summary>
        /// Folder for checkpoints, written at the end of every epoch and every <see cref="CheckpointEverySteps"/> steps
        /// (<c>sft.checkpoint.zip</c>, <c>preference.checkpoint.zip</c>). When it already holds them, <c>Fit</c> resumes
        /// where they stopped, but only when they were made with the same data (pairs, images, texts, λ), tokenizer,
        /// model options, initial weights and trainer options (all but the device): anything else fails naming what
        /// differs, unless <see cref="OnCheckpointMismatch"/> is <see cref="CheckpointMismatch.Resume"/>. null = none.
        /// </summary>
        public string? CheckpointFolder;

        /// <summary>Also checkpoint inside an epoch every this many optimisation steps (0 = at epoch ends only), so an
        /// interrupted long epoch resumes from its last such step, exactly.</summary>
        public int CheckpointEverySteps;

        /// <summary>
        /// What to do when <see cref="CheckpointFolder"/> holds a checkpoint made with other data or options:
        /// <see cref="CheckpointMismatch.Fail"/> (default) or <see cref="CheckpointMismatch.Resume"/>, for a deliberate
        /// continuation, e.g. several runs starting from one shared SFT checkpoint (the differences are logged as a warning).
        /// </summary>
        public CheckpointMismatch OnCheckpointMismatch = CheckpointMismatch.Fail;

        /// <summary>True when the rows are explicit (chosen, rejected) pairs.</summary>
        internal bool ExplicitPairs => ChosenColumnName is not null;

        internal Options Clone()
        {
            var copy = (Options)MemberwiseClone();
            copy.Trainer = Trainer?.Clone()!;
            copy.Encoder = Encoder?.Clone()!;
            copy.Model = Model?.Clone()!;
            return copy;
        }

        internal void Validate()
        {
            NonEmpty(ImageColumnName, nameof(ImageColumnName));
            if (PromptColumnName is null) throw new ArgumentNullException(nameof(PromptColumnName), "PromptColumnName must name the prompt column.");
            NonEmpty(PromptColumnName, nameof(PromptColumnName));
            NonEmpty(ResponseColumnName, nameof(ResponseColumnName));
            NonEmpty(LogProbColumnName, nameof(LogProbColumnName));
            if (ExplicitPairs)
            {
                NonEmpty(ChosenColumnName!, nameof(ChosenColumnName));
                if (string.IsNullOrWhiteSpace(RejectedColumnName))
                    throw new ArgumentException("RejectedColumnName must name the rejected-answer column when ChosenColumnName is set (explicit pairs).",
                        nameof(RejectedColumnName));
            }
            else
            {
                if (RejectedColumnName is not null)
                    throw new ArgumentException("RejectedColumnName is set but ChosenColumnName is not; explicit pairs need both.", nameof(ChosenColumnName));
                if (string.IsNullOrWhiteSpace(AnswerColumnName))
                    throw new ArgumentException("AnswerColumnName must name the answer column (or set ChosenColumnName and RejectedColumnName for explicit pairs).",
                        nameof(AnswerColumnName));
            }
            var inputs = new[] { ImageColumnName, PromptColumnName, ScoreResponseColumnName };
            if (inputs.Contains(ResponseColumnName) || (ScoreResponseColumnName is not null && (inputs.Contains(LogProbColumnName) || LogProbColumnName == ResponseColumnName)))
                throw new ArgumentException(
                    $"ResponseColumnName ('{ResponseColumnName}') and LogProbColumnName ('{LogProbColumnName}') must differ from each other and from the input columns.",
                    nameof(ResponseColumnName));
            if (CheckpointEverySteps < 0)
                throw new ArgumentOutOfRangeException(nameof(CheckpointEverySteps), CheckpointEverySteps, "CheckpointEverySteps must be ≥ 0 (0 = at epoch ends only).");
            if (!Enum.IsDefined(OnCheckpointMismatch))
                throw new ArgumentOutOfRangeException(nameof(OnCheckpointMismatch), OnCheckpointMismatch, "unknown OnCheckpointMismatch value.");
            if (MixGroupSize < 2) throw new ArgumentOutOfRangeException(nameof(MixGroupSize), MixGroupSize, "MixGroupSize must be ≥ 2 (a mix needs a partner).");
            if (SftEpochs < 0) throw new ArgumentOutOfRangeException(nameof(SftEpochs), SftEpochs, "SftEpochs must be ≥ 0.");
            if (PreferenceEpochs < 0) throw new ArgumentOutOfRangeException(nameof(PreferenceEpochs), PreferenceEpochs, "PreferenceEpochs must be ≥ 0.");
            if (SftEpochs + PreferenceEpochs == 0)
                throw new ArgumentOutOfRangeException(nameof(PreferenceEpochs), 0, "SftEpochs and PreferenceEpochs are both 0: there is nothing to train.");
            if (!(SftLearningRate > 0) || double.IsInfinity(SftLearningRate))
                throw new ArgumentOutOfRangeException(nameof(SftLearningRate), SftLearningRate, "SftLearningRate must be finite and > 0.");
            if (Trainer is null) throw new ArgumentNullException(nameof(Trainer), "Trainer options must be set.");
            Trainer.Validate();
            if (ExplicitPairs && PreferenceEpochs > 0 && Trainer.Objective == PreferenceObjective.MixedSimPo)
                throw new ArgumentException(
                    "Trainer.Objective = MixedSimPo needs the λ of mixed pairs; explicit (chosen, rejected) pairs have none. " +
                    "Use SimPo, Dpo, Ipo or Hinge, or give rows (image, prompt, answer) with AnswerColumnName.", nameof(Trainer));
            if (Encoder is null) throw new ArgumentNullException(nameof(Encoder), "Encoder options must be set.");
            Encoder.Validate();
            if (Model is null) throw new ArgumentNullException(nameof(Model), "Model options must be set.");
            Model.Validate();
            if (MaxNewTokens < 1) throw new ArgumentOutOfRangeException(nameof(MaxNewTokens), MaxNewTokens, "MaxNewTokens must be ≥ 1.");
            if (!(Temperature >= 0) || double.IsInfinity(Temperature))
                throw new ArgumentOutOfRangeException(nameof(Temperature), Temperature, "Temperature must be finite and ≥ 0 (0 = greedy).");
            if (GenerationBatchSize < 1) throw new ArgumentOutOfRangeException(nameof(GenerationBatchSize), GenerationBatchSize, "GenerationBatchSize must be ≥ 1.");
            if (TopK < 0) throw new ArgumentOutOfRangeException(nameof(TopK), TopK, "TopK must be ≥ 0 (0 = all tokens).");
            if (!(TopP > 0 && TopP <= 1)) throw new ArgumentOutOfRangeException(nameof(TopP), TopP, "TopP must lie in (0, 1] (1 = all tokens).");
            PromptTemplate?.Validate(nameof(PromptTemplate));
        }

        private static void NonEmpty(string value, string name)
        {
            if (string.IsNullOrWhiteSpace(value)) throw new ArgumentException($"{name} must name a column.", name);
        }
    }

    private readonly Options _options;
    private readonly IHostEnvironment? _environment;

    /// <summary>Creates the estimator; <paramref name="environment"/> (an <see cref="MLContext"/>) receives the log.</summary>
    public PreferenceTuningEstimator(Options options, IHostEnvironment? environment = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        _options = options.Clone();
        _options.Validate();
        _environment = environment;
    }

    /// <inheritdoc />
    public SchemaShape GetOutputSchema(SchemaShape inputSchema)
    {
        ArgumentNullException.ThrowIfNull(inputSchema);
        var o = _options;
        ImageColumns.ValidateImageColumn(inputSchema, o.ImageColumnName);
        AlignmentColumns.ValidateText(inputSchema, o.PromptColumnName, nameof(Options.PromptColumnName));
        foreach (var (column, option) in TrainingTextColumns(o))
            AlignmentColumns.ValidateText(inputSchema, column, option);
        var added = new List<SchemaShape.Column>
        {
            SchemaShapeColumns.Make(o.ResponseColumnName, SchemaShape.Column.VectorKind.Scalar, TextDataViewType.Instance),
        };
        if (o.ScoreResponseColumnName is not null)
            added.Add(SchemaShapeColumns.Make(o.LogProbColumnName, SchemaShape.Column.VectorKind.Scalar, NumberDataViewType.Single));
        return SchemaShapeColumns.With(inputSchema, added.ToArray());
    }

    /// <summary>
    /// Reads the data, builds the tokenizer and the model, runs SFT and then the preference phase, and returns the
    /// trained model as a transformer.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException">A column is missing or has the wrong type (the message names it).</exception>
    /// <exception cref="ArgumentException">A row has an empty answer, a text the tokenizer cannot encode, or texts longer
    /// than the context; the mixing policy returns λ outside [0, 1].</exception>
    /// <exception cref="OperationCanceledException"><see cref="Options.CancellationToken"/> was cancelled.</exception>
    public PreferenceTuningTransformer Fit(IDataView input)
    {
        ArgumentNullException.ThrowIfNull(input);
        var o = _options;
        var cancel = o.CancellationToken;
        cancel.ThrowIfCancellationRequested();
        using var channel = _environment?.Start("PreferenceTuning");
        var device = TorchDevice.Resolve(o.Device, nameof(Options.Device));

        var shape = ImageColumns.ValidateImageColumn(input.Schema, o.ImageColumnName);
        if (shape.Height != shape.Width)
            throw new ArgumentOutOfRangeException(nameof(Options.ImageColumnName),
                $"Image column '{o.ImageColumnName}' holds {shape.Height}×{shape.Width} images; the ViT encoder needs square images (resize them first).");
        AlignmentColumns.ValidateText(input.Schema, o.PromptColumnName, nameof(Options.PromptColumnName));
        foreach (var (column, option) in TrainingTextColumns(o))
            AlignmentColumns.ValidateText(input.Schema, column, option);

        var encoderOptions = o.Encoder.Clone();
        encoderOptions.Vision.ImageSize = shape.Height;
        encoderOptions.Vision.Channels = shape.Channels;
        // A pretrained tower is read before any row, and its architecture becomes the encoder's (saved with the model).
        using var pretrained = encoderOptions.InitialWeights is { } weights ? VisionTransformerCheckpoint.Read(weights) : null;
        if (pretrained is not null)
        {
            if (o.PretrainedVision is not null)
                throw new ArgumentException("Set either PretrainedVision or Encoder.InitialWeights, not both: both would initialise the encoder's ViT.",
                    nameof(Options.PretrainedVision));
            encoderOptions = VisionTransformerEncoder.WithArchitectureOf(encoderOptions, pretrained);
        }
        encoderOptions.Validate();

        var pixels = ImageColumnReader.ReadAll(input, o.ImageColumnName, shape, out int count);
        if (count == 0) throw new ArgumentException("The training data has no rows.", nameof(input));
        var prompts = AlignmentColumns.ReadText(input, o.PromptColumnName);
        string chosenColumn = o.ExplicitPairs ? o.ChosenColumnName! : o.AnswerColumnName!;
        string chosenOption = o.ExplicitPairs ? nameof(Options.ChosenColumnName) : nameof(Options.AnswerColumnName);
        var chosen = AlignmentColumns.ReadText(input, chosenColumn);
        var rejected = o.ExplicitPairs ? AlignmentColumns.ReadText(input, o.RejectedColumnName!) : null;
        if (prompts.Length != count || chosen.Length != count || (rejected is not null && rejected.Length != count))
            throw new InvalidOperationException("The data view returned different row counts for different columns; it must be deterministic.");

        // Training sees the prompts exactly as generation will (the transformer applies the same template).
        var template = o.PromptTemplate ?? PromptTemplate.Raw;
        prompts = prompts.Select(template.Apply).ToArray();
        var tokenizer = o.Tokenizer ?? MultimodalTokenizer.CreateFromCorpus(prompts.Concat(chosen).Concat(rejected ?? Array.Empty<string>()),
            specialTokens: new MultimodalSpecialTokens { Additional = template.SpecialTokens.ToArray() });
        template.CheckTokenizer(tokenizer, nameof(Options.PromptTemplate));
        int maxLength = o.Trainer.MaxLength ?? o.Model.MaxTextLength;
        var validation = o.ValidationSet is null ? null : ReadValidation(o.ValidationSet, shape, template, tokenizer, maxLength);
        for (int i = 0; i < count; i++)
        {
            AlignmentColumns.CheckRow(tokenizer, i, prompts[i], chosen[i], o.PromptColumnName, chosenColumn, chosenOption, maxLength, o.Trainer.Truncation);
            if (rejected is null) continue;
            AlignmentColumns.CheckRow(tokenizer, i, prompts[i], rejected[i], o.PromptColumnName, o.RejectedColumnName!, nameof(Options.RejectedColumnName),
                maxLength, o.Trainer.Truncation);
            if (rejected[i] == chosen[i])
                channel?.Warning(MessageSensitivity.None,
                    "Row {0}: the rejected answer \"{1}\" equals the chosen one on the same image, so the pair carries no preference signal.", i, rejected[i]);
        }
        if (!o.ExplicitPairs && o.PreferenceEpochs > 0 && count < 2)
            throw new ArgumentException($"The training data has {count} row; mixing pairs needs at least 2.", nameof(input));

        var model = new MultimodalLm(new VisionTransformerEncoder(encoderOptions, pretrained), tokenizer, o.Model);
        try
        {
            if (o.PretrainedVision is not null) CopyPretrained(o.PretrainedVision, ((VisionTransformerEncoder)model.Vision).Backbone);
            model.to(device);
            using var images = tensor(pixels, new long[] { count, shape.Channels, shape.Height, shape.Width });
            using var validationImages = validation?.Images;
            var evaluations = new List<PreferenceStepMetrics>();
            var sftWatch = Stopwatch.StartNew();
            var sftHistory = o.SftEpochs > 0
                ? RunSft(model, images, prompts, chosen, channel, validation, evaluations)
                : Array.Empty<PreferenceStepMetrics>();
            sftWatch.Stop();
            cancel.ThrowIfCancellationRequested();

            var preferenceWatch = Stopwatch.StartNew();
            var preferenceHistory = o.PreferenceEpochs > 0
                ? RunPreference(model, encoderOptions, images, prompts, chosen, rejected, channel, validation, evaluations)
                : Array.Empty<PreferenceStepMetrics>();
            preferenceWatch.Stop();

            model.eval();
            var history = new PreferenceTuningHistory(sftHistory, preferenceHistory, o.Trainer.Objective, sftWatch.Elapsed, preferenceWatch.Elapsed, evaluations);
            return new PreferenceTuningTransformer(model, encoderOptions, TransformerSettings.From(o), history);
        }
        catch
        {
            model.Dispose();
            throw;
        }
    }

    private static void CopyPretrained(VisionTransformer source, VisionTransformer target)
    {
        var weights = source.state_dict();
        using var noGrad = no_grad();
        foreach (var (name, parameter) in target.named_parameters())
        {
            if (name.StartsWith("head.", StringComparison.Ordinal)) continue;
            if (!weights.TryGetValue(name, out var value) || !value.shape.SequenceEqual(parameter.shape))
                throw new ArgumentException(
                    $"PretrainedVision does not match Encoder.Vision: parameter '{name}' is [{string.Join(", ", parameter.shape)}] in the encoder but " +
                    (value is null ? "missing" : $"[{string.Join(", ", value.shape)}]") + " in the pretrained ViT. Give Encoder.Vision the pretrained ViT's options.",
                    nameof(Options.PretrainedVision));
            parameter.copy_(value);
        }
    }

    // Held-out rows, read and checked like the training rows (prompts already formatted by the template).
    private sealed record ValidationRows(Tensor Images, string[] Prompts, string[] Chosen, string[]? Rejected);

    private ValidationRows ReadValidation(IDataView data, ImageColumns.ImageShape shape, PromptTemplate template, MultimodalTokenizer tokenizer, int maxLength)
    {
        var o = _options;
        const string name = nameof(Options.ValidationSet);
        try
        {
            var validationShape = ImageColumns.ValidateImageColumn(data.Schema, o.ImageColumnName);
            if (validationShape != shape)
                throw new ArgumentException($"its image column '{o.ImageColumnName}' holds {validationShape} images, the training data {shape}.");
            AlignmentColumns.ValidateText(data.Schema, o.PromptColumnName, nameof(Options.PromptColumnName));
            foreach (var (column, option) in TrainingTextColumns(o))
                AlignmentColumns.ValidateText(data.Schema, column, option);
            var pixels = ImageColumnReader.ReadAll(data, o.ImageColumnName, shape, out int count);
            if (count == 0) throw new ArgumentException("it has no rows.");
            var prompts = AlignmentColumns.ReadText(data, o.PromptColumnName).Select(template.Apply).ToArray();
            string chosenColumn = o.ExplicitPairs ? o.ChosenColumnName! : o.AnswerColumnName!;
            var chosen = AlignmentColumns.ReadText(data, chosenColumn);
            var rejected = o.ExplicitPairs ? AlignmentColumns.ReadText(data, o.RejectedColumnName!) : null;
            if (prompts.Length != count || chosen.Length != count || (rejected is not null && rejected.Length != count))
                throw new InvalidOperationException("The validation data view returned different row counts for different columns; it must be deterministic.");
            if (!o.ExplicitPairs && o.PreferenceEpochs > 0 && count < 2)
                throw new ArgumentException($"it has {count} row; mixing pairs needs at least 2.");
            for (int i = 0; i < count; i++)
            {
                AlignmentColumns.CheckRow(tokenizer, i, prompts[i], chosen[i], o.PromptColumnName, chosenColumn, name, maxLength, o.Trainer.Truncation);
                if (rejected is not null)
                    AlignmentColumns.CheckRow(tokenizer, i, prompts[i], rejected[i], o.PromptColumnName, o.RejectedColumnName!, name, maxLength, o.Trainer.Truncation);
            }
            return new ValidationRows(tensor(pixels, new long[] { count, shape.Channels, shape.Height, shape.Width }), prompts, chosen, rejected);
        }
        catch (ArgumentException e)
        {
            throw new ArgumentException($"ValidationSet: {ExceptionMessages.WithoutParameter(e)}", name, e);
        }
    }

    private IReadOnlyList<PreferenceStepMetrics> RunSft(MultimodalLm model, Tensor images, string[] prompts, string[] answers, IChannel? channel,
        ValidationRows? validation, List<PreferenceStepMetrics> evaluations)
    {
        var o = _options;
        var trainerOptions = PhaseOptions(o.SftEpochs);
        trainerOptions.Objective = PreferenceObjective.Sft;
        trainerOptions.LearningRate = o.SftLearningRate;
        // SFT scores the chosen side only; the rejected side is the same text and is never read.
        using var data = PreferenceDataset.FromPairs(images, prompts, answers, answers);
        using var evaluationData = validation is null ? null : PreferenceDataset.FromPairs(validation.Images, validation.Prompts, validation.Chosen, validation.Chosen);
        using var trainer = new PreferenceTrainer(model, trainerOptions);
        return RunPhase(trainer, data, trainerOptions, "SFT", SftCheckpointName, channel, stepOffset: 0, evaluationData, evaluations);
    }

    private IReadOnlyList<PreferenceStepMetrics> RunPreference(MultimodalLm model, VisionTransformerEncoderOptions encoderOptions, Tensor images,
        string[] prompts, string[] chosen, string[]? rejected, IChannel? channel, ValidationRows? validation, List<PreferenceStepMetrics> evaluations)
    {
        var o = _options;
        var trainerOptions = PhaseOptions(o.PreferenceEpochs);
        // Plain SFT in the second phase scores the chosen side only, so it needs no pairs.
        using var data = rejected is not null ? PreferenceDataset.FromPairs(images, prompts, chosen, rejected)
            : trainerOptions.Objective == PreferenceObjective.Sft ? PreferenceDataset.FromPairs(images, prompts, chosen, chosen)
            : MixPairs(model, images, prompts, chosen, _options.Seed);
        using var evaluationData = validation is null ? null
            : validation.Rejected is not null ? PreferenceDataset.FromPairs(validation.Images, validation.Prompts, validation.Chosen, validation.Rejected)
            : trainerOptions.Objective == PreferenceObjective.Sft ? PreferenceDataset.FromPairs(validation.Images, validation.Prompts, validation.Chosen, validation.Chosen)
            : MixPairs(model, validation.Images, validation.Prompts, validation.Chosen, _options.Seed + 1);
        if (data.Lambdas is { } lambdas)
            channel?.Info(MessageSensitivity.None, "Built {0} mixed pairs with '{1}': mean λ {2:F3}.",
                data.Count, (o.Mixing ?? new MergeMixPolicy()).Name, lambdas.Average());
        using var trainer = new PreferenceTrainer(model, trainerOptions, () => new VisionTransformerEncoder(encoderOptions));
        // Steps continue the SFT phase's count, so curves of both phases share one axis (TRL's global_step).
        long sftSteps = o.SftEpochs == 0 ? 0 : (long)o.SftEpochs * trainer.StepsPerEpoch(data.Count);
        return RunPhase(trainer, data, trainerOptions, trainerOptions.Objective.ToString(), PreferenceCheckpointName, channel, sftSteps, evaluationData, evaluations);
    }

    private PreferenceDataset MixPairs(MultimodalLm model, Tensor images, string[] prompts, string[] answers, int seed)
    {
        var o = _options;
        var policy = o.Mixing ?? new MergeMixPolicy();
        var encoder = (VisionTransformerEncoder)model.Vision;
        try
        {
            return PreferenceDataset.FromMixing(images, prompts, answers, policy, seed, o.MixGroupSize,
                policy.NeedsAttention ? encoder.AttentionSource() : null);
        }
        catch (ArgumentOutOfRangeException e) when (e.ParamName == "policy")
        {
            string reason = ExceptionMessages.WithoutParameter(e);
            throw new ArgumentOutOfRangeException(nameof(Options.Mixing), reason);
        }
    }

    private PreferenceTrainerOptions PhaseOptions(int epochs)
    {
        var options = _options.Trainer.Clone();
        options.Epochs = epochs;
        options.Seed = _options.Seed;
        options.Device = _options.Device;
        return options;
    }

    private IReadOnlyList<PreferenceStepMetrics> RunPhase(PreferenceTrainer trainer, PreferenceDataset data, PreferenceTrainerOptions options,
        string phase, string checkpointName, IChannel? channel, long stepOffset, PreferenceDataset? evaluationData, List<PreferenceStepMetrics> evaluations)
    {
        PreferenceStepMetrics Stamp(PreferenceStepMetrics m) => m with { GlobalStep = stepOffset + m.Step };
        string? checkpoint = _options.CheckpointFolder is null ? null : Path.Combine(_options.CheckpointFolder, checkpointName);
        trainer.SetValidation(evaluationData);
        if (checkpoint is not null && File.Exists(checkpoint))
        {
            var differences = trainer.LoadCheckpoint(checkpoint, data, _options.OnCheckpointMismatch, nameof(Options.OnCheckpointMismatch));
            if (differences.Count > 0)
                channel?.Warning(MessageSensitivity.None, "{0}: resuming from '{1}' although it was made with other data or options " +
                    "(OnCheckpointMismatch = Resume): {2}.", phase, checkpoint, string.Join("; ", differences));
            channel?.Info(MessageSensitivity.None, "{0}: resuming from '{1}' at step {2}.", phase, checkpoint, trainer.Step);
        }
        // Precomputed reference values of the validation pairs must come from the initial policy, like the training ones;
        // a checkpoint resumed deliberately (OnCheckpointMismatch = Resume) from other validation pairs has none for these.
        if (evaluationData is not null && !trainer.CanEvaluate(evaluationData))
        {
            channel?.Warning(MessageSensitivity.None, "{0}: the checkpoint '{1}' holds no precomputed reference log-probs for these validation pairs " +
                "and the policy has moved on from the reference (step {2}), so the validation set is not scored in this phase.", phase, checkpoint, trainer.Step);
            evaluationData = null;
        }
        if (evaluationData is not null) trainer.PrecomputeReference(evaluationData);
        int stepsPerEpoch = trainer.StepsPerEpoch(data.Count);
        Func<int, PreferenceStepMetrics>? evaluate = evaluationData is null ? null
            : epoch => Stamp(trainer.Evaluate(evaluationData)) with { Epoch = epoch };
        var monitor = new EpochMonitor(phase, options.Epochs, stepsPerEpoch, _options.CheckpointEverySteps, _options.Progress, channel,
            checkpoint is null ? null : () => SaveAtomically(trainer, checkpoint), Stamp, evaluate, evaluations);
        var history = trainer.Train(data, monitor, _options.CancellationToken).Select(Stamp).ToArray();
        if (trainer.TruncatedRows > 0)
            channel?.Warning(MessageSensitivity.None, "{0}: {1} texts were longer than {2} tokens and were truncated ({3}).",
                phase, trainer.TruncatedRows, options.MaxLength ?? _options.Model.MaxTextLength, options.Truncation);
        return history;
    }

    private static void SaveAtomically(PreferenceTrainer trainer, string path)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(path))!);
        string temporary = path + ".tmp";
        trainer.SaveCheckpoint(temporary);
        File.Move(temporary, path, overwrite: true);
    }

    private static IEnumerable<(string Column, string Option)> TrainingTextColumns(Options o) => o.ExplicitPairs
        ? new[] { (o.ChosenColumnName!, nameof(Options.ChosenColumnName)), (o.RejectedColumnName!, nameof(Options.RejectedColumnName)) }
        : new[] { (o.AnswerColumnName!, nameof(Options.AnswerColumnName)) };

    /// <summary>Forwards step metrics, logs each epoch's means to the ML.NET log and writes the end-of-epoch checkpoint.</summary>
    private sealed class EpochMonitor : IProgress<PreferenceStepMetrics>
    {
        private readonly string phase;
        private readonly int epochs;
        private readonly int stepsPerEpoch;
        private readonly int checkpointEverySteps;
        private readonly IProgress<PreferenceStepMetrics>? user;
        private readonly IChannel? channel;
        private readonly Action? checkpoint;
        private readonly List<PreferenceStepMetrics> epochSteps = new();
        private readonly Stopwatch watch = Stopwatch.StartNew();

        private readonly Func<PreferenceStepMetrics, PreferenceStepMetrics> stamp;
        private readonly Func<int, PreferenceStepMetrics>? evaluate;
        private readonly List<PreferenceStepMetrics> evaluations;

        public EpochMonitor(string phase, int epochs, int stepsPerEpoch, int checkpointEverySteps, IProgress<PreferenceStepMetrics>? user, IChannel? channel,
            Action? checkpoint, Func<PreferenceStepMetrics, PreferenceStepMetrics> stamp, Func<int, PreferenceStepMetrics>? evaluate,
            List<PreferenceStepMetrics> evaluations)
        {
            this.checkpointEverySteps = checkpointEverySteps;
            this.stamp = stamp;
            this.evaluate = evaluate;
            this.evaluations = evaluations;
            this.phase = phase;
            this.epochs = epochs;
            this.stepsPerEpoch = stepsPerEpoch;
            this.user = user;
            this.channel = channel;
            this.checkpoint = checkpoint;
        }

        public void Report(PreferenceStepMetrics value)
        {
            value = stamp(value);
            user?.Report(value);
            epochSteps.Add(value);
            if (value.Step % stepsPerEpoch != 0)
            {
                if (checkpointEverySteps > 0 && value.Step % checkpointEverySteps == 0) checkpoint?.Invoke();
                return;
            }
            checkpoint?.Invoke();
            channel?.Info(MessageSensitivity.None, "{0} epoch {1}/{2}: {3}, {4:F1} s", phase, value.Epoch + 1, epochs, Summary(epochSteps), watch.Elapsed.TotalSeconds);
            if (evaluate is not null)
            {
                var evaluation = evaluate(value.Epoch);
                evaluations.Add(evaluation);
                user?.Report(evaluation);
                channel?.Info(MessageSensitivity.None, "{0} epoch {1}/{2} validation: {3}", phase, value.Epoch + 1, epochs, Summary(new[] { evaluation }));
            }
            epochSteps.Clear();
            watch.Restart();
        }

        private static string Summary(IReadOnlyList<PreferenceStepMetrics> steps)
        {
            var means = new Dictionary<string, double>();
            foreach (var step in steps)
                foreach (var (name, value) in step.ToDictionary())
                    means[name] = means.GetValueOrDefault(name) + value / steps.Count;
            return string.Join(", ", means.Where(kv => !double.IsNaN(kv.Value) && !kv.Key.EndsWith("step", StringComparison.Ordinal) && !kv.Key.EndsWith("epoch", StringComparison.Ordinal) && !kv.Key.EndsWith("num_tokens", StringComparison.Ordinal))
                .Select(kv => string.Create(CultureInfo.InvariantCulture, $"{kv.Key} {kv.Value:F4}")));
        }
    }
}

/// <summary>
/// Catalog of the alignment components: <c>mlContext.Alignment().PreferenceTuning(...)</c>.
/// </summary>
public sealed class AlignmentCatalog
{
    private readonly MLContext _mlContext;

    internal AlignmentCatalog(MLContext mlContext) => _mlContext = mlContext;

    /// <summary>SFT and preference tuning (mixed SimPO, SimPO, DPO, ...) of a small multimodal LM, configured by <paramref name="options"/>.</summary>
    public PreferenceTuningEstimator PreferenceTuning(PreferenceTuningEstimator.Options options) => new(options, _mlContext);

    /// <summary>
    /// SFT then preference tuning on rows (image, prompt, answer), with pairs (raw image → answer) ≻ (mixed image →
    /// answer) made by <paramref name="mixing"/> (MergeMix when null); see <see cref="PreferenceTuningEstimator.Options"/> for the rest.
    /// </summary>
    /// <param name="imageColumnName">Image column (planar CHW floats of raw 0..255 pixels).</param>
    /// <param name="promptColumnName">Prompt text column.</param>
    /// <param name="answerColumnName">Answer text column.</param>
    /// <param name="objective">Preference objective (mixed SimPO by default).</param>
    /// <param name="sftEpochs">Epochs of SFT.</param>
    /// <param name="preferenceEpochs">Epochs of preference optimisation.</param>
    /// <param name="mixing">Mixing policy of the rejected images (null = MergeMix).</param>
    /// <param name="seed">Seed of shuffling, mixing and sampling.</param>
    public PreferenceTuningEstimator PreferenceTuning(string imageColumnName = "Features", string promptColumnName = "Prompt", string answerColumnName = "Answer",
        PreferenceObjective objective = PreferenceObjective.MixedSimPo, int sftEpochs = 6, int preferenceEpochs = 1, IMixPolicy? mixing = null, int seed = 0)
    {
        var options = new PreferenceTuningEstimator.Options
        {
            ImageColumnName = imageColumnName,
            PromptColumnName = promptColumnName,
            AnswerColumnName = answerColumnName,
            SftEpochs = sftEpochs,
            PreferenceEpochs = preferenceEpochs,
            Mixing = mixing,
            Seed = seed,
        };
        options.Trainer.Objective = objective;
        return PreferenceTuning(options);
    }
}

/// <summary>Entry point of the alignment catalog.</summary>
public static class AlignmentCatalogExtensions
{
    /// <summary>The alignment catalog: <c>mlContext.Alignment().PreferenceTuning(options)</c>.</summary>
    public static AlignmentCatalog Alignment(this MLContext mlContext)
    {
        ArgumentNullException.ThrowIfNull(mlContext);
        return new AlignmentCatalog(mlContext);
    }
}
