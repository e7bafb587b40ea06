using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.Json.Serialization;
using System.Text.Json.Serialization.Metadata;
using Roam.Control;

namespace Roam.Cli.Output;

/// <summary>--json output: the API's records (and the CLI's few small ones), indented, camelCase, apostrophes unescaped.</summary>
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

/// <summary>`roam host id --json`.</summary>
internal sealed record HostIdentityView(string HostName, string Fingerprint, string? PeerListen, string? VmNetwork = null, string? VmSubnet = null, string? VmBridge = null);

/// <summary>`roam host remove NAME --json`.</summary>
internal sealed record RemovePeerResult(string Name, bool Removed);

/// <summary>`roam export NAME --json`.</summary>
internal sealed record ExportUris(string Name, IReadOnlyList<string> Uris);

[JsonSerializable(typeof(HostInfo))]
[JsonSerializable(typeof(HostIdentityView))]
[JsonSerializable(typeof(PeerView))]
[JsonSerializable(typeof(IReadOnlyList<PeerView>))]
[JsonSerializable(typeof(RemovePeerResult))]
[JsonSerializable(typeof(VolumeView))]
[JsonSerializable(typeof(IReadOnlyList<VolumeView>))]
[JsonSerializable(typeof(JobView))]
[JsonSerializable(typeof(IReadOnlyList<JobView>))]
[JsonSerializable(typeof(DeleteResult))]
[JsonSerializable(typeof(ExportUris))]
[JsonSerializable(typeof(MigrationView))]
[JsonSerializable(typeof(HandOverView))]
[JsonSerializable(typeof(RemoveReplicaView))]
internal sealed partial class CliJsonContext : JsonSerializerContext;
