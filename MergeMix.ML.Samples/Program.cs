using MergeMix.ML.Samples;

return await CommandLine.RunAsync(args);
