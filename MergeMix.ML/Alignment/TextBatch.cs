using TorchSharp;
using static TorchSharp.torch;

namespace MergeMix.ML.Alignment;

/// <summary>
/// A right-padded batch of texts for <see cref="MultimodalLm"/>: each row is
/// <c>&lt;image&gt; prompt answer &lt;eos&gt; &lt;pad&gt;…</c>, labelled only on the answer and its eos.
/// </summary>
/// <param name="InputIds">int64 [B, T] token ids, T = the longest row.</param>
/// <param name="Labels">int64 [B, T]: the input id on answer and eos positions, <see cref="SequenceLogProbs.IgnoreIndex"/> elsewhere.</param>
/// <param name="AttentionMask">int64 [B, T]: 1 on real tokens, 0 on padding.</param>
/// <remarks>
/// The <c>&lt;image&gt;</c> marker opens every text so the first answer token is always predicted from a text
/// position, even with an empty prompt (image positions carry no logits).
/// </remarks>
public sealed record TextBatch(Tensor InputIds, Tensor Labels, Tensor AttentionMask) : IDisposable
{
    /// <summary>Prompt ids as the model expects them: the image marker, then the encoded prompt.</summary>
    public static int[] PromptIds(MultimodalTokenizer tokenizer, string prompt)
    {
        ArgumentNullException.ThrowIfNull(tokenizer);
        ArgumentNullException.ThrowIfNull(prompt);
        return tokenizer.Encode(prompt).Prepend(tokenizer.ImageId).ToArray();
    }

    /// <summary>
    /// Tokenizes and pads (prompt, answer) pairs.
    /// </summary>
    /// <param name="tokenizer">Tokenizer of the model.</param>
    /// <param name="prompts">One prompt per row (may be empty).</param>
    /// <param name="answers">One non-empty answer per row.</param>
    /// <param name="maxTextLength">Longest allowed row (at most the model's <see cref="MultimodalLmOptions.MaxTextLength"/>).</param>
    /// <param name="device">Device of the returned tensors (null = CPU).</param>
    /// <param name="truncation">What to do with a row longer than <paramref name="maxTextLength"/> (see <see cref="Truncate"/>).</param>
    /// <param name="maxPromptLength">Longest prompt kept when truncating (image marker included); null = half of <paramref name="maxTextLength"/>.</param>
    /// <exception cref="ArgumentException">Counts differ, an answer is empty, or (with <see cref="TruncationMode.Error"/>) a row is
    /// longer than <paramref name="maxTextLength"/>.</exception>
    public static TextBatch Build(MultimodalTokenizer tokenizer, IReadOnlyList<string> prompts, IReadOnlyList<string> answers,
        int maxTextLength, Device? device = null, TruncationMode truncation = TruncationMode.Error, int? maxPromptLength = null)
    {
        ArgumentNullException.ThrowIfNull(tokenizer);
        ArgumentNullException.ThrowIfNull(prompts);
        ArgumentNullException.ThrowIfNull(answers);
        if (prompts.Count != answers.Count)
            throw new ArgumentException($"answers has {answers.Count} items but prompts has {prompts.Count}; one answer per prompt.", nameof(answers));
        if (prompts.Count == 0) throw new ArgumentException("prompts is empty; a batch needs at least one row.", nameof(prompts));
        int promptLimit = CheckLimits(maxTextLength, maxPromptLength);

        var rows = new (int[] Prompt, int[] Answer)[prompts.Count];
        int truncated = 0;
        for (int i = 0; i < rows.Length; i++)
        {
            if (string.IsNullOrWhiteSpace(answers[i]))
                throw new ArgumentException($"answers[{i}] is empty; every row needs an answer to score.", nameof(answers));
            var prompt = PromptIds(tokenizer, prompts[i] ?? throw new ArgumentException($"prompts[{i}] is null.", nameof(prompts)));
            var answer = tokenizer.Encode(answers[i]).Append(tokenizer.EosId).ToArray();
            if (truncation == TruncationMode.Error && prompt.Length + answer.Length > maxTextLength)
                throw new ArgumentException(
                    $"row {i} needs {prompt.Length + answer.Length} tokens (image marker + prompt: {prompt.Length}, answer + eos: {answer.Length}), " +
                    $"more than MaxTextLength = {maxTextLength}. Shorten the prompt/answer, raise MaxTextLength, or set a truncation mode.", nameof(prompts));
            var cut = Truncate(prompt, answer, maxTextLength, promptLimit, truncation);
            if (cut.Prompt.Length != prompt.Length || cut.Answer.Length != answer.Length) truncated++;
            rows[i] = cut;
        }

        int length = rows.Max(r => r.Prompt.Length + r.Answer.Length);
        var ids = new long[rows.Length * length];
        var labels = new long[ids.Length];
        var mask = new long[ids.Length];
        Array.Fill(ids, tokenizer.PadId);
        Array.Fill(labels, SequenceLogProbs.IgnoreIndex);
        for (int i = 0; i < rows.Length; i++)
        {
            int at = i * length;
            foreach (int id in rows[i].Prompt) { ids[at] = id; mask[at] = 1; at++; }
            foreach (int id in rows[i].Answer) { ids[at] = id; labels[at] = id; mask[at] = 1; at++; }
        }
        var shape = new long[] { rows.Length, length };
        return new TextBatch(tensor(ids, shape, device: device), tensor(labels, shape, device: device), tensor(mask, shape, device: device))
        {
            TruncatedRows = truncated,
        };
    }

    /// <summary>Rows that <see cref="Build"/> truncated (always 0 with <see cref="TruncationMode.Error"/>).</summary>
    public int TruncatedRows { get; init; }

    /// <summary>
    /// Cuts one row to <paramref name="maxLength"/> tokens the way TRL's DPO trainer does (≤ 0.28): a prompt longer than
    /// <paramref name="maxPromptLength"/> is cut to it, keeping its last tokens (<see cref="TruncationMode.KeepEnd"/>) or its
    /// first ones (<see cref="TruncationMode.KeepStart"/>); the image marker that opens it is always kept. Then an answer
    /// longer than the room left is cut keeping its start (its eos is then dropped, as in TRL). Rows that fit, and every row
    /// under <see cref="TruncationMode.Error"/>, are returned unchanged.
    /// </summary>
    /// <param name="promptIds">Image marker + prompt ids (<see cref="PromptIds"/>).</param>
    /// <param name="answerIds">Answer ids + eos.</param>
    /// <param name="maxLength">Longest row.</param>
    /// <param name="maxPromptLength">Longest prompt after truncation, in [1, maxLength).</param>
    /// <param name="mode">Truncation mode.</param>
    public static (int[] Prompt, int[] Answer) Truncate(int[] promptIds, int[] answerIds, int maxLength, int maxPromptLength, TruncationMode mode)
    {
        ArgumentNullException.ThrowIfNull(promptIds);
        ArgumentNullException.ThrowIfNull(answerIds);
        CheckLimits(maxLength, maxPromptLength);
        if (promptIds.Length == 0) throw new ArgumentException("promptIds is empty; it starts with the image marker.", nameof(promptIds));
        if (mode == TruncationMode.Error || promptIds.Length + answerIds.Length <= maxLength) return (promptIds, answerIds);
        var prompt = promptIds;
        if (prompt.Length > maxPromptLength)
            prompt = mode switch
            {
                TruncationMode.KeepEnd => prompt[..1].Concat(prompt[^(maxPromptLength - 1)..]).ToArray(),
                TruncationMode.KeepStart => prompt[..maxPromptLength],
                _ => throw new ArgumentOutOfRangeException(nameof(mode), mode, "unknown TruncationMode."),
            };
        var answer = answerIds.Length > maxLength - prompt.Length ? answerIds[..(maxLength - prompt.Length)] : answerIds;
        return (prompt, answer);
    }

    private static int CheckLimits(int maxLength, int? maxPromptLength)
    {
        if (maxLength < 2) throw new ArgumentOutOfRangeException(nameof(maxLength), maxLength, "the maximum length must be ≥ 2 (image marker + one token).");
        int prompt = maxPromptLength ?? maxLength / 2;
        if (prompt < 1 || prompt >= maxLength)
            throw new ArgumentOutOfRangeException(nameof(maxPromptLength), maxPromptLength,
                $"the maximum prompt length must lie in [1, {maxLength}) so that every answer keeps a token.");
        return prompt;
    }

    /// <summary>Disposes the three tensors.</summary>
    public void Dispose()
    {
        InputIds.Dispose(); Labels.Dispose(); AttentionMask.Dispose();
    }
}
