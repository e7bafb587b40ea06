using System.Buffers;

using Roam.Peers.Protocol;

namespace Roam.Replication.Protocol;

/// <summary>
/// Write: data for a volume at an offset. <see cref="Data"/> is a slice of the payload it was read
/// from and lives as long as that buffer.
/// </summary>
public readonly record struct PeerWrite(Guid VolumeId, ulong Offset, ReadOnlySequence<byte> Data)
{
    public const int FixedLength = PeerProtocol.WriteFixedLength;

    public static PeerWrite Read(in ReadOnlySequence<byte> payload)
    {
        var reader = new SequenceReader<byte>(payload);
        var volume = PayloadReader.ReadGuid(ref reader, PeerFrameType.Write);
        ulong offset = PayloadReader.ReadUInt64(ref reader, PeerFrameType.Write);
        var data = reader.UnreadSequence;
        if (data.IsEmpty) PayloadReader.Malformed(PeerFrameType.Write, "no data");
        if (offset > ulong.MaxValue - (ulong)data.Length) PayloadReader.Malformed(PeerFrameType.Write, "offset + length overflows");
        return new PeerWrite(volume, offset, data);
    }
}
