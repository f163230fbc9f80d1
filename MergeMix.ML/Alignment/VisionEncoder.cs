using static TorchSharp.torch;

namespace MergeMix.ML.Alignment;

/// <summary>
/// The image tower of a <see cref="MultimodalLm"/>: maps images float [B, 3, H, W] to patch features
/// float [B, <see cref="TokenCount"/>, <see cref="FeatureDim"/>]. Any ViT (e.g. the ToMe ViT, adapted) or a plain
/// patch embedding can be plugged in; its parameters become part of the language model's weights.
/// </summary>
public abstract class VisionEncoder : nn.Module<Tensor, Tensor>
{
    /// <summary>Creates the encoder with the module name used in saved weights.</summary>
    protected VisionEncoder(string name) : base(name) { }

    /// <summary>Width D_v of each output feature vector.</summary>
    public abstract int FeatureDim { get; }

    /// <summary>Number T of feature vectors per image (constant: the LM reserves that many positions).</summary>
    public abstract int TokenCount { get; }
}
