using TorchSharp;

namespace MergeMix.ML.Runtime;

/// <summary>Turns the <c>Device</c> option strings ("cpu", "cuda", "cuda:1") into TorchSharp devices.</summary>
public static class TorchDevice
{
    /// <summary>
    /// Resolves <paramref name="device"/> (null or empty means CPU). Throws <see cref="InvalidOperationException"/>
    /// naming <paramref name="optionName"/> when CUDA is requested but this process has no CUDA backend.
    /// </summary>
    public static torch.Device Resolve(string? device, string optionName = "Device")
    {
        TorchNativeLoader.EnsureLoaded();
        string text = string.IsNullOrWhiteSpace(device) ? "cpu" : device.Trim().ToLowerInvariant();
        if (text == "cpu") return torch.CPU;
        if (text == "cuda" || text.StartsWith("cuda:", StringComparison.Ordinal))
        {
            if (!torch.cuda.is_available())
                throw new InvalidOperationException(
                    $"{optionName} = \"{device}\" asks for CUDA, but no CUDA device is usable in this process. " +
                    "Reference the TorchSharp-cuda-linux (or -windows) package instead of TorchSharp-cpu and check the NVIDIA driver, " +
                    $"or set {optionName} = \"cpu\".");
            int index = text == "cuda" ? 0 : int.Parse(text[5..]);
            if (index >= torch.cuda.device_count())
                throw new InvalidOperationException($"{optionName} = \"{device}\": only {torch.cuda.device_count()} CUDA device(s) present.");
            return new torch.Device(DeviceType.CUDA, index);
        }
        throw new ArgumentException($"{optionName} = \"{device}\" is not a device; use \"cpu\", \"cuda\" or \"cuda:N\".", optionName);
    }
}
