using System.Text;
using MergeMix.ML.Alignment;

namespace MergeMix.ML.Tests.Alignment;

[TestClass]
public sealed class MultimodalTokenizerTests
{
    internal static readonly string[] TaskSentences =
    {
        "what is in the image?",
        "what color is the shape?",
        "how many shapes are there?",
        "a red circle.",
        "a blue square, on the left.",
        "there are 3 shapes.",
        "a green triangle and 2 red circles.",
    };

    private static MultimodalTokenizer Task(bool unk = false) => MultimodalTokenizer.CreateFromCorpus(TaskSentences, mapUnknownToUnk: unk);

    private static string TempFolder()
    {
        string path = Path.Combine(Path.GetTempPath(), "mm-tok-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(path);
        return path;
    }

    [TestMethod]
    public void LearnsMergesByFrequencyThenOrdinalOrder()
    {
        // Words "ab", "Ġab", "Ġa": (a,b) and (Ġ,a) both occur twice, "a" < "Ġ" ordinally; then (Ġ,a) vs (Ġ,ab) tie.
        var tok = MultimodalTokenizer.CreateFromCorpus(new[] { "ab ab a" });
        CollectionAssert.AreEqual(new[] { "a b", "Ġ a", "Ġ ab" }, tok.Merges.ToArray());
        var expected = new Dictionary<string, int>
        {
            ["<pad>"] = 0, ["<eos>"] = 1, ["<image>"] = 2, ["<unk>"] = 3,
            ["a"] = 4, ["b"] = 5, ["Ġ"] = 6, ["ab"] = 7, ["Ġa"] = 8, ["Ġab"] = 9,
        };
        CollectionAssert.AreEquivalent(expected.ToArray(), tok.Vocabulary.ToArray());
        Assert.AreEqual(10, tok.VocabSize);
        CollectionAssert.AreEqual(new[] { 7, 9, 8 }, tok.Encode("ab ab a"));
        CollectionAssert.AreEqual(new[] { 5, 4, 6, 5 }, tok.Encode("ba b"), "unseen words fall back to pieces");
    }

    [TestMethod]
    public void TaskSentencesRoundTripAndCorpusWordsAreSingleTokens()
    {
        var tok = Task();
        foreach (string s in TaskSentences)
            Assert.AreEqual(s, tok.Decode(tok.Encode(s)));
        var tokens = tok.Bpe!.EncodeToTokens("a blue square, on the left.", out _).Select(t => t.Value).ToArray();
        CollectionAssert.AreEqual(new[] { "a", "Ġblue", "Ġsquare", ",", "Ġon", "Ġthe", "Ġleft", "." }, tokens);
        // A new word made of known characters still round-trips.
        Assert.AreEqual("a red triangle, 23 ?", tok.Decode(tok.Encode("a red triangle, 23 ?")));
    }

    [TestMethod]
    public void SpecialTokensHaveOneIdEachAndDecodeSkipsThem()
    {
        var tok = Task();
        CollectionAssert.AreEqual(new[] { 0, 1, 2, 3 }, new[] { tok.PadId, tok.EosId, tok.ImageId, tok.UnknownId });
        CollectionAssert.AreEqual(new[] { tok.ImageId }, tok.Encode("<image>"));
        CollectionAssert.AreEqual(new[] { tok.EosId }, tok.Encode("<eos>"));
        CollectionAssert.AreEqual(new[] { tok.PadId }, tok.Encode("<pad>"));
        CollectionAssert.AreEqual(new[] { tok.UnknownId }, tok.Encode("<unk>"));
        var ids = tok.Encode("a red circle.");
        var framed = new[] { tok.ImageId }.Concat(ids).Concat(new[] { tok.EosId, tok.PadId, tok.PadId }).ToArray();
        Assert.AreEqual("a red circle.", tok.Decode(framed));
        Assert.IsTrue(tok.IsSpecial(tok.ImageId));
        Assert.IsFalse(tok.IsSpecial(ids[0]));
        Assert.AreEqual("ids", Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => tok.Decode(new[] { tok.VocabSize })).ParamName);
    }

    [TestMethod]
    public void UnknownPieceThrowsNamingTextAndPiece()
    {
        var tok = Task();
        var e = Assert.ThrowsExactly<ArgumentException>(() => tok.Encode("a red Circle."));
        Assert.AreEqual("text", e.ParamName);
        StringAssert.Contains(e.Message, "\"a red Circle.\"");
        StringAssert.Contains(e.Message, "\"C\"");
        var e2 = Assert.ThrowsExactly<ArgumentException>(() => tok.Encode("a\tred"));
        StringAssert.Contains(e2.Message, "\"\\t\"");
    }

    [TestMethod]
    public void UnknownRunMapsToOneUnkWhenConfigured()
    {
        var tok = Task(unk: true);
        var red = tok.Encode(" red");
        CollectionAssert.AreEqual(new[] { tok.UnknownId }.Concat(red).ToArray(), tok.Encode("ÄÖ red"));
        Assert.AreEqual(" red", tok.Decode(tok.Encode("ÄÖ red")));
    }

    [TestMethod]
    public void SaveLoadFolderAndFromFilesRoundTrip()
    {
        var tok = Task(unk: true);
        string folder = TempFolder();
        try
        {
            tok.Save(folder);
            var loaded = MultimodalTokenizer.Load(folder);
            var fromFiles = MultimodalTokenizer.FromFiles(Path.Combine(folder, "vocab.json"), Path.Combine(folder, "merges.txt"));
            foreach (var other in new[] { loaded, fromFiles })
            {
                CollectionAssert.AreEquivalent(tok.Vocabulary.ToArray(), other.Vocabulary.ToArray());
                CollectionAssert.AreEqual(tok.Merges.ToArray(), other.Merges.ToArray());
                foreach (string s in TaskSentences) CollectionAssert.AreEqual(tok.Encode(s), other.Encode(s));
            }
            Assert.IsTrue(loaded.MapsUnknownToUnk);
            Assert.IsFalse(fromFiles.MapsUnknownToUnk);
        }
        finally { Directory.Delete(folder, true); }
    }

    [TestMethod]
    public void SaveLoadStreamLeavesStreamOpen()
    {
        var tok = Task();
        using var ms = new MemoryStream();
        tok.Save(ms);
        Assert.IsTrue(ms.CanWrite, "Save must leave the stream open");
        ms.Position = 0;
        var loaded = MultimodalTokenizer.Load(ms);
        Assert.IsTrue(ms.CanRead, "Load must leave the stream open");
        Assert.AreEqual(tok.VocabSize, loaded.VocabSize);
        foreach (string s in TaskSentences) CollectionAssert.AreEqual(tok.Encode(s), loaded.Encode(s));
    }

    [TestMethod]
    public void FromFilesAddsMissingSpecialsAfterTheLargestId()
    {
        string folder = TempFolder();
        try
        {
            string vocab = Path.Combine(folder, "v.json"), merges = Path.Combine(folder, "m.txt");
            File.WriteAllText(vocab, "{\"a\": 0, \"b\": 1, \"ab\": 2, \"<eos>\": 3}", Encoding.UTF8);
            File.WriteAllLines(merges, new[] { "#version: 0.2", "a b" });
            var tok = MultimodalTokenizer.FromFiles(vocab, merges);
            Assert.AreEqual(3, tok.EosId);
            CollectionAssert.AreEqual(new[] { 4, 5, 6 }, new[] { tok.PadId, tok.ImageId, tok.UnknownId });
            Assert.AreEqual(7, tok.VocabSize);
            CollectionAssert.AreEqual(new[] { 2, 3 }, tok.Encode("ab<eos>"));

            string missing = Path.Combine(folder, "nope.txt");
            var e = Assert.ThrowsExactly<FileNotFoundException>(() => MultimodalTokenizer.FromFiles(vocab, missing));
            Assert.AreEqual(missing, e.FileName);
            StringAssert.Contains(e.Message, missing);
        }
        finally { Directory.Delete(folder, true); }
    }

    [TestMethod]
    public void EmptyCorpusIsRejected()
    {
        Assert.AreEqual("texts", Assert.ThrowsExactly<ArgumentException>(
            () => MultimodalTokenizer.CreateFromCorpus(new[] { "", "   " })).ParamName);
    }
}
