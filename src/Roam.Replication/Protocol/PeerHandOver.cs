using System.Buffers;
using Roam.Storage.Tracking;

namespace Roam.Replication.Protocol;

/// <summary>
/// HandOver (primary to replica, in order after the last write and a flush): the replica becomes the
/// primary of the volume under <see cref="Generations"/> (a new generation descending from the data it
/// holds). It is acknowledged by sequence only once the promotion is durable on the replica: that
/// acknowledgement is the point where the primary role moves. After acknowledging it the replica ends
/// the session; with <see cref="PeerHandOverFlags.KeepOldPrimary"/> it replicates back to the old primary.
/// </summary>
public readonly record struct PeerHandOver(Guid VolumeId, DataGenerations Generations, PeerHandOverFlags Flags)
{
    /// <summary>Volume id, current generation, history count, flags.</summary>
    public const int FixedLength = PeerProtocol.VolumeIdLength + 16 + sizeof(byte) + sizeof(byte);

    public static PeerHandOver Read(in ReadOnlySequence<byte> payload)
    {
        var reader = new SequenceReader<byte>(payload);
        var volume = PayloadReader.ReadGuid(ref reader, PeerFrameType.HandOver);
        var generations = GenerationsCodec.Read(ref reader, PeerFrameType.HandOver);
        if (!reader.TryRead(out byte flags)) PayloadReader.Malformed(PeerFrameType.HandOver, "payload is cut short");
        PayloadReader.ExpectEnd(ref reader, PeerFrameType.HandOver);
        return new PeerHandOver(volume, generations, (PeerHandOverFlags)flags);
    }
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
