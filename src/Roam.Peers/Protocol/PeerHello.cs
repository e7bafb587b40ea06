using System.Buffers;

namespace Roam.Peers.Protocol;

/// <summary>Hello (client to server, first frame): the versions the client speaks and its host name.</summary>
public readonly record struct PeerHello(ushort MinVersion, ushort MaxVersion, string HostName)
{
    public const int FixedLength = sizeof(ushort) + sizeof(ushort) + sizeof(byte);

    public static PeerHello Read(in ReadOnlySequence<byte> payload)
    {
        var reader = new SequenceReader<byte>(payload);
        ushort min = PayloadReader.ReadUInt16(ref reader, PeerFrameType.Hello);
        ushort max = PayloadReader.ReadUInt16(ref reader, PeerFrameType.Hello);
        if (!reader.TryRead(out byte nameLength)) PayloadReader.Malformed(PeerFrameType.Hello, "payload is cut short");
        string name = PayloadReader.ReadFinalText(ref reader, nameLength, PeerFrameType.Hello);
        if (min > max) PayloadReader.Malformed(PeerFrameType.Hello, $"version range {min}..{max} is empty");
        if (name.Length == 0) PayloadReader.Malformed(PeerFrameType.Hello, "host name is empty");
        return new PeerHello(min, max, name);
    }
}
