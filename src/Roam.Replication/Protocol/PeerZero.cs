using System.Buffers;

using Roam.Peers.Protocol;

namespace Roam.Replication.Protocol;

/// <summary>Zero: a range of a volume that reads as zeros; a hole of any size crosses as 32 bytes.</summary>
public readonly record struct PeerZero(Guid VolumeId, ulong Offset, ulong Length)
{
    public const int PayloadLength = PeerProtocol.ZeroLength;

    public static PeerZero Read(in ReadOnlySequence<byte> payload)
    {
        var reader = new SequenceReader<byte>(payload);
        var volume = PayloadReader.ReadGuid(ref reader, PeerFrameType.Zero);
        ulong offset = PayloadReader.ReadUInt64(ref reader, PeerFrameType.Zero);
        ulong length = PayloadReader.ReadUInt64(ref reader, PeerFrameType.Zero);
        PayloadReader.ExpectEnd(ref reader, PeerFrameType.Zero);
        if (length == 0) PayloadReader.Malformed(PeerFrameType.Zero, "empty range");
        if (offset > ulong.MaxValue - length) PayloadReader.Malformed(PeerFrameType.Zero, "offset + length overflows");
        return new PeerZero(volume, offset, length);
    }
}
