using System.Buffers;

namespace Roam.Peers.Protocol;

/// <summary>A frame whose payload is its own copy (see <see cref="PeerFrameReader.ReadFrameAsync"/>).</summary>
public sealed record PeerFrame(PeerFrameHeader Header, ReadOnlySequence<byte> Payload)
{
    public PeerFrameType Type => Header.Type;
}
