using System.Text.Json;
using System.Text.Json.Serialization;
using Roam.Storage.Tracking;
using Roam.Storage.Volumes;

namespace Roam.Replication.Engine;

public enum VolumeRole { Primary, Replica }

public enum ReplicaMode { Sync, Async }

public enum ReplicaState { Connecting, Syncing, InSync, OutOfSync, SplitBrain, Disconnected, Outdated }

/// <summary>One replica of a primary volume, as GetStatus reports it.</summary>
public sealed record ReplicaStatus(string Peer, ReplicaMode Mode, ReplicaState State, long BytesOutOfSync, long BytesSent,
    long BytesResynced, long PendingBytes, TimeSpan Lag, Guid? SyncedGeneration);

public sealed record ReplicationStatus(string Volume, VolumeRole Role, DataGenerations Generations, IReadOnlyList<ReplicaStatus> Replicas,
    string? PrimaryPeer, bool PrimaryConnected);

/// <summary>DATA_DIR/replication/NAME.json.</summary>
internal sealed record ReplicationFile(int Version, VolumeRole Role, Guid Current, List<Guid> History, List<ReplicaRecord> Peers, string? PrimaryPeer)
{
    [JsonIgnore]
    public DataGenerations Generations => new(Current, History);

    public static ReplicationFile Read(string path) =>
        JsonSerializer.Deserialize(File.ReadAllBytes(path), ReplicationJsonContext.Default.ReplicationFile)
        ?? throw new InvalidDataException($"{path} is empty");

    public void Write(string path) => DurableFile.Write(path, JsonSerializer.SerializeToUtf8Bytes(this, ReplicationJsonContext.Default.ReplicationFile));

    public ReplicationFile With(DataGenerations generations) => this with { Current = generations.Current, History = [.. generations.History] };
}

/// <summary>A replica of a primary; <see cref="Paused"/>: not connected (an aborted migration), its bitmap still kept.</summary>
internal sealed record ReplicaRecord(string Peer, ReplicaMode Mode, Guid? SyncedGeneration, bool Paused = false);

[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.CamelCase, WriteIndented = true, UseStringEnumConverter = true)]
[JsonSerializable(typeof(ReplicationFile))]
internal sealed partial class ReplicationJsonContext : JsonSerializerContext;
