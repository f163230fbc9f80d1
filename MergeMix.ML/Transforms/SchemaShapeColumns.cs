using System.Reflection;
using Microsoft.ML;
using Microsoft.ML.Data;

namespace MergeMix.ML.Transforms;

/// <summary>
/// Creates <see cref="SchemaShape.Column"/> values for new output columns. ML.NET keeps that constructor internal on
/// purpose (dotnet/machinelearning#3243), yet <c>GetOutputSchema(SchemaShape)</c> must describe new columns for
/// <c>EstimatorChain</c> to check the chain, so the five-argument constructor is reached by reflection, as other
/// third-party ML.NET components do.
/// </summary>
internal static class SchemaShapeColumns
{
    private static readonly ConstructorInfo Constructor = typeof(SchemaShape.Column)
        .GetConstructors(BindingFlags.NonPublic | BindingFlags.Instance)
        .Single(c => c.GetParameters().Length == 5);

    public static SchemaShape.Column Make(string name, SchemaShape.Column.VectorKind kind, DataViewType itemType, bool isKey = false, SchemaShape? annotations = null) =>
        (SchemaShape.Column)Constructor.Invoke(new object?[] { name, kind, itemType, isKey, annotations });

    /// <summary>The input shape with <paramref name="added"/> columns added or replacing same-named ones.</summary>
    public static SchemaShape With(SchemaShape input, params SchemaShape.Column[] added)
    {
        var columns = input.ToDictionary(c => c.Name);
        foreach (var column in added) columns[column.Name] = column;
        return new SchemaShape(columns.Values);
    }
}
