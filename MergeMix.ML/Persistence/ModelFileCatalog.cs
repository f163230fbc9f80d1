using Microsoft.ML;

namespace MergeMix.ML.Persistence;

/// <summary>Saving ML.NET model files without ever destroying a good one.</summary>
public static class ModelFileCatalog
{
    /// <summary>
    /// Saves <paramref name="model"/> like <c>mlContext.Model.Save(model, inputSchema, filePath)</c>, but writes to a
    /// temporary file beside <paramref name="filePath"/> and moves it over the target only once the whole chain was
    /// written. ML.NET's own path overload truncates the file before any transformer runs, so a transformer that cannot
    /// be saved (such as <see cref="Alignment.PreferenceTuningTransformer"/>) leaves a destroyed model behind; here the
    /// previous file stays as it was and the temporary file is removed. The final move is a rename within one folder
    /// (atomic on Linux and macOS; on Windows a replace).
    /// </summary>
    /// <example>
    /// <code>
    /// var model = pipeline.Fit(train);
    /// mlContext.Model.SaveAtomically(model, train.Schema, "model.zip");
    /// var loaded = mlContext.Model.Load("model.zip", out var inputSchema);
    /// </code>
    /// </example>
    public static void SaveAtomically(this ModelOperationsCatalog catalog, ITransformer model, DataViewSchema inputSchema, string filePath)
    {
        ArgumentNullException.ThrowIfNull(catalog);
        ArgumentNullException.ThrowIfNull(model);
        ArgumentException.ThrowIfNullOrEmpty(filePath);
        string target = Path.GetFullPath(filePath);
        string folder = Path.GetDirectoryName(target)!;
        if (!Directory.Exists(folder))
            throw new DirectoryNotFoundException($"Cannot save the model to '{filePath}': folder '{folder}' does not exist.");
        string temporary = Path.Combine(folder, $".{Path.GetFileName(target)}.{Guid.NewGuid():N}.tmp");
        try
        {
            using (var stream = new FileStream(temporary, FileMode.CreateNew, FileAccess.Write))
            {
                catalog.Save(model, inputSchema, stream);
                if (stream.CanWrite) stream.Flush(flushToDisk: true);
            }
            File.Move(temporary, target, overwrite: true);
        }
        catch
        {
            File.Delete(temporary);
            throw;
        }
    }
}
