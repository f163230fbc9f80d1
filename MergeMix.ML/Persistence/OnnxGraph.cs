using Google.Protobuf;
using Onnx;

namespace MergeMix.ML.Persistence;

/// <summary>
/// A small writer of ONNX graphs (opset <see cref="Opset"/>) over OnnxSharp's generated protobuf classes: every call adds
/// one node or initializer and returns the name of its output, so model code reads like the forward pass it mirrors.
/// Names are made unique with a running counter under a caller-chosen prefix.
/// </summary>
internal sealed class OnnxGraph
{
    /// <summary>Default-domain opset: 20 is the first with Gelu; LayerNormalization (17), ScatterElements with reduction (16+) and axes-as-input reductions (18) are all in it.</summary>
    public const int Opset = 20;

    /// <summary>ai.onnx.ml opset, for the LabelEncoder that carries ML.NET slot names.</summary>
    public const int MlOpset = 2;

    private readonly GraphProto _graph;
    private readonly Dictionary<string, int> _counters = new();

    public OnnxGraph(string name) => _graph = new GraphProto { Name = name };

    /// <summary>Declares a float/int64/string input with the given dims; a null dim is the symbolic batch dimension.</summary>
    public string Input(string name, TensorProto.Types.DataType type, params long?[] dims)
    {
        _graph.Input.Add(ValueInfo(name, type, dims));
        return name;
    }

    /// <summary>Declares <paramref name="value"/> as a graph output named <paramref name="name"/> (through an Identity when the names differ).</summary>
    public string Output(string value, string name, TensorProto.Types.DataType type, params long?[] dims)
    {
        if (value != name) _graph.Node.Add(NodeProto("Identity", new[] { value }, new[] { name }, name + "/Identity"));
        _graph.Output.Add(ValueInfo(name, type, dims));
        return name;
    }

    /// <summary>A float initializer of the given shape (row-major values).</summary>
    public string Float(string prefix, float[] values, params long[] dims)
    {
        CheckCount(prefix, values.Length, dims);
        var tensor = NewTensor(prefix, TensorProto.Types.DataType.Float, dims);
        tensor.RawData = ByteString.CopyFrom(System.Runtime.InteropServices.MemoryMarshal.AsBytes(values.AsSpan()));
        _graph.Initializer.Add(tensor);
        return tensor.Name;
    }

    /// <summary>A float scalar initializer (rank 0).</summary>
    public string FloatScalar(string prefix, float value) => Float(prefix, new[] { value });

    /// <summary>A 1-D int64 initializer (shapes, axes, indices).</summary>
    public string Int64s(string prefix, params long[] values) => Int64(prefix, values, values.Length);

    /// <summary>An int64 initializer of the given shape.</summary>
    public string Int64(string prefix, long[] values, params long[] dims)
    {
        CheckCount(prefix, values.Length, dims);
        var tensor = NewTensor(prefix, TensorProto.Types.DataType.Int64, dims);
        tensor.Int64Data.AddRange(values);
        _graph.Initializer.Add(tensor);
        return tensor.Name;
    }

    /// <summary>A 1-D string initializer.</summary>
    public string Strings(string prefix, IReadOnlyList<string> values)
    {
        var tensor = NewTensor(prefix, TensorProto.Types.DataType.String, values.Count);
        foreach (var v in values) tensor.StringData.Add(ByteString.CopyFromUtf8(v));
        _graph.Initializer.Add(tensor);
        return tensor.Name;
    }

    /// <summary>Adds a default-domain node with one output and returns that output's name.</summary>
    public string Op(string opType, string prefix, IEnumerable<string> inputs, params AttributeProto[] attributes) =>
        OpMulti(opType, prefix, inputs, 1, attributes)[0];

    /// <summary>Adds a node with <paramref name="outputCount"/> outputs and returns their names.</summary>
    public string[] OpMulti(string opType, string prefix, IEnumerable<string> inputs, int outputCount, params AttributeProto[] attributes)
    {
        string name = Unique(prefix + "/" + opType);
        var outputs = Enumerable.Range(0, outputCount).Select(i => outputCount == 1 ? name : $"{name}:{i}").ToArray();
        var node = NodeProto(opType, inputs, outputs, name);
        node.Attribute.AddRange(attributes);
        _graph.Node.Add(node);
        return outputs;
    }

    /// <summary>
    /// A dead-end ai.onnx.ml LabelEncoder named <c>mlnet.{column}.SlotNames</c>: ML.NET's OnnxTransformer reads its
    /// <c>keys_strings</c> as the SlotNames of output column <paramref name="column"/>; ONNX Runtime prunes the node.
    /// </summary>
    public void SlotNames(string column, IReadOnlyList<string> names)
    {
        string source = Strings($"mlnet.{column}.SlotNames.keys", names);
        var keys = new AttributeProto { Name = "keys_strings", Type = AttributeProto.Types.AttributeType.Strings };
        foreach (var n in names) keys.Strings.Add(ByteString.CopyFromUtf8(n));
        var values = new AttributeProto { Name = "values_int64s", Type = AttributeProto.Types.AttributeType.Ints };
        values.Ints.AddRange(Enumerable.Range(0, names.Count).Select(i => (long)i));
        var node = NodeProto("LabelEncoder", new[] { source }, new[] { $"mlnet.{column}.SlotNames.unused" }, $"mlnet.{column}.SlotNames");
        node.Domain = "ai.onnx.ml";
        node.Attribute.Add(keys);
        node.Attribute.Add(values);
        _graph.Node.Add(node);
    }

    /// <summary>The finished model (IR version 9, the default and ai.onnx.ml opsets).</summary>
    public ModelProto ToModel(string producer, string docString)
    {
        var model = new ModelProto { IrVersion = 9, ProducerName = producer, DocString = docString, Graph = _graph };
        model.OpsetImport.Add(new OperatorSetIdProto { Domain = "", Version = Opset });
        model.OpsetImport.Add(new OperatorSetIdProto { Domain = "ai.onnx.ml", Version = MlOpset });
        return model;
    }

    public static AttributeProto Int(string name, long value) => new() { Name = name, Type = AttributeProto.Types.AttributeType.Int, I = value };

    public static AttributeProto Ints(string name, params long[] values)
    {
        var a = new AttributeProto { Name = name, Type = AttributeProto.Types.AttributeType.Ints };
        a.Ints.AddRange(values);
        return a;
    }

    public static AttributeProto FloatAttribute(string name, float value) => new() { Name = name, Type = AttributeProto.Types.AttributeType.Float, F = value };

    public static AttributeProto Text(string name, string value) =>
        new() { Name = name, Type = AttributeProto.Types.AttributeType.String, S = ByteString.CopyFromUtf8(value) };

    private static NodeProto NodeProto(string opType, IEnumerable<string> inputs, IEnumerable<string> outputs, string name)
    {
        var node = new NodeProto { OpType = opType, Name = name };
        node.Input.AddRange(inputs);
        node.Output.AddRange(outputs);
        return node;
    }

    private static ValueInfoProto ValueInfo(string name, TensorProto.Types.DataType type, long?[] dims)
    {
        var shape = new TensorShapeProto();
        foreach (var d in dims)
            shape.Dim.Add(d is long value ? new TensorShapeProto.Types.Dimension { DimValue = value } : new TensorShapeProto.Types.Dimension { DimParam = "batch" });
        return new ValueInfoProto { Name = name, Type = new TypeProto { TensorType = new TypeProto.Types.Tensor { ElemType = (int)type, Shape = shape } } };
    }

    private TensorProto NewTensor(string prefix, TensorProto.Types.DataType type, params long[] dims)
    {
        var tensor = new TensorProto { Name = Unique(prefix), DataType = (int)type };
        tensor.Dims.AddRange(dims);
        return tensor;
    }

    private string Unique(string prefix)
    {
        int n = _counters.TryGetValue(prefix, out int c) ? c : 0;
        _counters[prefix] = n + 1;
        return n == 0 ? prefix : $"{prefix}_{n}";
    }

    private static void CheckCount(string name, int count, long[] dims)
    {
        long expected = dims.Aggregate(1L, (a, b) => a * b);
        if (count != expected)
            throw new ArgumentException($"Initializer '{name}' has {count} values but shape [{string.Join(", ", dims)}] needs {expected}.");
    }
}
