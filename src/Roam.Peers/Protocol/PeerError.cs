using System.Buffers;

namespace Roam.Peers.Protocol;

/// <summary>Error: the frame with this sequence failed (sequence 0: the connection itself is refused).</summary>
public readonly record struct PeerError(ulong Sequence, PeerErrorCode Code, string Message)
{
    public const int FixedLength = sizeof(ulong) + sizeof(uint) + sizeof(ushort);

    public static PeerError Read(in ReadOnlySequence<byte> payload)
    {
        var reader = new SequenceReader<byte>(payload);
        ulong sequence = PayloadReader.ReadUInt64(ref reader, PeerFrameType.Error);
        uint code = PayloadReader.ReadUInt32(ref reader, PeerFrameType.Error);
        ushort length = PayloadReader.ReadUInt16(ref reader, PeerFrameType.Error);
        string message = PayloadReader.ReadFinalText(ref reader, length, PeerFrameType.Error);
        // Unknown codes are kept as they are: a newer peer may know more failures than this build.
        return new PeerError(sequence, (PeerErrorCode)code, message);
    }
}
