using MergeMix.ML.Runtime;
Console.WriteLine(TorchNativeLoader.EnsureLoaded().Message);
