namespace MergeMix.ML.Tests.Data;

/// <summary>Temporary folders and the shared data location for the data-reader tests.</summary>
internal static class TestFolders
{
    /// <summary>A new empty folder under the system temp folder; delete it with <see cref="Delete"/>.</summary>
    public static string CreateTemp()
    {
        var path = Path.Combine(Path.GetTempPath(), "mergemix-data-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(path);
        return path;
    }

    public static void Delete(string path)
    {
        if (Directory.Exists(path))
            Directory.Delete(path, recursive: true);
    }

    /// <summary>The folder holding MergeMix.sln, found by walking up from the test binaries.</summary>
    public static string RepositoryRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir != null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "MergeMix.sln")))
                return dir.FullName;
        throw new InvalidOperationException($"No MergeMix.sln above '{AppContext.BaseDirectory}'.");
    }

    /// <summary>The shared CIFAR-10 folder (../shared/data/cifar10-jpeg from the repository root), or an inconclusive test when absent.</summary>
    public static string SharedCifar10OrInconclusive()
    {
        var path = Path.GetFullPath(Path.Combine(RepositoryRoot(), "..", "shared", "data", "cifar10-jpeg"));
        if (!Directory.Exists(path))
            Assert.Inconclusive($"Shared CIFAR-10 data not found at '{path}'.");
        return path;
    }
}
