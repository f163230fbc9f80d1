using MergeMix.ML.Imaging;
using Microsoft.ML.Data;

namespace MergeMix.ML.Tests.Imaging;

[TestClass]
public sealed class PngWriterTests
{
    private string _folder = "";

    [TestInitialize]
    public void CreateFolder() => _folder = Directory.CreateTempSubdirectory("mergemix-png-").FullName;

    [TestCleanup]
    public void DeleteFolder() => Directory.Delete(_folder, recursive: true);

    /// <summary>
    /// Reads a PNG back as R, G, B bytes per pixel. Uses <see cref="MLImage.GetBGRPixels"/>: <see cref="MLImage.Pixels"/>
    /// calls SKBitmap.GetPixelSpan, which the SkiaSharp 3 that ScottPlot brings into this test process no longer has.
    /// </summary>
    internal static (int Width, int Height, byte[] Rgb) ReadRgb(string path)
    {
        using var image = MLImage.CreateFromFile(path);
        Assert.AreEqual(MLPixelFormat.Bgra32, image.PixelFormat);
        byte[] bgr = image.GetBGRPixels;
        Assert.AreEqual(image.Width * image.Height * 3, bgr.Length);
        var rgb = new byte[bgr.Length];
        for (int p = 0; p < bgr.Length; p += 3)
        {
            rgb[p] = bgr[p + 2];
            rgb[p + 1] = bgr[p + 1];
            rgb[p + 2] = bgr[p];
        }
        return (image.Width, image.Height, rgb);
    }

    /// <summary>Width, height, bit depth and colour type from the PNG header (IHDR is always the first chunk).</summary>
    private static (int Width, int Height, byte BitDepth, byte ColourType) Header(string path)
    {
        byte[] file = File.ReadAllBytes(path);
        CollectionAssert.AreEqual(new byte[] { 137, 80, 78, 71, 13, 10, 26, 10 }, file.Take(8).ToArray(), "PNG signature");
        Assert.AreEqual("IHDR", System.Text.Encoding.ASCII.GetString(file, 12, 4));
        int BigEndian(int at) => file[at] << 24 | file[at + 1] << 16 | file[at + 2] << 8 | file[at + 3];
        return (BigEndian(16), BigEndian(20), file[24], file[25]);
    }

    [TestMethod]
    public void RgbPixelsRoundTripExactly()
    {
        // 2 rows × 3 columns, channel-major; covers rounding, clamping and NaN.
        float[] chw =
        {
            0, 12.5f, 255, 300, -5, 100,          // R
            1, 2, 3, float.NaN, 254.4f, 254.5f,   // G
            7, 8, 9, 10, 11, 12,                  // B
        };
        string path = Path.Combine(_folder, "sub", "rgb.png");
        PngWriter.Save(path, chw, 3, 2, 3);
        var (width, height, rgb) = ReadRgb(path);
        Assert.AreEqual(3, width);
        Assert.AreEqual(2, height);
        CollectionAssert.AreEqual(new byte[]
        {
            0, 1, 7,     13, 2, 8,     255, 3, 9,
            255, 0, 10,  0, 254, 11,   100, 255, 12,
        }, rgb);
        var header = Header(path);
        Assert.AreEqual((3, 2, (byte)8), (header.Width, header.Height, header.BitDepth));
        Assert.IsTrue(header.ColourType is 2 or 6, $"colour type {header.ColourType} is not RGB(A)");
    }

    [TestMethod]
    public void GreyIsWrittenToAllThreeChannelsAfterScaling()
    {
        string path = Path.Combine(_folder, "grey.png");
        PngWriter.Save(path, new[] { 0f, 0.5f, 1f, 0.2f }, 1, 1, 4, scale: 255f);
        var (_, _, rgb) = ReadRgb(path);
        CollectionAssert.AreEqual(new byte[] { 0, 0, 0, 128, 128, 128, 255, 255, 255, 51, 51, 51 }, rgb);
    }

    [TestMethod]
    public void BadArgumentsAreNamed()
    {
        Assert.AreEqual("path", Assert.ThrowsExactly<ArgumentException>(
            () => PngWriter.Save(Path.Combine(_folder, "x.jpg"), new float[3], 3, 1, 1)).ParamName);
        Assert.AreEqual("chw", Assert.ThrowsExactly<ArgumentException>(
            () => PngWriter.Save(Path.Combine(_folder, "x.png"), new float[5], 3, 1, 2)).ParamName);
        Assert.AreEqual("channels", Assert.ThrowsExactly<ArgumentOutOfRangeException>(
            () => PngWriter.Save(Path.Combine(_folder, "x.png"), new float[4], 2, 1, 2)).ParamName);
        Assert.AreEqual("width", Assert.ThrowsExactly<ArgumentOutOfRangeException>(
            () => PngWriter.Save(Path.Combine(_folder, "x.png"), Array.Empty<float>(), 1, 1, 0)).ParamName);
        Assert.IsFalse(File.Exists(Path.Combine(_folder, "x.png")));
    }
}
