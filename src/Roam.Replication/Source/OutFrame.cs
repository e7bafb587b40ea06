using Roam.Peers.Protocol;
using Roam.Replication.Protocol;
using Roam.Storage.Tracking;

namespace Roam.Replication.Source;

/// <summary>A frame queued on a replica link; its sequence is fixed when it is queued.</summary>
internal sealed class OutFrame
{
    public PeerFrameType Type;
    public PeerFrameFlags Flags;
    public ulong Sequence;
    public long Offset;
    public long Length;
    public ReadOnlyMemory<byte> Data;
    public DataGenerations? Generations;
    public PeerHandOverFlags HandOverFlags;
    /// <summary>HandOver: the other replicas the new primary takes over (sent only to a version 3 peer).</summary>
    public IReadOnlyList<PeerHandOverReplica>? HandOverReplicas;
    public long FirstRegion = -1;
    public long LastRegion = -1;
    public bool Resync;
    public long EnqueuedAt;
    public readonly TaskCompletionSource<bool> Acked = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public int Bytes => Type == PeerFrameType.Write ? Data.Length : 0;

    public static OutFrame Write(long offset, ReadOnlyMemory<byte> data, bool fua, int regionSize) => new()
    {
        Type = PeerFrameType.Write, Flags = fua ? PeerFrameFlags.Fua : PeerFrameFlags.None, Offset = offset, Length = data.Length, Data = data,
        FirstRegion = offset / regionSize, LastRegion = (offset + data.Length - 1) / regionSize,
    };

    public static OutFrame Zero(long offset, long length, bool fua, int regionSize) => new()
    {
        Type = PeerFrameType.Zero, Flags = fua ? PeerFrameFlags.Fua : PeerFrameFlags.None, Offset = offset, Length = length,
        FirstRegion = offset / regionSize, LastRegion = (offset + length - 1) / regionSize,
    };

    /// <summary>Not tracked: its acknowledgement (by sequence 0) only proves the peer is alive.</summary>
    public static OutFrame Heartbeat() => new() { Type = PeerFrameType.Heartbeat };

    public static OutFrame Flush() => new() { Type = PeerFrameType.Flush };

    public static OutFrame Gens(DataGenerations generations) => new() { Type = PeerFrameType.Generations, Generations = generations };

    public static OutFrame HandOver(DataGenerations generations, PeerHandOverFlags flags, IReadOnlyList<PeerHandOverReplica>? replicas = null) =>
        new() { Type = PeerFrameType.HandOver, Generations = generations, HandOverFlags = flags, HandOverReplicas = replicas };
}
