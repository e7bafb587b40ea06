using System.Text.Json;
using System.Text.Json.Serialization;
using Roam.Storage.Tracking;
using Roam.Storage.Volumes;

namespace Roam.Replication.Engine;

public enum VolumeRole { Primary, Replica }

public enum ReplicaMode { Sync, Async }

/// <summary>
/// A replica link's state. <see cref="Paused"/>: not connecting (after an aborted migration), its
/// bitmap still tracking what the replica lacks, so a retry resumes. <see cref="Parted"/>: the link of
/// a promoted replica to its old primary, never connecting, its bitmap tracking what was written here
/// since the promotion (for a bitmap-based resolve of a split brain).
/// </summary>
public enum ReplicaState { Connecting, Syncing, InSync, OutOfSync, SplitBrain, Disconnected, Outdated, Paused, Parted }

/// <summary>One replica of a primary volume, as GetStatus reports it.</summary>
public sealed record ReplicaStatus(string Peer, ReplicaMode Mode, ReplicaState State, long BytesOutOfSync, long BytesSent,
    long BytesResynced, long PendingBytes, TimeSpan Lag, Guid? SyncedGeneration)
{
    /// <summary>What the state means here, in words (e.g. why a link is paused), or null.</summary>
    public string? Detail { get; init; }

    /// <summary>The link's limit in bytes per second on the wire; 0 for none.</summary>
    public long Bandwidth { get; init; }

    /// <summary>Bytes compression kept off the wire (BytesSent counts what went on it).</summary>
    public long BytesSavedByCompression { get; init; }

    /// <summary>Of <see cref="BytesOutOfSync"/>, what no frame in flight carries (regions only marked): what a resync
    /// still has to send. <see cref="PendingBytes"/> plus this is the whole backlog (in-flight regions are marked too).</summary>
    public long BytesToResync { get; init; }
}

public sealed record ReplicationStatus(string Volume, VolumeRole Role, DataGenerations Generations, IReadOnlyList<ReplicaStatus> Replicas,
    string? PrimaryPeer, bool PrimaryConnected)
{
    /// <summary>
    /// A hand-over of this volume to <see cref="HandOverPeer"/> whose outcome is not known yet (this host
    /// crashed or lost the destination in the middle of it): the volume is read-only here until it is.
    /// </summary>
    public string? HandOverPeer { get; init; }

    /// <summary>Whether writes are refused here (a replica, or a hand-over in doubt).</summary>
    public bool WritesRefused { get; init; }

    /// <summary>Something the operator should know about the volume's replication, in words, or null.</summary>
    public string? Notice { get; init; }
}

/// <summary>DATA_DIR/replication/NAME.json.</summary>
internal sealed record ReplicationFile(int Version, VolumeRole Role, Guid Current, List<Guid> History, List<ReplicaRecord> Peers, string? PrimaryPeer,
    PendingHandOver? HandOver = null)
{
    [JsonIgnore]
    public DataGenerations Generations => new(Current, History);

    public static ReplicationFile Read(string path) =>
        JsonSerializer.Deserialize(File.ReadAllBytes(path), ReplicationJsonContext.Default.ReplicationFile)
        ?? throw new InvalidDataException($"{path} is empty");

    public void Write(string path) => DurableFile.Write(path, JsonSerializer.SerializeToUtf8Bytes(this, ReplicationJsonContext.Default.ReplicationFile));

    public ReplicationFile With(DataGenerations generations) => this with { Current = generations.Current, History = [.. generations.History] };
}

/// <summary>
/// A replica of a primary; <see cref="Paused"/>: not connected (an aborted migration), its bitmap still kept;
/// <see cref="Parted"/> and <see cref="MergeDiverged"/>: see <see cref="Source.PeerLink"/>.
/// </summary>
internal sealed record ReplicaRecord(string Peer, ReplicaMode Mode, Guid? SyncedGeneration, bool Paused = false, long Bandwidth = 0,
    bool Parted = false, bool MergeDiverged = false);

/// <summary>
/// A hand-over in progress, written before HandOver is sent: until the destination is known to have been
/// promoted (this host steps down) or not (the intent is cleared), this host must not accept writes.
/// </summary>
internal sealed record PendingHandOver(string Peer, Guid Current, List<Guid> History, bool KeepReplica)
{
    [JsonIgnore]
    public DataGenerations Generations => new(Current, History);
}

[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.CamelCase, WriteIndented = true, UseStringEnumConverter = true)]
[JsonSerializable(typeof(ReplicationFile))]
internal sealed partial class ReplicationJsonContext : JsonSerializerContext;

/// <summary>A replica removed: the volume's status now, and whether the peer dropped its replica role (else why not).</summary>
public sealed record ReplicaRemoval(ReplicationStatus Status, bool PeerDetached, string? PeerError);
