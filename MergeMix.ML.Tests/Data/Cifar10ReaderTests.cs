using System.IO.Compression;
using MergeMix.ML.Data;

namespace MergeMix.ML.Tests.Data;

[TestClass]
public sealed class Cifar10ReaderTests
{
    private const int Record = 3073;
    private string _folder = "";

    [TestInitialize]
    public void CreateFolder() => _folder = TestFolders.CreateTemp();

    [TestCleanup]
    public void DeleteFolder() => TestFolders.Delete(_folder);

    // Pixel byte i (0..3071, planar RGB) of record r; distinct across records and channels.
    private static byte PixelByte(int record, int i) => (byte)((record * 101 + i * 7) & 255);

    private static byte[] Records(params byte[] labels)
    {
        var bytes = new byte[labels.Length * Record];
        for (int r = 0; r < labels.Length; r++)
        {
            bytes[r * Record] = labels[r];
            for (int i = 0; i < 3072; i++)
                bytes[r * Record + 1 + i] = PixelByte(r, i);
        }
        return bytes;
    }

    private string Write(string name, byte[] content)
    {
        var path = Path.Combine(_folder, name);
        if (name.EndsWith(".gz", StringComparison.Ordinal))
        {
            using var file = File.Create(path);
            using var gzip = new GZipStream(file, CompressionLevel.Fastest);
            gzip.Write(content);
        }
        else
            File.WriteAllBytes(path, content);
        return path;
    }

    private static void AssertPixels(LabeledImageSet set, int firstRecord = 0)
    {
        for (int r = 0; r < set.Count; r++)
        {
            var image = set.Image(r);
            for (int i = 0; i < 3072; i++)
                if (image[i] != PixelByte(firstRecord + r, i))
                    Assert.Fail($"Image {r} pixel {i}: expected {PixelByte(firstRecord + r, i)}, got {image[i]}.");
        }
    }

    [TestMethod]
    [DataRow("three.bin")]
    [DataRow("three.bin.gz")]
    public void ReadsRecordsExactly(string name)
    {
        var set = Cifar10Reader.Read(Write(name, Records(0, 9, 3)));

        Assert.AreEqual(3, set.Count);
        CollectionAssert.AreEqual(new[] { 0, 9, 3 }, set.Labels);
        Assert.AreEqual((3, 32, 32), (set.Channels, set.Height, set.Width));
        CollectionAssert.AreEqual(Cifar10Reader.DefaultClassNames.ToArray(), set.ClassNames.ToArray());
        // Record 1, blue plane, bottom-right pixel: byte 1 + 2·1024 + 31·32 + 31 of the record = (101 + 3071·7) mod 256 = 94.
        Assert.AreEqual(94f, set.Image(1)[2 * 1024 + 31 * 32 + 31]);
        // Record 2, green plane, (y=1, x=2): (202 + 1058·7) mod 256 = 7608 mod 256 = 184.
        Assert.AreEqual(184f, set.Image(2)[1024 + 32 + 2]);
        AssertPixels(set);
    }

    [TestMethod]
    [DataRow("three.bin")]
    [DataRow("three.bin.gz")]
    public void MaxImagesReadsOnlyThePrefix(string name)
    {
        var set = Cifar10Reader.Read(Write(name, Records(4, 5, 6)), maxImages: 2);
        CollectionAssert.AreEqual(new[] { 4, 5 }, set.Labels);
        AssertPixels(set);
    }

    [TestMethod]
    public void ClassNamesComeFromTheMetaFile()
    {
        var names = Enumerable.Range(0, 10).Select(i => $"class{i}").ToArray();
        File.WriteAllText(Path.Combine(_folder, "batches.meta.txt"), string.Join("\n", names) + "\n\n");
        var set = Cifar10Reader.Read(Write("a.bin", Records(7)));
        CollectionAssert.AreEqual(names, set.ClassNames.ToArray());

        File.WriteAllText(Path.Combine(_folder, "batches.meta.txt"), "only\nnine\n1\n2\n3\n4\n5\n6\n7\n");
        var ex = Assert.ThrowsExactly<InvalidDataException>(() => Cifar10Reader.Read(Path.Combine(_folder, "a.bin")));
        StringAssert.Contains(ex.Message, "batches.meta.txt");
        StringAssert.Contains(ex.Message, "holds 9");
    }

    [TestMethod]
    public void ReadTrainJoinsTheFiveBatchesInOrderAndReadTestCountsItsRecords()
    {
        // Batch k holds k records labelled k-1; a mix of plain and gzip files.
        for (int k = 1; k <= 5; k++)
        {
            var bytes = Records(Enumerable.Repeat((byte)(k - 1), k).ToArray());
            Write(k % 2 == 0 ? $"data_batch_{k}.bin.gz" : $"data_batch_{k}.bin", bytes);
        }
        Write("test_batch.bin.gz", Records(1, 2, 3, 4));

        var train = Cifar10Reader.ReadTrain(_folder);
        CollectionAssert.AreEqual(new[] { 0, 1, 1, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 4 }, train.Labels);
        // Image 3 is record 0 of data_batch_3.
        CollectionAssert.AreEqual(Enumerable.Range(0, 3072).Select(i => (float)PixelByte(0, i)).ToArray(), train.Image(3).ToArray());

        var prefix = Cifar10Reader.ReadTrain(_folder, maxImages: 4);
        CollectionAssert.AreEqual(new[] { 0, 1, 1, 2 }, prefix.Labels);

        var test = Cifar10Reader.ReadTest(_folder);
        CollectionAssert.AreEqual(new[] { 1, 2, 3, 4 }, test.Labels);
        AssertPixels(test);
    }

    [TestMethod]
    public void MissingFolderAndFilesAreNamed()
    {
        var missingFolder = Path.Combine(_folder, "nope");
        var dirEx = Assert.ThrowsExactly<DirectoryNotFoundException>(() => Cifar10Reader.ReadTrain(missingFolder));
        StringAssert.Contains(dirEx.Message, missingFolder);

        Write("data_batch_1.bin", Records(0));
        Write("data_batch_2.bin", Records(0));
        var fileEx = Assert.ThrowsExactly<FileNotFoundException>(() => Cifar10Reader.ReadTrain(_folder));
        StringAssert.Contains(fileEx.Message, Path.Combine(_folder, "data_batch_3.bin.gz"));
        Assert.ThrowsExactly<FileNotFoundException>(() => Cifar10Reader.ReadTest(_folder));

        var missingFile = Path.Combine(_folder, "x.bin");
        var readEx = Assert.ThrowsExactly<FileNotFoundException>(() => Cifar10Reader.Read(missingFile));
        StringAssert.Contains(readEx.Message, missingFile);
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => Cifar10Reader.Read(Path.Combine(_folder, "data_batch_1.bin"), maxImages: 0));
    }

    [TestMethod]
    [DataRow("bad.bin")]
    [DataRow("bad.bin.gz")]
    public void LengthNotAMultipleOfTheRecordSizeIsRejected(string name)
    {
        var bytes = Records(1, 2).Concat(new byte[] { 3, 4, 5, 6, 7 }).ToArray();
        var path = Write(name, bytes);
        var ex = Assert.ThrowsExactly<InvalidDataException>(() => Cifar10Reader.Read(path));
        StringAssert.Contains(ex.Message, path);
        StringAssert.Contains(ex.Message, "6151 bytes");
    }

    [TestMethod]
    [DataRow("label.bin")]
    [DataRow("label.bin.gz")]
    public void LabelAboveNineIsRejectedWithFileAndRecord(string name)
    {
        var path = Write(name, Records(3, 10, 2));
        var ex = Assert.ThrowsExactly<InvalidDataException>(() => Cifar10Reader.Read(path));
        StringAssert.Contains(ex.Message, path);
        StringAssert.Contains(ex.Message, "record 1 has label 10");
    }

    [TestMethod]
    public void CorruptGzipIsRejectedWithTheFileName()
    {
        var path = Path.Combine(_folder, "corrupt.bin.gz");
        File.WriteAllBytes(path, Enumerable.Range(0, 100).Select(i => (byte)(i * 37)).ToArray());
        var ex = Assert.ThrowsExactly<InvalidDataException>(() => Cifar10Reader.Read(path));
        StringAssert.Contains(ex.Message, path);
    }

    [TestMethod]
    public void StratifiedSubsetIsBalancedSeededAndOrdered()
    {
        // 40 images: label = i % 4 except that class 3 loses every other member (5 left).
        var labels = Enumerable.Range(0, 40).Select(i => i % 4 == 3 && i % 8 == 7 ? 0 : i % 4).ToArray();
        var pixels = Enumerable.Range(0, 40 * 3).Select(i => (float)(i / 3)).ToArray(); // image i is filled with i
        var set = new LabeledImageSet(pixels, labels, new[] { "a", "b", "c", "d" }, 3, 1, 1);

        var subset = Cifar10Reader.StratifiedSubset(set, perClass: 5, seed: 3);
        Assert.AreEqual(20, subset.Count);
        for (int c = 0; c < 4; c++)
            Assert.AreEqual(5, subset.Labels.Count(l => l == c));
        var sourceIndices = Enumerable.Range(0, subset.Count).Select(i => (int)subset.Image(i)[0]).ToArray();
        CollectionAssert.AreEqual(sourceIndices.Order().ToArray(), sourceIndices);
        for (int i = 0; i < subset.Count; i++)
            Assert.AreEqual(labels[sourceIndices[i]], subset.Labels[i]);
        // Class 3 has exactly 5 members (3, 11, 19, 27, 35), so all of them are chosen.
        CollectionAssert.AreEqual(new[] { 3, 11, 19, 27, 35 }, sourceIndices.Where(i => labels[i] == 3).ToArray());

        var again = Cifar10Reader.StratifiedSubset(set, perClass: 5, seed: 3);
        CollectionAssert.AreEqual(subset.Pixels, again.Pixels);

        var ex = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => Cifar10Reader.StratifiedSubset(set, perClass: 6, seed: 3));
        StringAssert.Contains(ex.Message, "class 'd' has only 5");
    }

    [TestMethod]
    public void SharedTestBatchHas5000RecordsWithTheDocumentedClassCounts()
    {
        var folder = TestFolders.SharedCifar10OrInconclusive();
        var test = Cifar10Reader.ReadTest(folder);
        Assert.AreEqual(5000, test.Count);
        CollectionAssert.AreEqual(Cifar10Reader.DefaultClassNames.ToArray(), test.ClassNames.ToArray());
        var counts = Enumerable.Range(0, 10).Select(c => test.Labels.Count(l => l == c)).ToArray();
        CollectionAssert.AreEqual(new[] { 488, 505, 512, 497, 507, 488, 491, 495, 504, 513 }, counts);
    }

    [TestMethod]
    public void SharedTrainPrefixMatchesTheRawRecords()
    {
        var folder = TestFolders.SharedCifar10OrInconclusive();
        var train = Cifar10Reader.ReadTrain(folder, maxImages: 100);
        Assert.AreEqual(100, train.Count);
        // The original CIFAR-10 data_batch_1 starts frog, truck, truck, deer, automobile, automobile, bird, horse, ship, cat.
        CollectionAssert.AreEqual(new[] { 6, 9, 9, 4, 1, 1, 2, 7, 8, 3 }, train.Labels.Take(10).ToArray());

        var raw = new byte[100 * Record];
        using (var gzip = new GZipStream(File.OpenRead(Path.Combine(folder, "data_batch_1.bin.gz")), CompressionMode.Decompress))
            gzip.ReadExactly(raw);
        for (int r = 0; r < 100; r++)
        {
            Assert.AreEqual(raw[r * Record], train.Labels[r]);
            var image = train.Image(r);
            for (int i = 0; i < 3072; i++)
                if (image[i] != raw[r * Record + 1 + i])
                    Assert.Fail($"Image {r} pixel {i}: expected {raw[r * Record + 1 + i]}, got {image[i]}.");
        }
    }
}
