namespace MergeMix.ML.Samples;

internal static class SpeedCommand
{
    public static void Run(Options options) => throw new NotImplementedException();
}
