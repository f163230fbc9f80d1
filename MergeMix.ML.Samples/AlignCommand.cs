namespace MergeMix.ML.Samples;

internal static class AlignCommand
{
    public static void Run(Options options) => throw new NotImplementedException();
}
