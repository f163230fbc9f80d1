namespace MergeMix.ML.Alignment;

/// <summary>
/// How a prompt is shown to the model, in training and in generation alike: <see cref="Format"/> with "{prompt}"
/// replaced by the row's prompt. <see cref="Chat"/> wraps it in chat roles; <see cref="Raw"/> (the default) keeps it as is.
/// </summary>
/// <param name="Format">Text containing "{prompt}" exactly once.</param>
/// <param name="SpecialTokens">Tokens of the format that must encode to one id each (chat roles); the estimator adds
/// them to a tokenizer it learns and checks that a given tokenizer has them.</param>
/// <remarks>The answer follows the formatted prompt directly, so a chat format ends with the assistant role. The same
/// template must be used to train and to generate: the transformer stores it with the model.</remarks>
public sealed record PromptTemplate(string Format, IReadOnlyList<string> SpecialTokens)
{
    /// <summary>The placeholder replaced by the prompt.</summary>
    public const string Placeholder = "{prompt}";

    /// <summary>The prompt unchanged.</summary>
    public static PromptTemplate Raw { get; } = new(Placeholder, Array.Empty<string>());

    /// <summary>Chat roles as single tokens: "&lt;|user|&gt; {prompt} &lt;|assistant|&gt;".</summary>
    public static PromptTemplate Chat { get; } = new("<|user|> " + Placeholder + " <|assistant|>", new[] { "<|user|>", "<|assistant|>" });

    /// <summary>The formatted prompt.</summary>
    public string Apply(string prompt)
    {
        ArgumentNullException.ThrowIfNull(prompt);
        return Format.Replace(Placeholder, prompt, StringComparison.Ordinal);
    }

    /// <summary>Throws an <see cref="ArgumentException"/> naming <paramref name="name"/> when the format is not usable.</summary>
    public void Validate(string name)
    {
        if (Format is null || Format.Split(Placeholder).Length != 2)
            throw new ArgumentException($"{name}.Format must contain \"{Placeholder}\" exactly once, got \"{Format}\".", name);
        if (SpecialTokens is null || SpecialTokens.Any(string.IsNullOrEmpty))
            throw new ArgumentException($"{name}.SpecialTokens must be a list of non-empty tokens.", name);
        foreach (string token in SpecialTokens)
            if (!Format.Contains(token, StringComparison.Ordinal))
                throw new ArgumentException($"{name}: special token '{token}' does not occur in the format \"{Format}\".", name);
    }

    /// <summary>Checks that each of <see cref="SpecialTokens"/> encodes to one id with <paramref name="tokenizer"/>.</summary>
    public void CheckTokenizer(MultimodalTokenizer tokenizer, string name)
    {
        ArgumentNullException.ThrowIfNull(tokenizer);
        foreach (string token in SpecialTokens)
            if (!tokenizer.IsSingleToken(token))
                throw new ArgumentException(
                    $"{name}: '{token}' is not one token of the tokenizer; add it with MultimodalSpecialTokens.Additional.", name);
    }
}
