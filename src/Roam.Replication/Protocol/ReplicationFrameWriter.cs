using System.Buffers;
using System.Buffers.Binary;
using System.Text;
using Roam.Peers.Protocol;

namespace Roam.Replication.Protocol;

/// <summary>
/// Writes the replication frames (Write, Zero, Flush, Ack, Attach, AttachAck, Generations, HandOver, Detach) in the
/// peer frame layout (<see cref="PeerFrameWriter"/>). Synchronous, never flushes: the caller writes a batch and flushes once.
/// Each frame's header and fixed fields go into one span; Write data is appended after it, so a
/// 4 MiB write never needs a 4 MiB contiguous buffer.
/// </summary>
public static class ReplicationFrameWriter
{
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
        PeerFrameWriter.CheckFlags(PeerFrameType.Zero, flags);
        const int length = PeerProtocol.VolumeIdLength   // volume id
                         + sizeof(ulong)                 // offset
                         + sizeof(ulong);                // length
        var frame = PeerFrameWriter.Begin(output, length);
        var payload = frame[PeerProtocol.HeaderSize..];
        zero.VolumeId.TryWriteBytes(payload, bigEndian: true, out _);
        BinaryPrimitives.WriteUInt64BigEndian(payload[16..], zero.Offset);
        BinaryPrimitives.WriteUInt64BigEndian(payload[24..], zero.Length);
        PeerFrameWriter.Commit(output, frame, PeerFrameType.Zero, flags, sequence);
    }

    public static void WriteFlush(IBufferWriter<byte> output, ulong sequence, in PeerFlush flush)
    {
        const int length = PeerProtocol.VolumeIdLength;  // volume id
        var frame = PeerFrameWriter.Begin(output, length);
        flush.VolumeId.TryWriteBytes(frame[PeerProtocol.HeaderSize..], bigEndian: true, out _);
        PeerFrameWriter.Commit(output, frame, PeerFrameType.Flush, PeerFrameFlags.None, sequence);
    }

    public static void WriteAck(IBufferWriter<byte> output, ulong sequence, in PeerAck ack)
    {
        const int length = sizeof(ulong);                // acknowledged sequence
        var frame = PeerFrameWriter.Begin(output, length);
        BinaryPrimitives.WriteUInt64BigEndian(frame[PeerProtocol.HeaderSize..], ack.Sequence);
        PeerFrameWriter.Commit(output, frame, PeerFrameType.Ack, PeerFrameFlags.None, sequence);
    }



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
        var frame = PeerFrameWriter.Begin(output, length);
        var payload = frame[PeerProtocol.HeaderSize..];
        attach.VolumeId.TryWriteBytes(payload, bigEndian: true, out _);
        BinaryPrimitives.WriteUInt64BigEndian(payload[16..], attach.Size);
        int at = 24 + GenerationsCodec.Write(payload[24..], attach.Generations);
        payload[at] = (byte)nameLength;
        Encoding.UTF8.GetBytes(attach.Name, payload[(at + 1)..]);
        PeerFrameWriter.Commit(output, frame, PeerFrameType.Attach, PeerFrameFlags.None, sequence);
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
        var frame = PeerFrameWriter.Begin(output, length);
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
        PeerFrameWriter.Commit(output, frame, PeerFrameType.AttachAck, PeerFrameFlags.None, sequence);
    }

    public static void WriteGenerations(IBufferWriter<byte> output, ulong sequence, in PeerGenerations generations)
    {
        int length = PeerProtocol.VolumeIdLength                        // volume id
                   + GenerationsCodec.Length(generations.Generations);  // generations
        var frame = PeerFrameWriter.Begin(output, length);
        var payload = frame[PeerProtocol.HeaderSize..];
        generations.VolumeId.TryWriteBytes(payload, bigEndian: true, out _);
        GenerationsCodec.Write(payload[16..], generations.Generations);
        PeerFrameWriter.Commit(output, frame, PeerFrameType.Generations, PeerFrameFlags.None, sequence);
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
            PeerFrameWriter.WriteHeader(header, PeerFrameType.HandOver, PeerFrameFlags.None, sequence, length);
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
        var frame = PeerFrameWriter.Begin(output, sizeof(byte) + nameLength);
        var payload = frame[PeerProtocol.HeaderSize..];
        payload[0] = (byte)nameLength;
        Encoding.UTF8.GetBytes(detach.Name, payload[1..]);
        PeerFrameWriter.Commit(output, frame, PeerFrameType.Detach, PeerFrameFlags.None, sequence);
    }


    private static Span<byte> BeginWrite(IBufferWriter<byte> output, ulong sequence, PeerFrameFlags flags, Guid volumeId, ulong offset, int dataLength)
    {
        if (dataLength is 0 or > PeerProtocol.MaxWriteDataLength)
            throw new ArgumentOutOfRangeException(nameof(dataLength), $"a Write carries 1 to {PeerProtocol.MaxWriteDataLength} bytes, not {dataLength}");
        PeerFrameWriter.CheckFlags(PeerFrameType.Write, flags);
        const int fixedLength = PeerProtocol.VolumeIdLength   // volume id
                              + sizeof(ulong);                // offset
        var frame = output.GetSpan(PeerProtocol.HeaderSize + fixedLength)[..(PeerProtocol.HeaderSize + fixedLength)];
        var payload = frame[PeerProtocol.HeaderSize..];
        volumeId.TryWriteBytes(payload, bigEndian: true, out _);
        BinaryPrimitives.WriteUInt64BigEndian(payload[16..], offset);
        PeerFrameWriter.WriteHeader(frame, PeerFrameType.Write, flags, sequence, fixedLength + dataLength);
        return frame;
    }





}
