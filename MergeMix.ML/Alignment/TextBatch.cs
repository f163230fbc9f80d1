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
    /// <param name="maxTextLength">Longest allowed row (the model's <see cref="MultimodalLmOptions.MaxTextLength"/>).</param>
    /// <param name="device">Device of the returned tensors (null = CPU).</param>
    /// <exception cref="ArgumentException">Counts differ, an answer is empty, or a row is longer than <paramref name="maxTextLength"/>.</exception>
    public static TextBatch Build(MultimodalTokenizer tokenizer, IReadOnlyList<string> prompts, IReadOnlyList<string> answers,
        int maxTextLength, Device? device = null)
    {
        ArgumentNullException.ThrowIfNull(tokenizer);
        ArgumentNullException.ThrowIfNull(prompts);
        ArgumentNullException.ThrowIfNull(answers);
        if (prompts.Count != answers.Count)
            throw new ArgumentException($"answers has {answers.Count} items but prompts has {prompts.Count}; one answer per prompt.", nameof(answers));
        if (prompts.Count == 0) throw new ArgumentException("prompts is empty; a batch needs at least one row.", nameof(prompts));

        var rows = new (int[] Prompt, int[] Answer)[prompts.Count];
        for (int i = 0; i < rows.Length; i++)
        {
            if (string.IsNullOrWhiteSpace(answers[i]))
                throw new ArgumentException($"answers[{i}] is empty; every row needs an answer to score.", nameof(answers));
            var prompt = PromptIds(tokenizer, prompts[i] ?? throw new ArgumentException($"prompts[{i}] is null.", nameof(prompts)));
            var answer = tokenizer.Encode(answers[i]).Append(tokenizer.EosId).ToArray();
            if (prompt.Length + answer.Length > maxTextLength)
                throw new ArgumentException(
                    $"row {i} needs {prompt.Length + answer.Length} tokens (image marker + prompt: {prompt.Length}, answer + eos: {answer.Length}), " +
                    $"more than MaxTextLength = {maxTextLength}. Shorten the prompt/answer or raise MaxTextLength.", nameof(prompts));
            rows[i] = (prompt, answer);
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
        return new TextBatch(tensor(ids, shape, device: device), tensor(labels, shape, device: device), tensor(mask, shape, device: device));
    }

    /// <summary>Disposes the three tensors.</summary>
    public void Dispose()
    {
        InputIds.Dispose(); Labels.Dispose(); AttentionMask.Dispose();
    }
}
