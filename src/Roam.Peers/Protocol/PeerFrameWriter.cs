using System.Buffers;
using System.Buffers.Binary;
using System.Text;
using System.Text.Unicode;

namespace Roam.Peers.Protocol;

/// <summary>
/// Writes peer frames into a buffer writer (the connection's PipeWriter): the frame layout itself (header, CRC32C)
/// and the channel's own frames (Hello, HelloAck, Error, Heartbeat). The payloads of the layers above (replication's
/// Write, Attach, HandOver...) are written by their own writers on <see cref="Begin"/> and <see cref="Commit"/>.
/// Writing is synchronous and never flushes: the caller writes a batch and flushes once, asynchronously, after it.
/// </summary>
public static class PeerFrameWriter
{
    public static void WriteHello(IBufferWriter<byte> output, ulong sequence, in PeerHello hello)
    {
        int nameLength = HostNameLength(hello.HostName);
        int length = sizeof(ushort)   // min version
                   + sizeof(ushort)   // max version
                   + sizeof(byte)     // name length
                   + nameLength;      // host name, UTF-8
        var frame = Begin(output, length);
        var payload = frame[PeerProtocol.HeaderSize..];
        BinaryPrimitives.WriteUInt16BigEndian(payload, hello.MinVersion);
        BinaryPrimitives.WriteUInt16BigEndian(payload[2..], hello.MaxVersion);
        payload[4] = (byte)nameLength;
        Encoding.UTF8.GetBytes(hello.HostName, payload[5..]);
        Commit(output, frame, PeerFrameType.Hello, PeerFrameFlags.None, sequence);
    }

    public static void WriteHelloAck(IBufferWriter<byte> output, ulong sequence, in PeerHelloAck ack)
    {
        int nameLength = HostNameLength(ack.HostName);
        int length = sizeof(ushort)   // chosen version
                   + sizeof(byte)     // name length
                   + nameLength;      // host name, UTF-8
        var frame = Begin(output, length);
        var payload = frame[PeerProtocol.HeaderSize..];
        BinaryPrimitives.WriteUInt16BigEndian(payload, ack.Version);
        payload[2] = (byte)nameLength;
        Encoding.UTF8.GetBytes(ack.HostName, payload[3..]);
        Commit(output, frame, PeerFrameType.HelloAck, PeerFrameFlags.None, sequence);
    }

    /// <summary>Writes an Error; a message over <see cref="PeerProtocol.MaxErrorMessageLength"/> bytes is cut at a character boundary.</summary>
    public static void WriteError(IBufferWriter<byte> output, ulong sequence, in PeerError error)
    {
        const int fixedLength = sizeof(ulong)            // sequence it answers
                              + sizeof(uint)             // code
                              + sizeof(ushort);          // message length
        var room = output.GetSpan(PeerProtocol.HeaderSize + fixedLength + PeerProtocol.MaxErrorMessageLength);
        var text = room.Slice(PeerProtocol.HeaderSize + fixedLength, PeerProtocol.MaxErrorMessageLength);
        // DestinationTooSmall is the truncation we want: it stops before a character that does not fit.
        Utf8.FromUtf16(error.Message, text, out _, out int messageLength, replaceInvalidSequences: true);
        var frame = room[..(PeerProtocol.HeaderSize + fixedLength + messageLength)];
        var payload = frame[PeerProtocol.HeaderSize..];
        BinaryPrimitives.WriteUInt64BigEndian(payload, error.Sequence);
        BinaryPrimitives.WriteUInt32BigEndian(payload[8..], (uint)error.Code);
        BinaryPrimitives.WriteUInt16BigEndian(payload[12..], (ushort)messageLength);
        Commit(output, frame, PeerFrameType.Error, PeerFrameFlags.None, sequence);
    }

    public static void WriteHeartbeat(IBufferWriter<byte> output, ulong sequence) =>
        Commit(output, Begin(output, 0), PeerFrameType.Heartbeat, PeerFrameFlags.None, sequence);

    public static void WriteRaw(IBufferWriter<byte> output, PeerFrameType type, PeerFrameFlags flags, ulong sequence, ReadOnlySpan<byte> payload)
    {
        var frame = Begin(output, payload.Length);
        payload.CopyTo(frame[PeerProtocol.HeaderSize..]);
        Commit(output, frame, type, flags, sequence);
    }

    /// <summary>The frame's span (header and payload) in the output; fill the payload, then <see cref="Commit"/>.</summary>
    public static Span<byte> Begin(IBufferWriter<byte> output, int payloadLength) =>
        output.GetSpan(PeerProtocol.HeaderSize + payloadLength)[..(PeerProtocol.HeaderSize + payloadLength)];

    /// <summary>Fills in the header of a frame whose payload is already in place, checksums it and advances.</summary>
    public static void Commit(IBufferWriter<byte> output, Span<byte> frame, PeerFrameType type, PeerFrameFlags flags, ulong sequence)
    {
        WriteHeader(frame, type, flags, sequence, frame.Length - PeerProtocol.HeaderSize);
        uint crc = Crc32C.Append(Crc32C.Append(Crc32C.Seed, frame[..PeerProtocol.ChecksumOffset]), frame[PeerProtocol.HeaderSize..]);
        BinaryPrimitives.WriteUInt32BigEndian(frame[PeerProtocol.ChecksumOffset..], Crc32C.Finish(crc));
        output.Advance(frame.Length);
    }

    /// <summary>Writes a header (checksum left for the caller: a payload written in pieces is summed as it goes).</summary>
    public static void WriteHeader(Span<byte> frame, PeerFrameType type, PeerFrameFlags flags, ulong sequence, int payloadLength)
    {
        BinaryPrimitives.WriteUInt32BigEndian(frame[PeerProtocol.MagicOffset..], PeerProtocol.Magic);
        BinaryPrimitives.WriteUInt16BigEndian(frame[PeerProtocol.TypeOffset..], (ushort)type);
        BinaryPrimitives.WriteUInt16BigEndian(frame[PeerProtocol.FlagsOffset..], (ushort)flags);
        BinaryPrimitives.WriteUInt64BigEndian(frame[PeerProtocol.SequenceOffset..], sequence);
        BinaryPrimitives.WriteUInt32BigEndian(frame[PeerProtocol.LengthOffset..], (uint)payloadLength);
    }

    /// <summary>Refuses flags the frame type does not define.</summary>
    public static void CheckFlags(PeerFrameType type, PeerFrameFlags flags)
    {
        if ((flags & ~PeerProtocol.AllowedFlags(type)) != 0)
            throw new ArgumentException($"flags {flags} are not valid on {type}", nameof(flags));
    }

    private static int HostNameLength(string hostName)
    {
        int length = Encoding.UTF8.GetByteCount(hostName);
        if (length is 0 or > PeerProtocol.MaxHostNameLength)
            throw new ArgumentException($"a host name is 1 to {PeerProtocol.MaxHostNameLength} bytes of UTF-8, not {length}", nameof(hostName));
        return length;
    }
}
