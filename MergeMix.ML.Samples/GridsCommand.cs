namespace MergeMix.ML.Samples;

internal static class GridsCommand
{
    public static void Run(Options options) => throw new NotImplementedException();
}
