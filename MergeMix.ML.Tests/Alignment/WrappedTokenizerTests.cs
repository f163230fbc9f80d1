using MergeMix.ML.Alignment;
using Microsoft.ML.Tokenizers;

namespace MergeMix.ML.Tests.Alignment;

/// <summary>Any Microsoft.ML.Tokenizers tokenizer with the model's special tokens added as single ids.</summary>
[TestClass]
public sealed class WrappedTokenizerTests
{
    private static readonly MultimodalSpecialTokens Gpt2Specials = new() { Eos = "<|endoftext|>", Pad = "<|endoftext|>", Additional = new[] { "<|user|>", "<|assistant|>" } };

    [TestMethod]
    public void Gpt2TiktokenRoundTripsWithSpecialTokens()
    {
        var tok = MultimodalTokenizer.FromTiktoken("gpt2", Gpt2Specials);
        // GPT-2: 50 256 ranks + <|endoftext|> = 50 257 ids; <image>, <unk> and the two roles are appended.
        Assert.AreEqual(50256, tok.EosId);
        Assert.AreEqual(50256, tok.PadId);
        CollectionAssert.AreEquivalent(new[] { 50257, 50258, 50259, 50260 },
            new[] { tok.ImageId, tok.UnknownId, tok.SpecialTokenId("<|user|>"), tok.SpecialTokenId("<|assistant|>") });
        Assert.AreEqual(50261, tok.VocabSize);
        // GPT-2's own ids for ordinary text ("Hello world" = 15496, 995).
        CollectionAssert.AreEqual(new[] { 15496, 995 }, tok.Encode("Hello world"));
        string text = "<|user|> what color is the circle? <|assistant|> a red circle.<|endoftext|>";
        var ids = tok.Encode(text);
        Assert.AreEqual(tok.SpecialTokenId("<|user|>"), ids[0]);
        Assert.AreEqual(tok.EosId, ids[^1]);
        Assert.AreEqual(" what color is the circle?  a red circle.", tok.Decode(ids), "decode skips the special tokens");
        Assert.IsTrue(tok.IsSingleToken("<image>"));
        Assert.IsTrue(PromptTemplate.Chat.SpecialTokens.All(tok.IsSingleToken));

        using var stream = new MemoryStream();
        tok.Save(stream);
        stream.Position = 0;
        var loaded = MultimodalTokenizer.Load(stream);
        Assert.AreEqual(tok.VocabSize, loaded.VocabSize);
        CollectionAssert.AreEqual(ids, loaded.Encode(text));
    }

    [TestMethod]
    public void AnyBpeTokenizerIsWrappedAndNeedsItselfToReload()
    {
        var vocab = new Dictionary<string, int> { ["a"] = 0, ["b"] = 1, ["Ġ"] = 2, ["ab"] = 3, ["Ġab"] = 4, ["<|endoftext|>"] = 5 };
        var bpe = BpeTokenizer.Create(new BpeOptions(vocab)
        {
            Merges = new[] { "a b", "Ġ ab" }, ByteLevel = true, SpecialTokens = new Dictionary<string, int> { ["<|endoftext|>"] = 5 },
        });
        var tok = MultimodalTokenizer.FromTokenizer(bpe, new MultimodalSpecialTokens { Eos = "<|endoftext|>" });
        Assert.AreEqual(5, tok.EosId, "an existing special token keeps its id");
        CollectionAssert.AreEqual(new[] { 6, 7, 8 }, new[] { tok.PadId, tok.ImageId, tok.UnknownId }, "new ones follow the vocabulary");
        Assert.AreEqual(9, tok.VocabSize);
        var ids = tok.Encode("<image>ab<|endoftext|>");
        CollectionAssert.AreEqual(new[] { 7, 3, 5 }, ids);
        Assert.AreEqual("ab", tok.Decode(ids));

        using var stream = new MemoryStream();
        tok.Save(stream);
        stream.Position = 0;
        StringAssert.Contains(Assert.ThrowsExactly<InvalidDataException>(() => MultimodalTokenizer.Load(stream)).Message, "baseTokenizer");
        stream.Position = 0;
        CollectionAssert.AreEqual(ids, MultimodalTokenizer.Load(stream, bpe).Encode("<image>ab<|endoftext|>"));
    }

    [TestMethod]
    public void TinyModelTrainsOnAWrappedTokenizer()
    {
        // The in-code BPE wrapped like any Microsoft.ML.Tokenizers tokenizer keeps the model small and trainable.
        var corpus = MultimodalTokenizer.CreateFromCorpus(new[] { "a red shape.", "a blue shape.", "what color?" });
        var tok = MultimodalTokenizer.FromTokenizer(corpus.BaseTokenizer, new MultimodalSpecialTokens { Additional = new[] { "<|user|>", "<|assistant|>" } });
        using var model = new MultimodalLm(new TinyPatchEncoder(), tok, new MultimodalLmOptions { ModelDim = 16, Layers = 1, Heads = 2, MaxTextLength = 16 });
        using var images = TorchSharp.torch.rand(2, 3, 8, 8);
        var prompts = new[] { PromptTemplate.Chat.Apply("what color?"), PromptTemplate.Chat.Apply("what color?") };
        using var data = PreferenceDataset.FromPairs(images, prompts, new[] { "a red shape.", "a blue shape." }, new[] { "a blue shape.", "a red shape." });
        using var trainer = new PreferenceTrainer(model, new PreferenceTrainerOptions { Objective = PreferenceObjective.Sft, BatchSize = 2, Epochs = 3 });
        var history = trainer.Train(data);
        Assert.IsTrue(history[^1].Loss < history[0].Loss, $"{history[0].Loss} → {history[^1].Loss}");
        Assert.AreEqual(corpus.VocabSize, tok.VocabSize - 2, "the two roles are appended after the corpus vocabulary");
    }

    [TestMethod]
    public void TemplatesAreValidated()
    {
        Assert.AreEqual("<|user|> hi <|assistant|>", PromptTemplate.Chat.Apply("hi"));
        Assert.ThrowsExactly<ArgumentException>(() => new PromptTemplate("no placeholder", Array.Empty<string>()).Validate("PromptTemplate"));
        var plain = MultimodalTokenizer.CreateFromCorpus(new[] { "a red shape." });
        StringAssert.Contains(Assert.ThrowsExactly<ArgumentException>(() => PromptTemplate.Chat.CheckTokenizer(plain, "PromptTemplate")).Message, "<|user|>");
    }
}
