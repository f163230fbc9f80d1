using System.Globalization;
using Microsoft.ML;
using Microsoft.ML.Data;

// Usage: MergeMix.ML.Tests.Loader <model.zip> <images.bin> <predictions.tsv> [imageColumn]
// images.bin: int32 row count, then the rows' float32 pixels (little-endian), as many per row as the image column holds.
// predictions.tsv: per row "class from Transform<TAB>class from a PredictionEngine<TAB>comma-separated scores".
if (args.Length < 3)
{
    Console.Error.WriteLine("usage: <model.zip> <images.bin> <predictions.tsv> [imageColumn]");
    return 2;
}
string imageColumn = args.Length > 3 ? args[3] : "Features";
var ml = new MLContext(0);
var model = ml.Model.Load(args[0], out var inputSchema);
var imageType = (VectorDataViewType)(inputSchema.GetColumnOrNull(imageColumn)?.Type
    ?? throw new InvalidDataException($"The model's input schema has no column '{imageColumn}'."));

float[][] images;
using (var reader = new BinaryReader(File.OpenRead(args[1])))
{
    int count = reader.ReadInt32();
    images = Enumerable.Range(0, count).Select(_ => Enumerable.Range(0, imageType.Size).Select(_ => reader.ReadSingle()).ToArray()).ToArray();
}

var definition = SchemaDefinition.Create(typeof(ImageRow));
definition[0].ColumnName = imageColumn;
definition[0].ColumnType = imageType;
var data = ml.Data.LoadFromEnumerable(images.Select(i => new ImageRow { Image = i }), definition);
var withClass = new TransformerChain<ITransformer>(model, ml.Transforms.Conversion.MapKeyToValue("PredictedClass", "PredictedLabel").Fit(model.Transform(data)));
var scored = withClass.Transform(data);
var classes = scored.GetColumn<string>("PredictedClass").ToArray();
var scores = scored.GetColumn<float[]>("Score").ToArray();
var engine = ml.Model.CreatePredictionEngine<ImageRow, Prediction>(withClass, inputSchemaDefinition: definition);

using (var writer = new StreamWriter(args[2]))
    for (int i = 0; i < images.Length; i++)
    {
        var one = engine.Predict(new ImageRow { Image = images[i] });
        writer.WriteLine($"{classes[i]}\t{one.PredictedClass}\t{string.Join(",", scores[i].Select(s => s.ToString("R", CultureInfo.InvariantCulture)))}");
    }

var forbidden = AppDomain.CurrentDomain.GetAssemblies().Select(a => a.GetName().Name)
    .Where(n => n is "MergeMix.ML" || n!.StartsWith("TorchSharp", StringComparison.Ordinal)).ToArray();
if (forbidden.Length > 0)
{
    Console.Error.WriteLine($"Loading the model pulled in {string.Join(", ", forbidden)}.");
    return 3;
}
Console.WriteLine($"scored {images.Length} rows");
return 0;

internal sealed class ImageRow
{
    public float[] Image { get; set; } = Array.Empty<float>();
}

internal sealed class Prediction
{
    public string PredictedClass { get; set; } = "";

    public float[] Score { get; set; } = Array.Empty<float>();
}
