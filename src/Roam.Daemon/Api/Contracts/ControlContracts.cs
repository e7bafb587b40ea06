using System.Text.Json;
using System.Text.Json.Serialization;

// The control API's wire records. This file is compiled into both roamd and roam (linked), so the
// two sides cannot drift apart; the CLI still depends on nothing but HTTP.
namespace Roam.Control;

/// <summary>GET /v1/host. HostName and Fingerprint are this host's replication identity; PeerListen is the bound peer address, or null when off.</summary>
internal sealed record HostInfo(string Version, int Pid, string DataDir, string ControlSocket, string NbdSocket, string? NbdTcp, int Volumes, int RunningJobs,
    string HostName, string Fingerprint, string? PeerListen)
{
    /// <summary>What a VM created without --network gets here: default or none (roamd's --vm-network).</summary>
    public string? VmNetwork { get; init; }

    /// <summary>The default VM network's subnet (differs between hosts), its bridge, and whether that is up (a VM uses it).</summary>
    public string? VmSubnet { get; init; }
    public string? VmBridge { get; init; }
    public bool VmBridgeUp { get; init; }
}

/// <summary>A volume with its live state and the URIs NBD clients connect to.</summary>
internal sealed record VolumeView(string Name, long Size, long AllocatedBytes, int OpenConnections, Guid Id, DateTimeOffset Created, IReadOnlyList<string> NbdUris,
    ReplicationView? Replication = null,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] MigrationView? Migration = null);

/// <summary>
/// A live migration of a volume to Peer, seen from its source (GET /v1/volumes/{name}/migration). Phase is one of
/// <see cref="MigrationPhases"/>. Bytes count from the prepare: BytesDone copied by resync, BytesLeft still to send,
/// BytesOnWire everything sent to the peer. EtaSeconds is null while unknown.
/// </summary>
internal sealed record MigrationView(string Volume, string Peer, string Phase, long BytesTotal, long BytesDone, long BytesLeft, long BytesOnWire,
    double BytesPerSecond, double? EtaSeconds, string? Error);

internal static class MigrationPhases
{
    public const string Preparing = "Preparing";
    public const string Copying = "Copying";
    public const string InSync = "InSync";
    public const string HandingOver = "HandingOver";
    public const string Completed = "Completed";
    public const string Aborted = "Aborted";
    public const string Failed = "Failed";
}

/// <summary>POST /v1/volumes/{name}/migration: prepare a migration to the trusted peer Peer; Bandwidth ("20M", bytes per second on the wire; "0" lifts it) limits the link from now on.</summary>
internal sealed record PrepareMigrationRequest(string? Peer, [property: JsonConverter(typeof(SizeTextConverter))] string? Bandwidth = null);

/// <summary>POST /v1/volumes/{name}/migration/handover: KeepReplica (default true) keeps this host's copy as a replica of the new primary.</summary>
internal sealed record HandOverRequest(bool? KeepReplica);

/// <summary>
/// The outcome of a hand-over: NewPrimary holds the primary role now under Generation; WritePauseMs is how long
/// writes were stopped; this host kept a replica (KeptReplica) or dropped the volume (VolumeDeleted).
/// </summary>
internal sealed record HandOverView(string Volume, string NewPrimary, double WritePauseMs, Guid Generation, bool KeptReplica, bool VolumeDeleted);

/// <summary>POST /v1/volumes/{name}/migrate: the whole migration as a job (prepare, copy, hand over).</summary>
internal sealed record MigrateRequest(string? Peer, bool? KeepReplica, [property: JsonConverter(typeof(SizeTextConverter))] string? Bandwidth = null);

/// <summary>
/// A volume's replication: Role is "primary" or "replica"; Generation is the data generation (null
/// for a volume never replicated); on a replica, PrimaryPeer is who replicates to it. WritesRefused: this host
/// refuses writes to it (a replica, or HandOverPeer set: a hand-over to that host is in doubt). Notice: what the
/// operator should know, in words, or null.
/// </summary>
internal sealed record ReplicationView(string Role, Guid? Generation, string? PrimaryPeer, bool PrimaryConnected, IReadOnlyList<ReplicaView> Replicas,
    bool WritesRefused = false,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] string? HandOverPeer = null,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] string? Notice = null);

/// <summary>One replica of a primary. Mode is "sync" or "async"; State is one of <see cref="ReplicaStates"/>; Detail says what the state means, or null.</summary>
/// BytesSent is what went on the wire, after compression saved BytesSavedByCompression; Bandwidth is the link's limit in bytes per second (0: none).
internal sealed record ReplicaView(string Peer, string Mode, string State, long BytesOutOfSync, long BytesSent, long BytesResynced, long PendingBytes,
    double LagSeconds, Guid? SyncedGeneration,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] string? Detail = null,
    long BytesSavedByCompression = 0, long Bandwidth = 0);

/// <summary>
/// DELETE /v1/volumes/{name}/replicas/{peer}: the replica link is gone. PeerDetached: the peer dropped its replica role
/// (its copy is a writable volume of its own there); else PeerError says why it could not be told.
/// </summary>
internal sealed record RemoveReplicaView(string Peer, bool PeerDetached, string? PeerError, VolumeView Volume);

internal static class ReplicaStates
{
    public const string Connecting = "Connecting";
    public const string Syncing = "Syncing";
    public const string InSync = "InSync";
    public const string OutOfSync = "OutOfSync";
    public const string SplitBrain = "SplitBrain";
    public const string Disconnected = "Disconnected";
    public const string Outdated = "Outdated";
    public const string Paused = "Paused";
    public const string Parted = "Parted";
}

internal static class VolumeRoles
{
    public const string Primary = "primary";
    public const string Replica = "replica";
}

/// <summary>A trusted peer (GET /v1/peers). Connected: a replication link with it is up; null when no volume is replicated with it.</summary>
internal sealed record PeerView(string Name, string Address, string Fingerprint, bool? Connected);

/// <summary>POST /v1/peers: trust a host. Address is host:port; Fingerprint as `roam host id` prints it.</summary>
internal sealed record AddPeerRequest(string? Name, string? Address, string? Fingerprint);

/// <summary>POST /v1/volumes/{name}/replicas: Peer is a trusted peer's name; Mode "sync" (default) or "async"; Bandwidth limits the link (bytes per second on the wire, "20M").</summary>
internal sealed record AddReplicaRequest(string? Peer, string? Mode, [property: JsonConverter(typeof(SizeTextConverter))] string? Bandwidth = null);

/// <summary>POST /v1/volumes/{name}/promote: Force promotes even while the primary is attached.</summary>
internal sealed record PromoteRequest(bool Force);

/// <summary>
/// POST /v1/volumes/{name}/resolve: ends a split brain; Keep is the host whose data wins (this host's name or a trusted
/// peer's). Run it on both hosts: the host that keeps re-sends its data, the other one becomes its replica.
/// </summary>
internal sealed record ResolveRequest(string? Keep);

/// <summary>POST /v1/volumes. Sizes are text ("10G", "1048576") or a JSON number of bytes.</summary>
internal sealed record CreateVolumeRequest(string? Name, [property: JsonConverter(typeof(SizeTextConverter))] string? Size);

/// <summary>POST /v1/volumes/{name}/resize.</summary>
internal sealed record ResizeVolumeRequest([property: JsonConverter(typeof(SizeTextConverter))] string? Size);

/// <summary>POST /v1/volumes/{name}/import: Path is absolute; Format is "raw", "qcow2" or null to detect it.</summary>
internal sealed record ImportRequest(string? Path, string? Format);

/// <summary>POST /v1/volumes/{name}/export: Format null means qcow2 for a .qcow2 path, raw otherwise.</summary>
internal sealed record ExportRequest(string? Path, string? Format, bool Force);

/// <summary>A background import, export or migration. State is one of <see cref="JobStates"/>.</summary>
internal sealed record JobView(
    string Id,
    string Kind,
    string Volume,
    string Path,
    string Format,
    string State,
    long BytesDone,
    long BytesTotal,
    double BytesPerSecond,
    double ElapsedSeconds,
    long? AllocatedBytes,
    string? Error,
    // A migrate job's extras (absent from imports and exports): the peer, the migration's phase and numbers,
    // and once handed over, the write pause and the new primary.
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] string? Peer = null,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] string? Phase = null,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] long? BytesLeft = null,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] long? BytesOnWire = null,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] double? EtaSeconds = null,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] double? WritePauseMs = null,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] string? NewPrimary = null,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] bool? KeptReplica = null);

internal static class JobStates
{
    public const string Running = "running";
    public const string Succeeded = "succeeded";
    public const string Failed = "failed";
    public const string Cancelled = "cancelled";

    public static bool IsFinished(string state) => state != Running;
}

/// <summary>Every error response: one line a person can act on.</summary>
internal sealed record ErrorResponse(string Error);

/// <summary>Reads a size given either as text or as a JSON number; writes it as text.</summary>
internal sealed class SizeTextConverter : JsonConverter<string>
{
    public override string? Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options) => reader.TokenType switch
    {
        JsonTokenType.Number => reader.TryGetInt64(out var n) ? n.ToString(System.Globalization.CultureInfo.InvariantCulture) : throw new JsonException("size must be a whole number of bytes"),
        JsonTokenType.String => reader.GetString(),
        JsonTokenType.Null => null,
        _ => throw new JsonException("size must be a string such as \"10G\" or a number of bytes"),
    };

    public override void Write(Utf8JsonWriter writer, string value, JsonSerializerOptions options) => writer.WriteStringValue(value);
}
