using System.Buffers;
using System.Buffers.Binary;
using Roam.Peers.Protocol;
using Roam.Replication.Protocol;

namespace Roam.Replication.Tests.Support;

public static class Frames
{
    public static byte[] Of(Action<IBufferWriter<byte>> write)
    {
        var buffer = new ArrayBufferWriter<byte>();
        write(buffer);
        return buffer.WrittenSpan.ToArray();
    }

    /// <summary>Recomputes the checksum after a test has changed header fields on purpose.</summary>
    public static void Reseal(byte[] frame)
    {
        uint crc = Crc32C.Append(Crc32C.Seed, frame.AsSpan(0, PeerProtocol.ChecksumOffset));
        crc = Crc32C.Append(crc, frame.AsSpan(PeerProtocol.HeaderSize));
        BinaryPrimitives.WriteUInt32BigEndian(frame.AsSpan(PeerProtocol.ChecksumOffset), Crc32C.Finish(crc));
    }

    /// <summary>Reads exactly one frame from the bytes and checks that nothing is left.</summary>
    public static (PeerFrameHeader Header, byte[] Payload) ReadOne(ReadOnlySequence<byte> sequence, int maxPayload = PeerProtocol.DefaultMaxPayload)
    {
        Assert.True(PeerFrameReader.TryRead(ref sequence, maxPayload, out var header, out var payload));
        Assert.True(sequence.IsEmpty);
        return (header, payload.ToArray());
    }
}
