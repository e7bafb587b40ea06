using System.Buffers;

namespace Roam.Peers.Protocol;

/// <summary>HelloAck (server to client): the version chosen for this connection and the server's host name.</summary>
public readonly record struct PeerHelloAck(ushort Version, string HostName)
{
    public const int FixedLength = sizeof(ushort) + sizeof(byte);

    public static PeerHelloAck Read(in ReadOnlySequence<byte> payload)
    {
        var reader = new SequenceReader<byte>(payload);
        ushort version = PayloadReader.ReadUInt16(ref reader, PeerFrameType.HelloAck);
        if (!reader.TryRead(out byte nameLength)) PayloadReader.Malformed(PeerFrameType.HelloAck, "payload is cut short");
        string name = PayloadReader.ReadFinalText(ref reader, nameLength, PeerFrameType.HelloAck);
        if (name.Length == 0) PayloadReader.Malformed(PeerFrameType.HelloAck, "host name is empty");
        return new PeerHelloAck(version, name);
    }
}
