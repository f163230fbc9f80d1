using MergeMix.ML.Alignment;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace MergeMix.ML.Tests.Alignment;

/// <summary>Test vision encoder: a strided convolution (patch embedding), one token per patch.</summary>
internal sealed class TinyPatchEncoder : VisionEncoder
{
    private readonly Conv2d patches;
    private readonly int featureDim;
    private readonly int tokenCount;

    public TinyPatchEncoder(int imageSize = 8, int patchSize = 4, int featureDim = 16, long seed = 1) : base(nameof(TinyPatchEncoder))
    {
        this.featureDim = featureDim;
        tokenCount = (imageSize / patchSize) * (imageSize / patchSize);
        patches = nn.Conv2d(3, featureDim, patchSize, stride: patchSize);
        RegisterComponents();
        using var g = new Generator((ulong)seed);
        using var noGrad = no_grad();
        patches.weight!.normal_(0, 0.1, g);
        patches.bias!.zero_();
    }

    public override int FeatureDim => featureDim;

    public override int TokenCount => tokenCount;

    public override Tensor forward(Tensor images) => patches.forward(images).flatten(2).transpose(1, 2);
}
