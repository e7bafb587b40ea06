using System.Text.Json;
using System.Text.Json.Serialization;

namespace Roam.Control;

[JsonSourceGenerationOptions(JsonSerializerDefaults.Web)]
[JsonSerializable(typeof(HostInfo))]
[JsonSerializable(typeof(VolumeView))]
[JsonSerializable(typeof(IReadOnlyList<VolumeView>))]
[JsonSerializable(typeof(CreateVolumeRequest))]
[JsonSerializable(typeof(ResizeVolumeRequest))]
[JsonSerializable(typeof(ImportRequest))]
[JsonSerializable(typeof(ExportRequest))]
[JsonSerializable(typeof(JobView))]
[JsonSerializable(typeof(IReadOnlyList<JobView>))]
[JsonSerializable(typeof(ErrorResponse))]
[JsonSerializable(typeof(PeerView))]
[JsonSerializable(typeof(IReadOnlyList<PeerView>))]
[JsonSerializable(typeof(AddPeerRequest))]
[JsonSerializable(typeof(AddReplicaRequest))]
[JsonSerializable(typeof(PromoteRequest))]
[JsonSerializable(typeof(ResolveRequest))]
[JsonSerializable(typeof(MigrationView))]
[JsonSerializable(typeof(PrepareMigrationRequest))]
[JsonSerializable(typeof(HandOverRequest))]
[JsonSerializable(typeof(HandOverView))]
[JsonSerializable(typeof(MigrateRequest))]
internal sealed partial class ControlJsonContext : JsonSerializerContext;
