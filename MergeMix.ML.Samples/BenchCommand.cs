namespace MergeMix.ML.Samples;

internal static class BenchCommand
{
    public static void Run(Options options) => throw new NotImplementedException();
}
