using System.Buffers;

using Roam.Peers.Protocol;

namespace Roam.Replication.Protocol;

/// <summary>Ack: the frame with this sequence number was applied (and made durable, if it asked to be).</summary>
public readonly record struct PeerAck(ulong Sequence)
{
    public const int PayloadLength = PeerProtocol.AckLength;

    public static PeerAck Read(in ReadOnlySequence<byte> payload)
    {
        var reader = new SequenceReader<byte>(payload);
        ulong sequence = PayloadReader.ReadUInt64(ref reader, PeerFrameType.Ack);
        PayloadReader.ExpectEnd(ref reader, PeerFrameType.Ack);
        return new PeerAck(sequence);
    }
}
