using System.Buffers;

using Roam.Peers.Protocol;

namespace Roam.Replication.Protocol;

/// <summary>Flush: make every acknowledged write to the volume durable before acknowledging this frame.</summary>
public readonly record struct PeerFlush(Guid VolumeId)
{
    public const int PayloadLength = PeerProtocol.FlushLength;

    public static PeerFlush Read(in ReadOnlySequence<byte> payload)
    {
        var reader = new SequenceReader<byte>(payload);
        var volume = PayloadReader.ReadGuid(ref reader, PeerFrameType.Flush);
        PayloadReader.ExpectEnd(ref reader, PeerFrameType.Flush);
        return new PeerFlush(volume);
    }
}
