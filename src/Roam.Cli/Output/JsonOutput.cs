using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.Json.Serialization;
using System.Text.Json.Serialization.Metadata;
using Roam.Control;

namespace Roam.Cli.Output;

/// <summary>--json output: the API's records (and the CLI's two small ones), indented, camelCase, apostrophes unescaped.</summary>
internal static class JsonOutput
{
    public static CliJsonContext Context { get; } = new(new JsonSerializerOptions(JsonSerializerDefaults.Web)
    {
        WriteIndented = true,
        Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
    });

    public static string Serialize<T>(T value, JsonTypeInfo<T> type) => JsonSerializer.Serialize(value, type);
}

/// <summary>`roam volume delete --json`.</summary>
internal sealed record DeleteResult(string Name, bool Deleted);

/// <summary>`roam export NAME --json`.</summary>
internal sealed record ExportUris(string Name, IReadOnlyList<string> Uris);

[JsonSerializable(typeof(HostInfo))]
[JsonSerializable(typeof(VolumeView))]
[JsonSerializable(typeof(IReadOnlyList<VolumeView>))]
[JsonSerializable(typeof(JobView))]
[JsonSerializable(typeof(IReadOnlyList<JobView>))]
[JsonSerializable(typeof(DeleteResult))]
[JsonSerializable(typeof(ExportUris))]
internal sealed partial class CliJsonContext : JsonSerializerContext;
