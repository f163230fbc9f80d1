namespace MergeMix.ML.Runtime;

/// <summary>Helpers for re-throwing an exception's reason under another name without repeating .NET's suffixes.</summary>
internal static class ExceptionMessages
{
    /// <summary>
    /// The message of <paramref name="error"/> without the " (Parameter 'x')" suffix that
    /// <see cref="ArgumentException.Message"/> appends, so that wrapping it in a new <see cref="ArgumentException"/>
    /// does not print the suffix twice (an <see cref="ArgumentOutOfRangeException"/>'s actual-value line is kept).
    /// </summary>
    public static string WithoutParameter(Exception error)
    {
        string message = error.Message;
        if (error is ArgumentException { ParamName: { } name })
        {
            string suffix = $" (Parameter '{name}')";
            int at = message.IndexOf(suffix, StringComparison.Ordinal);
            if (at >= 0) message = message.Remove(at, suffix.Length);
        }
        return message;
    }
}
