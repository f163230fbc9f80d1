using MergeMix.ML.Data;
using Microsoft.ML;
using Microsoft.ML.Data;

namespace MergeMix.ML.Tests.Data;

[TestClass]
public sealed class ImageFolderLoaderTests
{
    private const int W = 3, H = 2;
    private string _folder = "";

    [TestInitialize]
    public void CreateFolder() => _folder = TestFolders.CreateTemp();

    [TestCleanup]
    public void DeleteFolder() => TestFolders.Delete(_folder);

    // Pixel (x, y) of test image k: R = 10k + x, G = 100 + y, B = 200 + k.
    private static (byte R, byte G, byte B) Pixel(int k, int x, int y) => ((byte)(10 * k + x), (byte)(100 + y), (byte)(200 + k));

    private void WriteImage(string relativePath, int width, int height, Func<int, int, (byte R, byte G, byte B)> pixel)
    {
        var path = Path.Combine(_folder, relativePath);
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        var bytes = new byte[width * height * 4];
        for (int y = 0; y < height; y++)
            for (int x = 0; x < width; x++)
            {
                var (r, g, b) = pixel(x, y);
                int o = 4 * (y * width + x);
                (bytes[o], bytes[o + 1], bytes[o + 2], bytes[o + 3]) = (r, g, b, 255);
            }
        using var image = MLImage.CreateFromPixels(width, height, MLPixelFormat.Rgba32, bytes);
        image.Save(path);
    }

    private static float[] Expected(int k)
    {
        var chw = new float[3 * H * W];
        for (int y = 0; y < H; y++)
            for (int x = 0; x < W; x++)
            {
                var (r, g, b) = Pixel(k, x, y);
                chw[0 * H * W + y * W + x] = r;
                chw[1 * H * W + y * W + x] = g;
                chw[2 * H * W + y * W + x] = b;
            }
        return chw;
    }

    // Classes "ant" and "Zebra" sort ordinally as Zebra, ant (upper case first); one image is nested, one has an upper-case extension.
    private void WriteTree()
    {
        WriteImage(Path.Combine("Zebra", "a.png"), W, H, (x, y) => Pixel(0, x, y));
        WriteImage(Path.Combine("Zebra", "sub", "c.png"), W, H, (x, y) => Pixel(1, x, y));
        WriteImage(Path.Combine("ant", "b.PNG"), W, H, (x, y) => Pixel(2, x, y));
        File.WriteAllText(Path.Combine(_folder, "ant", "notes.txt"), "not an image");
    }

    [TestMethod]
    public void ImageAnalyticsRunsOnTheSkiaSharpItWasBuiltFor()
    {
        // ML.NET ImageAnalytics 5.0.1 is built against SkiaSharp 2.88; SkiaSharp 3.x (pulled in, e.g., by ScottPlot)
        // changed SKBitmap.GetPixelSpan's return type, so MLImage.Pixels — and with it ExtractPixels — throws MissingMethodException.
        var built = typeof(MLImage).Assembly.GetReferencedAssemblies().Single(a => a.Name == "SkiaSharp").Version!;
        var loaded = System.Reflection.Assembly.Load("SkiaSharp").GetName().Version!;
        Assert.AreEqual((built.Major, built.Minor), (loaded.Major, loaded.Minor),
            $"SkiaSharp {loaded} is deployed, but Microsoft.ML.ImageAnalytics was built against {built}; ExtractPixels cannot read decoded images.");
    }

    [TestMethod]
    public void ListsClassesOrdinallyAndImagesRecursively()
    {
        WriteTree();
        var (classes, files) = ImageFolderLoader.ListImages(_folder);
        CollectionAssert.AreEqual(new[] { "Zebra", "ant" }, classes.ToArray());
        CollectionAssert.AreEqual(new[]
        {
            new ImageFolderLoader.ImageFile(Path.Combine(_folder, "Zebra", "a.png"), "Zebra"),
            new ImageFolderLoader.ImageFile(Path.Combine(_folder, "Zebra", "sub", "c.png"), "Zebra"),
            new ImageFolderLoader.ImageFile(Path.Combine(_folder, "ant", "b.PNG"), "ant"),
        }, files.ToArray());
    }

    [TestMethod]
    public void LoadGivesPlanarFeaturesAndKeyLabelsWithClassNames()
    {
        WriteTree();
        var ml = new MLContext(1);
        var view = ImageFolderLoader.Load(ml, _folder, W, H);

        var features = (VectorDataViewType)view.Schema["Features"].Type;
        CollectionAssert.AreEqual(new[] { 3, H, W }, features.Dimensions.ToArray());
        Assert.AreEqual(2UL, ((KeyDataViewType)view.Schema["Label"].Type).Count);
        CollectionAssert.AreEqual(new[] { "Zebra", "ant" }, ImageColumns.ClassNamesOf(view.Schema["Label"]).ToArray());
        CollectionAssert.AreEqual(new[] { 1u, 1u, 2u }, view.GetColumn<uint>("Label").ToArray());
        Assert.AreEqual(Path.Combine(_folder, "ant", "b.PNG"), view.GetColumn<string>(ImageFolderLoader.ImagePathColumnName).Last());

        var rows = view.GetColumn<float[]>("Features").ToArray();
        Assert.HasCount(3, rows);
        // Same size as written, so the resize step leaves the decoded PNG pixels exactly as they were.
        for (int k = 0; k < 3; k++)
            CollectionAssert.AreEqual(Expected(k), rows[k], $"image {k}");
    }

    [TestMethod]
    public void LoadSetReturnsExactPixelsLabelsAndCustomColumnNamesWork()
    {
        WriteTree();
        var ml = new MLContext(1);
        var set = ImageFolderLoader.LoadSet(ml, _folder, W, H);
        Assert.AreEqual((3, H, W), (set.Channels, set.Height, set.Width));
        CollectionAssert.AreEqual(new[] { 0, 0, 1 }, set.Labels);
        CollectionAssert.AreEqual(new[] { "Zebra", "ant" }, set.ClassNames.ToArray());
        CollectionAssert.AreEqual(Expected(0).Concat(Expected(1)).Concat(Expected(2)).ToArray(), set.Pixels);
        // Hand check: image 2, blue plane, (x=1, y=1) = 200 + 2.
        Assert.AreEqual(202f, set.Image(2)[2 * H * W + 1 * W + 1]);

        var renamed = ImageFolderLoader.Load(ml, _folder, W, H, featureColumnName: "Pixels", labelColumnName: "Class");
        var again = LabeledImageSet.FromDataView(renamed, "Pixels", "Class");
        CollectionAssert.AreEqual(set.Pixels, again.Pixels);
        CollectionAssert.AreEqual(set.Labels, again.Labels);
    }

    [TestMethod]
    public void ResizingToAnotherSizeKeepsASolidColour()
    {
        WriteImage(Path.Combine("a", "solid.png"), 4, 4, (_, _) => (12, 34, 56));
        WriteImage(Path.Combine("b", "solid.png"), 4, 4, (_, _) => (250, 0, 128));
        var set = ImageFolderLoader.LoadSet(new MLContext(1), _folder, 8, 6);
        Assert.AreEqual((3, 6, 8), (set.Channels, set.Height, set.Width));
        var expected = new[] { 12f, 34f, 56f }.SelectMany(v => Enumerable.Repeat(v, 48))
            .Concat(new[] { 250f, 0f, 128f }.SelectMany(v => Enumerable.Repeat(v, 48))).ToArray();
        CollectionAssert.AreEqual(expected, set.Pixels);
    }

    [TestMethod]
    public void BadFoldersAreReported()
    {
        var ml = new MLContext(1);
        var missing = Path.Combine(_folder, "missing");
        var notFound = Assert.ThrowsExactly<DirectoryNotFoundException>(() => ImageFolderLoader.Load(ml, missing, W, H));
        StringAssert.Contains(notFound.Message, missing);

        WriteImage(Path.Combine("only", "x.png"), W, H, (x, y) => Pixel(0, x, y));
        var oneClass = Assert.ThrowsExactly<InvalidDataException>(() => ImageFolderLoader.Load(ml, _folder, W, H));
        StringAssert.Contains(oneClass.Message, "at least 2 classes, but has 1 ('only')");

        Directory.Delete(Path.Combine(_folder, "only"), recursive: true);
        Directory.CreateDirectory(Path.Combine(_folder, "a"));
        Directory.CreateDirectory(Path.Combine(_folder, "b"));
        File.WriteAllText(Path.Combine(_folder, "a", "readme.txt"), "text");
        var noImages = Assert.ThrowsExactly<InvalidDataException>(() => ImageFolderLoader.LoadSet(ml, _folder, W, H));
        StringAssert.Contains(noImages.Message, "holds no images");

        WriteImage(Path.Combine("a", "x.png"), W, H, (x, y) => Pixel(0, x, y));
        var emptyClass = Assert.ThrowsExactly<InvalidDataException>(() => ImageFolderLoader.Load(ml, _folder, W, H));
        StringAssert.Contains(emptyClass.Message, "'b'");

        WriteImage(Path.Combine("b", "y.png"), W, H, (x, y) => Pixel(1, x, y));
        var badWidth = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => ImageFolderLoader.Load(ml, _folder, 0, H));
        Assert.AreEqual("width", badWidth.ParamName);
    }

    [TestMethod]
    public void HiddenFoldersAndFilesAreSkipped()
    {
        WriteTree();
        WriteImage(Path.Combine(".ipynb_checkpoints", "a-checkpoint.png"), W, H, (x, y) => Pixel(3, x, y));
        WriteImage(Path.Combine("ant", ".ipynb_checkpoints", "b-checkpoint.png"), W, H, (x, y) => Pixel(3, x, y));
        WriteImage(Path.Combine("ant", "._b.png"), W, H, (x, y) => Pixel(3, x, y));
        var (classes, files) = ImageFolderLoader.ListImages(_folder);
        CollectionAssert.AreEqual(new[] { "Zebra", "ant" }, classes.ToArray());
        Assert.HasCount(3, files);
    }

    [TestMethod]
    public void AGivenClassListFixesTheKeysOfATreeThatLacksAClass()
    {
        // The test tree has no 'Zebra' folder: with the training class list, 'ant' keeps key 2.
        WriteImage(Path.Combine("ant", "b.png"), W, H, (x, y) => Pixel(2, x, y));
        WriteImage(Path.Combine("bee", "c.png"), W, H, (x, y) => Pixel(1, x, y));
        var ml = new MLContext(1);
        var classes = new[] { "Zebra", "ant", "bee" };
        var view = ImageFolderLoader.Load(ml, _folder, W, H, classNames: classes);
        CollectionAssert.AreEqual(classes, ImageColumns.ClassNamesOf(view.Schema["Label"]).ToArray());
        CollectionAssert.AreEqual(new[] { 2u, 3u }, view.GetColumn<uint>("Label").ToArray());
        var set = ImageFolderLoader.LoadSet(ml, _folder, W, H, classNames: classes);
        CollectionAssert.AreEqual(new[] { 1, 2 }, set.Labels);

        // A folder the list does not name is an error, not a new class.
        WriteImage(Path.Combine("cat", "d.png"), W, H, (x, y) => Pixel(0, x, y));
        var unknown = Assert.ThrowsExactly<InvalidDataException>(() => ImageFolderLoader.Load(ml, _folder, W, H, classNames: classes));
        StringAssert.Contains(unknown.Message, "'cat'");
        StringAssert.Contains(unknown.Message, "Zebra, ant, bee");
        Assert.AreEqual("classNames", Assert.ThrowsExactly<ArgumentException>(
            () => ImageFolderLoader.ListImages(_folder, new[] { "ant", "ant" })).ParamName);
    }
}
