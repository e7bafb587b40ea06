using System.Buffers;
using System.Buffers.Binary;
using System.Text;
using Roam.Storage.Tracking;

using Roam.Peers.Protocol;

namespace Roam.Replication.Protocol;

/// <summary>
/// HandOver (primary to replica, in order after the last write and a flush): the replica becomes the
/// primary of the volume under <see cref="Generations"/> (a new generation descending from the data it
/// holds). It is acknowledged by sequence only once the promotion is durable on the replica: that
/// acknowledgement is the point where the primary role moves. After acknowledging it the replica ends
/// the session; with <see cref="PeerHandOverFlags.KeepOldPrimary"/> it replicates back to the old primary.
/// From version 3, <see cref="Replicas"/> names the old primary's other replicas, which the new primary
/// feeds from then on (null: the section is absent, as a version 2 peer sends and expects it).
/// </summary>
public readonly record struct PeerHandOver(Guid VolumeId, DataGenerations Generations, PeerHandOverFlags Flags,
    IReadOnlyList<PeerHandOverReplica>? Replicas = null)
{
    /// <summary>Volume id, current generation, history count, flags.</summary>
    public const int FixedLength = PeerProtocol.HandOverFixedLength;

    /// <summary>The largest replica section: its count and <see cref="PeerProtocol.MaxHandOverReplicas"/> replicas at their largest.</summary>
    public const int MaxReplicasLength = PeerProtocol.HandOverMaxReplicasLength;

    public int PayloadLength =>
        PeerProtocol.VolumeIdLength + GenerationsCodec.Length(Generations) + sizeof(byte) + ReplicasLength(Replicas);

    internal static int ReplicasLength(IReadOnlyList<PeerHandOverReplica>? replicas) =>
        replicas is null ? 0 : sizeof(byte) + replicas.Sum(r => r.Length);

    public static PeerHandOver Read(in ReadOnlySequence<byte> payload)
    {
        var reader = new SequenceReader<byte>(payload);
        var volume = PayloadReader.ReadGuid(ref reader, PeerFrameType.HandOver);
        var generations = GenerationsCodec.Read(ref reader, PeerFrameType.HandOver);
        if (!reader.TryRead(out byte flags)) PayloadReader.Malformed(PeerFrameType.HandOver, "payload is cut short");
        var replicas = reader.End ? null : ReadReplicas(ref reader);
        PayloadReader.ExpectEnd(ref reader, PeerFrameType.HandOver);
        return new PeerHandOver(volume, generations, (PeerHandOverFlags)flags, replicas);
    }

    private static List<PeerHandOverReplica> ReadReplicas(ref SequenceReader<byte> reader)
    {
        const PeerFrameType type = PeerFrameType.HandOver;
        reader.TryRead(out byte count);
        if (count > PeerProtocol.MaxHandOverReplicas) PayloadReader.Malformed(type, $"{count} replicas, at most {PeerProtocol.MaxHandOverReplicas}");
        var replicas = new List<PeerHandOverReplica>(count);
        for (int i = 0; i < count; i++)
        {
            if (!reader.TryRead(out byte nameLength)) PayloadReader.Malformed(type, "payload is cut short");
            if (nameLength == 0) PayloadReader.Malformed(type, "a replica's peer name is empty");
            if (reader.Remaining < nameLength) PayloadReader.Malformed(type, "payload is cut short");
            string peer = PayloadReader.ReadText(ref reader, nameLength, type);
            if (replicas.Any(r => r.Peer == peer)) PayloadReader.Malformed(type, $"replica {peer} is named twice");
            if (!reader.TryRead(out byte replicaFlags)) PayloadReader.Malformed(type, "payload is cut short");
            if ((replicaFlags & ~(byte)(PeerHandOverReplicaFlags.Async | PeerHandOverReplicaFlags.Paused)) != 0)
                PayloadReader.Malformed(type, $"replica flags 0x{replicaFlags:x2}");
            ulong bandwidth = PayloadReader.ReadUInt64(ref reader, type);
            if (bandwidth > long.MaxValue) PayloadReader.Malformed(type, "bandwidth out of range");
            var synced = PayloadReader.ReadGuid(ref reader, type);
            uint extentCount = PayloadReader.ReadUInt32(ref reader, type);
            if (extentCount > PeerProtocol.MaxHandOverExtents)
                PayloadReader.Malformed(type, $"{extentCount} out-of-sync extents, at most {PeerProtocol.MaxHandOverExtents}");
            if (reader.Remaining < extentCount * 16L) PayloadReader.Malformed(type, "payload is cut short");
            var extents = new PeerExtent[extentCount];
            ulong end = 0;
            for (int e = 0; e < extents.Length; e++)
            {
                ulong offset = PayloadReader.ReadUInt64(ref reader, type), length = PayloadReader.ReadUInt64(ref reader, type);
                // Ascending, apart and non-empty: one way to write a set of ranges, so a frame means one thing.
                if (length == 0 || offset < end || (e > 0 && offset == end) || offset > long.MaxValue || length > long.MaxValue - offset)
                    PayloadReader.Malformed(type, $"out-of-sync extent {e} ({offset}, {length}) is empty, out of order or overflows");
                extents[e] = new PeerExtent(offset, length);
                end = offset + length;
            }
            replicas.Add(new PeerHandOverReplica(peer, (PeerHandOverReplicaFlags)replicaFlags, (long)bandwidth,
                synced == Guid.Empty ? null : synced, extents));
        }
        return replicas;
    }

    /// <summary>Writes the replica section (count, replicas); <paramref name="destination"/> is exactly <see cref="ReplicasLength"/> long.</summary>
    internal static void WriteReplicas(Span<byte> destination, IReadOnlyList<PeerHandOverReplica> replicas)
    {
        if (replicas.Count > PeerProtocol.MaxHandOverReplicas)
            throw new ArgumentException($"a HandOver names at most {PeerProtocol.MaxHandOverReplicas} replicas", nameof(replicas));
        destination[0] = (byte)replicas.Count;
        int at = 1;
        foreach (var r in replicas)
        {
            int nameLength = r.NameLength;
            destination[at++] = (byte)nameLength;
            at += Encoding.UTF8.GetBytes(r.Peer, destination[at..]);
            destination[at++] = (byte)r.Flags;
            BinaryPrimitives.WriteUInt64BigEndian(destination[at..], (ulong)r.Bandwidth);
            (r.SyncedGeneration ?? Guid.Empty).TryWriteBytes(destination[(at + 8)..], bigEndian: true, out _);
            BinaryPrimitives.WriteUInt32BigEndian(destination[(at + 24)..], (uint)r.OutOfSync.Count);
            at += 28;
            foreach (var e in r.OutOfSync)
            {
                BinaryPrimitives.WriteUInt64BigEndian(destination[at..], e.Offset);
                BinaryPrimitives.WriteUInt64BigEndian(destination[(at + 8)..], e.Length);
                at += 16;
            }
        }
    }
}

/// <summary>
/// One of the old primary's other replicas, handed to the new primary: how it was replicated, the
/// generation it was last known to hold, and the byte ranges it may lack (the old primary's bitmap for it,
/// taken with writes stopped; ranges may be coarser than the bitmap, never finer).
/// </summary>
public readonly record struct PeerHandOverReplica(string Peer, PeerHandOverReplicaFlags Flags, long Bandwidth, Guid? SyncedGeneration,
    IReadOnlyList<PeerExtent> OutOfSync)
{
    /// <summary>Name length, flags, bandwidth, synced generation, extent count.</summary>
    public const int FixedLength = PeerProtocol.HandOverReplicaFixedLength;

    public const int MaxLength = PeerProtocol.HandOverReplicaMaxLength;

    internal int NameLength
    {
        get
        {
            int length = Encoding.UTF8.GetByteCount(Peer);
            if (length is 0 or > PeerProtocol.MaxHostNameLength)
                throw new ArgumentException($"a peer name is 1 to {PeerProtocol.MaxHostNameLength} bytes of UTF-8, not {length}");
            if (OutOfSync.Count > PeerProtocol.MaxHandOverExtents)
                throw new ArgumentException($"a handed-over replica carries at most {PeerProtocol.MaxHandOverExtents} extents");
            return length;
        }
    }

    internal int Length => FixedLength + NameLength + OutOfSync.Count * 16;
}

/// <summary>A byte range of a volume.</summary>
public readonly record struct PeerExtent(ulong Offset, ulong Length);

[Flags]
public enum PeerHandOverReplicaFlags : byte
{
    None = 0,
    /// <summary>Replicated asynchronously (else synchronously).</summary>
    Async = 1 << 0,
    /// <summary>Paused on the old primary (an aborted migration): the new primary keeps it paused.</summary>
    Paused = 1 << 1,
}

[Flags]
public enum PeerHandOverFlags : byte
{
    None = 0,
    /// <summary>The new primary keeps the old one as a replica (a link back, in sync from the start).</summary>
    KeepOldPrimary = 1 << 0,
    /// <summary>That link back is asynchronous (else synchronous).</summary>
    AsyncLink = 1 << 1,
}
