using System.Buffers;

namespace Roam.Nbd.Protocol;

/// <summary>One transmission-phase request header (28 bytes on the wire; WRITE's payload follows it).</summary>
public readonly record struct NbdRequest(NbdCommandFlags Flags, NbdCommand Command, ulong Cookie, ulong Offset, uint Length)
{
    /// <summary>
    /// Parses a header. False means "need more bytes". A bad magic throws: after it nothing on the
    /// connection can be trusted. The header is consumed without its payload.
    /// </summary>
    public static bool TryRead(ref ReadOnlySequence<byte> buffer, out NbdRequest request)
    {
        request = default;
        if (buffer.Length < NbdProtocol.RequestHeaderSize) return false;
        var reader = new SequenceReader<byte>(buffer);
        reader.TryReadBigEndian(out int magic);
        if ((uint)magic != NbdProtocol.RequestMagic)
            throw new NbdProtocolException(NbdRejection.BadRequestMagic, $"bad request magic 0x{(uint)magic:x8}");
        reader.TryReadBigEndian(out short flags);
        reader.TryReadBigEndian(out short type);
        reader.TryReadBigEndian(out long cookie);
        reader.TryReadBigEndian(out long offset);
        reader.TryReadBigEndian(out int length);
        request = new NbdRequest((NbdCommandFlags)(ushort)flags, (NbdCommand)(ushort)type, (ulong)cookie, (ulong)offset, (uint)length);
        buffer = buffer.Slice(reader.Position);
        return true;
    }

    public void WriteTo(Span<byte> destination)
    {
        System.Buffers.Binary.BinaryPrimitives.WriteUInt32BigEndian(destination, NbdProtocol.RequestMagic);
        System.Buffers.Binary.BinaryPrimitives.WriteUInt16BigEndian(destination[4..], (ushort)Flags);
        System.Buffers.Binary.BinaryPrimitives.WriteUInt16BigEndian(destination[6..], (ushort)Command);
        System.Buffers.Binary.BinaryPrimitives.WriteUInt64BigEndian(destination[8..], Cookie);
        System.Buffers.Binary.BinaryPrimitives.WriteUInt64BigEndian(destination[16..], Offset);
        System.Buffers.Binary.BinaryPrimitives.WriteUInt32BigEndian(destination[24..], Length);
    }
}
