using MergeMix.ML.Runtime;
using Microsoft.ML;
using Microsoft.ML.Data;

namespace MergeMix.ML.Alignment;

/// <summary>Validation and reading of the text columns used by <see cref="PreferenceTuningEstimator"/> and its transformer.</summary>
internal static class AlignmentColumns
{
    /// <summary>Checks that <paramref name="columnName"/> exists in <paramref name="schema"/> and is a scalar text column.</summary>
    public static void ValidateText(DataViewSchema schema, string columnName, string optionName)
    {
        var column = schema.GetColumnOrNull(columnName)
            ?? throw new ArgumentOutOfRangeException(optionName,
                $"Text column '{columnName}' ({optionName}) not found. Available columns: {string.Join(", ", schema.Where(c => !c.IsHidden).Select(c => c.Name))}.");
        if (column.Type is not TextDataViewType)
            throw new ArgumentOutOfRangeException(optionName, $"Column '{columnName}' ({optionName}) must be a scalar Text column, but is {column.Type}.");
    }

    /// <summary>Same as <see cref="ValidateText(DataViewSchema, string, string)"/> for an estimator's input <see cref="SchemaShape"/>.</summary>
    public static void ValidateText(SchemaShape schema, string columnName, string optionName)
    {
        if (!Data.ImageColumns.TryFind(schema, columnName, out var column))
            throw new ArgumentOutOfRangeException(optionName,
                $"Text column '{columnName}' ({optionName}) not found. Available columns: {string.Join(", ", schema.Select(c => c.Name))}.");
        if (column.Kind != SchemaShape.Column.VectorKind.Scalar || column.ItemType is not TextDataViewType)
            throw new ArgumentOutOfRangeException(optionName,
                $"Column '{columnName}' ({optionName}) must be a scalar Text column, but is {column.Kind} of {column.ItemType}.");
    }

    /// <summary>Every value of a text column, in cursor order.</summary>
    public static string[] ReadText(IDataView data, string columnName)
    {
        var column = data.Schema[columnName];
        var values = new List<string>();
        ReadOnlyMemory<char> value = default;
        using var cursor = data.GetRowCursor(new[] { column });
        var getter = cursor.GetGetter<ReadOnlyMemory<char>>(column);
        while (cursor.MoveNext())
        {
            getter(ref value);
            values.Add(value.ToString());
        }
        return values.ToArray();
    }

    /// <summary>
    /// Tokenizes one row's prompt and answer as the model will see them, throwing an <see cref="ArgumentException"/>
    /// that names the column, the row and the limit for an empty answer, a piece the tokenizer cannot encode, or a text
    /// longer than <paramref name="maxTextLength"/> (unless <paramref name="truncation"/> cuts it).
    /// </summary>
    public static void CheckRow(MultimodalTokenizer tokenizer, long row, string prompt, string answer, string promptColumn, string answerColumn,
        string answerOption, int maxTextLength, TruncationMode truncation = TruncationMode.Error)
    {
        if (string.IsNullOrWhiteSpace(answer))
            throw new ArgumentException($"Column '{answerColumn}' ({answerOption}), row {row}: the answer is empty; every row needs a non-empty answer to score.",
                answerOption);
        int promptTokens = 1 + Encode(tokenizer, prompt, promptColumn, row, nameof(PreferenceTuningEstimator.Options.PromptColumnName)).Length;
        int answerTokens = Encode(tokenizer, answer, answerColumn, row, answerOption).Length + 1;
        if (truncation != TruncationMode.Error) return;
        if (promptTokens >= maxTextLength)
            throw new ArgumentException(
                $"Column '{promptColumn}', row {row}: the prompt needs {promptTokens} tokens (image marker included), which leaves no room for an answer " +
                $"within the context of MaxTextLength = {maxTextLength} tokens. Shorten the prompt or raise Model.MaxTextLength.",
                nameof(MultimodalLmOptions.MaxTextLength));
        if (promptTokens + answerTokens > maxTextLength)
            throw new ArgumentException(
                $"Row {row}: prompt ('{promptColumn}', {promptTokens} tokens with the image marker) + answer ('{answerColumn}', {answerTokens} tokens with eos) " +
                $"= {promptTokens + answerTokens} tokens, more than MaxTextLength = {maxTextLength}. Shorten the texts, raise Model.MaxTextLength or set Trainer.Truncation.",
                nameof(MultimodalLmOptions.MaxTextLength));
    }

    private static int[] Encode(MultimodalTokenizer tokenizer, string text, string column, long row, string option)
    {
        try
        {
            return tokenizer.Encode(text);
        }
        catch (ArgumentException e)
        {
            string reason = ExceptionMessages.WithoutParameter(e);
            throw new ArgumentException($"Column '{column}' ({option}), row {row}: {reason}", option, e);
        }
    }
}
