using System.Buffers;
using System.Buffers.Binary;
using System.Text;
using System.Text.Unicode;

namespace Roam.Replication.Protocol;

/// <summary>
/// Writes frames into a buffer writer (the connection's PipeWriter). Writing is synchronous and
/// never flushes: the caller writes a batch and flushes once, asynchronously, after it.
/// Each frame's header and fixed fields go into one span; Write data is appended after it, so a
/// 4 MiB write never needs a 4 MiB contiguous buffer.
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

    public static void WriteWrite(IBufferWriter<byte> output, ulong sequence, PeerFrameFlags flags, Guid volumeId, ulong offset, ReadOnlySpan<byte> data)
    {
        var frame = BeginWrite(output, sequence, flags, volumeId, offset, data.Length);
        uint crc = Crc32C.Append(Crc32C.Append(Crc32C.Seed, frame[..PeerProtocol.ChecksumOffset]), frame[PeerProtocol.HeaderSize..]);
        BinaryPrimitives.WriteUInt32BigEndian(frame[PeerProtocol.ChecksumOffset..], Crc32C.Finish(Crc32C.Append(crc, data)));
        output.Advance(frame.Length);
        output.Write(data);
    }

    /// <summary>Write whose data is still in segments (as an NBD WRITE arrives from its pipe).</summary>
    public static void WriteWrite(IBufferWriter<byte> output, ulong sequence, PeerFrameFlags flags, Guid volumeId, ulong offset, in ReadOnlySequence<byte> data)
    {
        if (data.Length > PeerProtocol.MaxWriteDataLength)
            throw new ArgumentOutOfRangeException(nameof(data), $"a Write carries at most {PeerProtocol.MaxWriteDataLength} bytes");
        var frame = BeginWrite(output, sequence, flags, volumeId, offset, (int)data.Length);
        uint crc = Crc32C.Append(Crc32C.Append(Crc32C.Seed, frame[..PeerProtocol.ChecksumOffset]), frame[PeerProtocol.HeaderSize..]);
        BinaryPrimitives.WriteUInt32BigEndian(frame[PeerProtocol.ChecksumOffset..], Crc32C.Finish(Crc32C.Append(crc, data)));
        output.Advance(frame.Length);
        foreach (var segment in data) output.Write(segment.Span);
    }

    public static void WriteZero(IBufferWriter<byte> output, ulong sequence, PeerFrameFlags flags, in PeerZero zero)
    {
        if (zero.Length == 0) throw new ArgumentOutOfRangeException(nameof(zero), "a Zero range cannot be empty");
        CheckFlags(PeerFrameType.Zero, flags);
        const int length = PeerProtocol.VolumeIdLength   // volume id
                         + sizeof(ulong)                 // offset
                         + sizeof(ulong);                // length
        var frame = Begin(output, length);
        var payload = frame[PeerProtocol.HeaderSize..];
        zero.VolumeId.TryWriteBytes(payload, bigEndian: true, out _);
        BinaryPrimitives.WriteUInt64BigEndian(payload[16..], zero.Offset);
        BinaryPrimitives.WriteUInt64BigEndian(payload[24..], zero.Length);
        Commit(output, frame, PeerFrameType.Zero, flags, sequence);
    }

    public static void WriteFlush(IBufferWriter<byte> output, ulong sequence, in PeerFlush flush)
    {
        const int length = PeerProtocol.VolumeIdLength;  // volume id
        var frame = Begin(output, length);
        flush.VolumeId.TryWriteBytes(frame[PeerProtocol.HeaderSize..], bigEndian: true, out _);
        Commit(output, frame, PeerFrameType.Flush, PeerFrameFlags.None, sequence);
    }

    public static void WriteAck(IBufferWriter<byte> output, ulong sequence, in PeerAck ack)
    {
        const int length = sizeof(ulong);                // acknowledged sequence
        var frame = Begin(output, length);
        BinaryPrimitives.WriteUInt64BigEndian(frame[PeerProtocol.HeaderSize..], ack.Sequence);
        Commit(output, frame, PeerFrameType.Ack, PeerFrameFlags.None, sequence);
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

    /// <summary>Writes any header and payload, valid or not. For tests that play a broken or hostile peer.</summary>
    public static void WriteAttach(IBufferWriter<byte> output, ulong sequence, in PeerAttach attach)
    {
        int nameLength = System.Text.Encoding.UTF8.GetByteCount(attach.Name);
        if (nameLength is 0 or > PeerProtocol.MaxVolumeNameLength)
            throw new ArgumentException($"a volume name is 1 to {PeerProtocol.MaxVolumeNameLength} bytes of UTF-8", nameof(attach));
        int length = PeerProtocol.VolumeIdLength                        // volume id
                   + sizeof(ulong)                                      // size
                   + GenerationsCodec.Length(attach.Generations)        // generations
                   + sizeof(byte)                                       // name length
                   + nameLength;                                        // volume name, UTF-8
        var frame = Begin(output, length);
        var payload = frame[PeerProtocol.HeaderSize..];
        attach.VolumeId.TryWriteBytes(payload, bigEndian: true, out _);
        BinaryPrimitives.WriteUInt64BigEndian(payload[16..], attach.Size);
        int at = 24 + GenerationsCodec.Write(payload[24..], attach.Generations);
        payload[at] = (byte)nameLength;
        Encoding.UTF8.GetBytes(attach.Name, payload[(at + 1)..]);
        Commit(output, frame, PeerFrameType.Attach, PeerFrameFlags.None, sequence);
    }

    public static void WriteAttachAck(IBufferWriter<byte> output, ulong sequence, in PeerAttachAck ack)
    {
        var diverged = ack.Diverged;
        if (diverged is { Count: > PeerProtocol.MaxDivergedRanges })
            throw new ArgumentOutOfRangeException(nameof(ack), $"an AttachAck carries at most {PeerProtocol.MaxDivergedRanges} diverged ranges");
        int length = sizeof(byte)                                       // flags
                   + GenerationsCodec.Length(ack.Generations)           // generations
                   + (diverged is null ? 0 : sizeof(uint)               // diverged range count
                       + diverged.Count * PeerAttachAck.DivergedRangeLength);
        var frame = Begin(output, length);
        var payload = frame[PeerProtocol.HeaderSize..];
        var flags = ack.Flags & ~PeerAttachFlags.Diverged;
        payload[0] = (byte)(diverged is null ? flags : flags | PeerAttachFlags.Diverged);
        int at = 1 + GenerationsCodec.Write(payload[1..], ack.Generations);
        if (diverged is not null)
        {
            BinaryPrimitives.WriteUInt32BigEndian(payload[at..], (uint)diverged.Count);
            at += sizeof(uint);
            foreach (var range in diverged)
            {
                BinaryPrimitives.WriteUInt64BigEndian(payload[at..], range.Offset);
                BinaryPrimitives.WriteUInt64BigEndian(payload[(at + 8)..], range.Length);
                at += PeerAttachAck.DivergedRangeLength;
            }
        }
        Commit(output, frame, PeerFrameType.AttachAck, PeerFrameFlags.None, sequence);
    }

    public static void WriteGenerations(IBufferWriter<byte> output, ulong sequence, in PeerGenerations generations)
    {
        int length = PeerProtocol.VolumeIdLength                        // volume id
                   + GenerationsCodec.Length(generations.Generations);  // generations
        var frame = Begin(output, length);
        var payload = frame[PeerProtocol.HeaderSize..];
        generations.VolumeId.TryWriteBytes(payload, bigEndian: true, out _);
        GenerationsCodec.Write(payload[16..], generations.Generations);
        Commit(output, frame, PeerFrameType.Generations, PeerFrameFlags.None, sequence);
    }

    /// <summary>
    /// HandOver; with <see cref="PeerHandOver.Replicas"/> (version 3) the payload can reach about a MiB, so it is
    /// built in a pooled buffer and appended after the header, like Write data, not in one span of the output.
    /// </summary>
    public static void WriteHandOver(IBufferWriter<byte> output, ulong sequence, in PeerHandOver handOver)
    {
        int length = handOver.PayloadLength;
        var rented = ArrayPool<byte>.Shared.Rent(length);
        try
        {
            var payload = rented.AsSpan(0, length);
            handOver.VolumeId.TryWriteBytes(payload, bigEndian: true, out _);
            int at = 16 + GenerationsCodec.Write(payload[16..], handOver.Generations);
            payload[at++] = (byte)handOver.Flags;
            if (handOver.Replicas is { } replicas) PeerHandOver.WriteReplicas(payload[at..], replicas);
            var header = output.GetSpan(PeerProtocol.HeaderSize)[..PeerProtocol.HeaderSize];
            WriteHeader(header, PeerFrameType.HandOver, PeerFrameFlags.None, sequence, length);
            uint crc = Crc32C.Append(Crc32C.Append(Crc32C.Seed, header[..PeerProtocol.ChecksumOffset]), payload);
            BinaryPrimitives.WriteUInt32BigEndian(header[PeerProtocol.ChecksumOffset..], Crc32C.Finish(crc));
            output.Advance(PeerProtocol.HeaderSize);
            output.Write(payload);
        }
        finally { ArrayPool<byte>.Shared.Return(rented); }
    }

    public static void WriteDetach(IBufferWriter<byte> output, ulong sequence, in PeerDetach detach)
    {
        int nameLength = Encoding.UTF8.GetByteCount(detach.Name);
        if (nameLength is 0 or > PeerProtocol.MaxVolumeNameLength)
            throw new ArgumentException($"a volume name is 1 to {PeerProtocol.MaxVolumeNameLength} bytes of UTF-8", nameof(detach));
        var frame = Begin(output, sizeof(byte) + nameLength);
        var payload = frame[PeerProtocol.HeaderSize..];
        payload[0] = (byte)nameLength;
        Encoding.UTF8.GetBytes(detach.Name, payload[1..]);
        Commit(output, frame, PeerFrameType.Detach, PeerFrameFlags.None, sequence);
    }

    internal static void WriteRaw(IBufferWriter<byte> output, PeerFrameType type, PeerFrameFlags flags, ulong sequence, ReadOnlySpan<byte> payload)
    {
        var frame = Begin(output, payload.Length);
        payload.CopyTo(frame[PeerProtocol.HeaderSize..]);
        Commit(output, frame, type, flags, sequence);
    }

    private static Span<byte> BeginWrite(IBufferWriter<byte> output, ulong sequence, PeerFrameFlags flags, Guid volumeId, ulong offset, int dataLength)
    {
        if (dataLength is 0 or > PeerProtocol.MaxWriteDataLength)
            throw new ArgumentOutOfRangeException(nameof(dataLength), $"a Write carries 1 to {PeerProtocol.MaxWriteDataLength} bytes, not {dataLength}");
        CheckFlags(PeerFrameType.Write, flags);
        const int fixedLength = PeerProtocol.VolumeIdLength   // volume id
                              + sizeof(ulong);                // offset
        var frame = output.GetSpan(PeerProtocol.HeaderSize + fixedLength)[..(PeerProtocol.HeaderSize + fixedLength)];
        var payload = frame[PeerProtocol.HeaderSize..];
        volumeId.TryWriteBytes(payload, bigEndian: true, out _);
        BinaryPrimitives.WriteUInt64BigEndian(payload[16..], offset);
        WriteHeader(frame, PeerFrameType.Write, flags, sequence, fixedLength + dataLength);
        return frame;
    }

    private static Span<byte> Begin(IBufferWriter<byte> output, int payloadLength) =>
        output.GetSpan(PeerProtocol.HeaderSize + payloadLength)[..(PeerProtocol.HeaderSize + payloadLength)];

    /// <summary>Fills in the header of a frame whose payload is already in place, checksums it and advances.</summary>
    private static void Commit(IBufferWriter<byte> output, Span<byte> frame, PeerFrameType type, PeerFrameFlags flags, ulong sequence)
    {
        WriteHeader(frame, type, flags, sequence, frame.Length - PeerProtocol.HeaderSize);
        uint crc = Crc32C.Append(Crc32C.Append(Crc32C.Seed, frame[..PeerProtocol.ChecksumOffset]), frame[PeerProtocol.HeaderSize..]);
        BinaryPrimitives.WriteUInt32BigEndian(frame[PeerProtocol.ChecksumOffset..], Crc32C.Finish(crc));
        output.Advance(frame.Length);
    }

    private static void WriteHeader(Span<byte> frame, PeerFrameType type, PeerFrameFlags flags, ulong sequence, int payloadLength)
    {
        BinaryPrimitives.WriteUInt32BigEndian(frame[PeerProtocol.MagicOffset..], PeerProtocol.Magic);
        BinaryPrimitives.WriteUInt16BigEndian(frame[PeerProtocol.TypeOffset..], (ushort)type);
        BinaryPrimitives.WriteUInt16BigEndian(frame[PeerProtocol.FlagsOffset..], (ushort)flags);
        BinaryPrimitives.WriteUInt64BigEndian(frame[PeerProtocol.SequenceOffset..], sequence);
        BinaryPrimitives.WriteUInt32BigEndian(frame[PeerProtocol.LengthOffset..], (uint)payloadLength);
    }

    private static void CheckFlags(PeerFrameType type, PeerFrameFlags flags)
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
