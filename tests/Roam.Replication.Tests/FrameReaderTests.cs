using System.Buffers;
using System.Buffers.Binary;
using System.IO.Pipelines;
using Roam.Peers.Protocol;
using Roam.Replication.Protocol;
using Roam.Replication.Tests.Support;

namespace Roam.Replication.Tests;

public sealed class FrameReaderTests
{
    private static readonly Guid Volume = Guid.Parse("0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0");

    public static TheoryData<string> FrameKinds() => ["hello", "helloack", "write", "zero", "flush", "ack", "error", "heartbeat"];

    private static byte[] Sample(string kind) => Frames.Of(w =>
    {
        switch (kind)
        {
            case "hello": PeerFrameWriter.WriteHello(w, 0, new PeerHello(1, 3, "alpha.example")); break;
            case "helloack": PeerFrameWriter.WriteHelloAck(w, 0, new PeerHelloAck(1, "beta")); break;
            case "write": ReplicationFrameWriter.WriteWrite(w, 7, PeerFrameFlags.Fua, Volume, 4096, "hello disk"u8); break;
            case "zero": ReplicationFrameWriter.WriteZero(w, 8, PeerFrameFlags.None, new PeerZero(Volume, 1 << 20, 1L << 40)); break;
            case "flush": ReplicationFrameWriter.WriteFlush(w, 9, new PeerFlush(Volume)); break;
            case "ack": ReplicationFrameWriter.WriteAck(w, 10, new PeerAck(7)); break;
            case "error": PeerFrameWriter.WriteError(w, 11, new PeerError(7, PeerErrorCode.NoSpace, "disk full on béta")); break;
            case "heartbeat": PeerFrameWriter.WriteHeartbeat(w, 12); break;
            default: throw new ArgumentException(kind);
        }
    });

    [Theory]
    [MemberData(nameof(FrameKinds))]
    public void Every_frame_reads_the_same_whole_and_one_segment_per_byte(string kind)
    {
        var bytes = Sample(kind);
        var (expectedHeader, expectedPayload) = Frames.ReadOne(Sequences.Whole(bytes));
        var (header, payload) = Frames.ReadOne(Sequences.SegmentPerByte(bytes));
        Assert.Equal(expectedHeader, header);
        Assert.Equal(expectedPayload, payload);
        Assert.Equal(bytes.Length - PeerProtocol.HeaderSize, header.PayloadLength);
    }

    [Fact]
    public void Decoded_payloads_carry_what_was_written()
    {
        foreach (var (name, seq) in Sequences.Both(Sample("write")))
        {
            var (header, payload) = Frames.ReadOne(seq);
            Assert.Equal(new PeerFrameHeader(PeerFrameType.Write, PeerFrameFlags.Fua, 7, 24 + 10), header);
            var write = PeerWrite.Read(new ReadOnlySequence<byte>(payload));
            Assert.Equal(Volume, write.VolumeId);
            Assert.Equal(4096ul, write.Offset);
            Assert.Equal("hello disk"u8.ToArray(), write.Data.ToArray());
        }
        var zero = PeerZero.Read(new ReadOnlySequence<byte>(Frames.ReadOne(Sequences.Whole(Sample("zero"))).Payload));
        Assert.Equal(new PeerZero(Volume, 1 << 20, 1L << 40), zero);
        var error = PeerError.Read(new ReadOnlySequence<byte>(Frames.ReadOne(Sequences.SegmentPerByte(Sample("error"))).Payload));
        Assert.Equal(new PeerError(7, PeerErrorCode.NoSpace, "disk full on béta"), error);
    }

    [Fact]
    public void Volume_ids_cross_in_rfc_byte_order()
    {
        var (_, payload) = Frames.ReadOne(Sequences.Whole(Sample("flush")));
        Assert.Equal(Convert.FromHexString("0f1e2d3c4b5a69788796a5b4c3d2e1f0"), payload);
    }

    [Fact]
    public void Several_frames_in_one_buffer_come_out_in_order()
    {
        var bytes = Sample("hello").Concat(Sample("write")).Concat(Sample("heartbeat")).ToArray();
        foreach (var (name, whole) in Sequences.Both(bytes))
        {
            var seq = whole;
            var types = new List<PeerFrameType>();
            while (PeerFrameReader.TryRead(ref seq, PeerProtocol.DefaultMaxPayload, out var header, out _)) types.Add(header.Type);
            Assert.Equal([PeerFrameType.Hello, PeerFrameType.Write, PeerFrameType.Heartbeat], types);
            Assert.True(seq.IsEmpty, name);
        }
    }

    [Fact]
    public void Every_prefix_of_a_frame_needs_more_and_leaves_the_buffer_alone()
    {
        var bytes = Sample("write");
        for (int n = 0; n < bytes.Length; n++)
        {
            var seq = Sequences.SegmentPerByte(bytes[..n]);
            var before = seq;
            Assert.False(PeerFrameReader.TryRead(ref seq, PeerProtocol.DefaultMaxPayload, out _, out _));
            Assert.Equal(before.Length, seq.Length);
            Assert.Equal(before.Start, seq.Start);
        }
    }

    [Fact]
    public void An_oversized_length_is_refused_from_the_header_alone()
    {
        // Only the 24 header bytes are here: the reader must not wait for a payload it would refuse.
        var bytes = Sample("write")[..PeerProtocol.HeaderSize];
        foreach (var (_, seq) in Sequences.Both(bytes))
        {
            var s = seq;
            var ex = Assert.Throws<PeerProtocolException>(() => PeerFrameReader.TryRead(ref s, maxPayload: 16, out _, out _));
            Assert.Equal(PeerRejection.PayloadTooLong, ex.Rejection);
        }
        var huge = Sample("write");
        BinaryPrimitives.WriteUInt32BigEndian(huge.AsSpan(PeerProtocol.LengthOffset), uint.MaxValue);
        Assert.Equal(PeerRejection.PayloadTooLong, Reject(huge[..PeerProtocol.HeaderSize], PeerProtocol.DefaultMaxPayload));
    }

    public static TheoryData<string, PeerRejection> Corruptions() => new()
    {
        { "magic", PeerRejection.BadMagic },
        { "type", PeerRejection.UnknownFrameType },
        { "type zero", PeerRejection.UnknownFrameType },
        { "unknown flag", PeerRejection.InvalidFlags },
        { "fua on ack", PeerRejection.InvalidFlags },
        { "ack length", PeerRejection.BadPayloadLength },
        { "heartbeat length", PeerRejection.BadPayloadLength },
        { "empty write", PeerRejection.BadPayloadLength },
        { "payload bit", PeerRejection.ChecksumMismatch },
        { "sequence bit", PeerRejection.ChecksumMismatch },
        { "checksum bit", PeerRejection.ChecksumMismatch },
    };

    [Theory]
    [MemberData(nameof(Corruptions))]
    public void Corrupt_headers_and_payloads_throw_the_matching_rejection(string corruption, PeerRejection expected)
    {
        byte[] bytes = corruption switch
        {
            "magic" => Patch(Sample("ack"), b => b[0] ^= 0x20, reseal: true),
            "type" => Patch(Sample("ack"), b => BinaryPrimitives.WriteUInt16BigEndian(b.AsSpan(4), 99), reseal: true),
            "type zero" => Patch(Sample("ack"), b => BinaryPrimitives.WriteUInt16BigEndian(b.AsSpan(4), 0), reseal: true),
            "unknown flag" => Patch(Sample("write"), b => BinaryPrimitives.WriteUInt16BigEndian(b.AsSpan(6), 0x8000), reseal: true),
            "fua on ack" => Patch(Sample("ack"), b => BinaryPrimitives.WriteUInt16BigEndian(b.AsSpan(6), (ushort)PeerFrameFlags.Fua), reseal: true),
            "ack length" => Raw(PeerFrameType.Ack, new byte[9]),
            "heartbeat length" => Raw(PeerFrameType.Heartbeat, new byte[1]),
            "empty write" => Raw(PeerFrameType.Write, new byte[PeerWrite.FixedLength]),
            "payload bit" => Patch(Sample("write"), b => b[^1] ^= 1, reseal: false),
            "sequence bit" => Patch(Sample("write"), b => b[PeerProtocol.SequenceOffset + 7] ^= 1, reseal: false),
            "checksum bit" => Patch(Sample("heartbeat"), b => b[PeerProtocol.ChecksumOffset] ^= 0x80, reseal: false),
            _ => throw new ArgumentException(corruption),
        };
        Assert.Equal(expected, Reject(bytes, PeerProtocol.DefaultMaxPayload));
    }

    public static TheoryData<PeerFrameType, string> MalformedPayloads() => new()
    {
        { PeerFrameType.Hello, "0001 0001 05 61626364" },              // name length 5, 4 bytes follow
        { PeerFrameType.Hello, "0001 0001 02 c328" },                  // invalid UTF-8
        { PeerFrameType.Hello, "0003 0001 01 61" },                    // min > max
        { PeerFrameType.Hello, "0001 0001 00" },                       // empty name
        { PeerFrameType.HelloAck, "0001 03 6162" },
        { PeerFrameType.Zero, "0f1e2d3c4b5a69788796a5b4c3d2e1f0 0000000000000000 0000000000000000" },  // empty range
        { PeerFrameType.Zero, "0f1e2d3c4b5a69788796a5b4c3d2e1f0 ffffffffffffff00 0000000000000100" },  // overflows
        { PeerFrameType.Write, "0f1e2d3c4b5a69788796a5b4c3d2e1f0 ffffffffffffffff 00" },               // overflows
        { PeerFrameType.Error, "0000000000000000 00000001 0005 6f6f7073" },
        { PeerFrameType.AttachAck, "04 00000000000000000000000000000000 00 00000001 0000000000000000" },                                      // a range cut short
        { PeerFrameType.AttachAck, "04 00000000000000000000000000000000 00 00000001 0000000000000000 0000000000000000" },                     // an empty range
        { PeerFrameType.AttachAck, "04 00000000000000000000000000000000 00 00000002 0000000000001000 0000000000000010 0000000000000000 0000000000000001" },  // out of order
        { PeerFrameType.AttachAck, "04 00000000000000000000000000000000 00 00000002 0000000000001000 0000000000000010 0000000000001008 0000000000000001" },  // overlapping
        { PeerFrameType.AttachAck, "04 00000000000000000000000000000000 00 00000001 7fffffffffffffff 0000000000000002" },                     // past what a size can address
        { PeerFrameType.AttachAck, "04 00000000000000000000000000000000 00 00001001" },                                                        // more ranges than allowed
        { PeerFrameType.AttachAck, "04 00000000000000000000000000000000 00 00000000 00" },                                                     // bytes after the ranges
        { PeerFrameType.AttachAck, "00 00000000000000000000000000000000 00 00000000" },                     // ranges without the flag
    };

    [Theory]
    [MemberData(nameof(MalformedPayloads))]
    public void Inconsistent_payloads_are_malformed(PeerFrameType type, string hex)
    {
        var bytes = Raw(type, Convert.FromHexString(hex.Replace(" ", "")));
        foreach (var (_, seq) in Sequences.Both(bytes))
        {
            var (header, payload) = Frames.ReadOne(seq);
            var ex = Assert.Throws<PeerProtocolException>(() => Decode(header.Type, new ReadOnlySequence<byte>(payload)));
            Assert.Equal(PeerRejection.MalformedPayload, ex.Rejection);
        }
    }

    [Fact]
    public void Long_error_messages_are_cut_on_a_character_boundary()
    {
        var message = string.Concat(Enumerable.Repeat("é中", 400));   // 2000 bytes of UTF-8
        var bytes = Frames.Of(w => PeerFrameWriter.WriteError(w, 1, new PeerError(1, PeerErrorCode.IoError, message)));
        var error = PeerError.Read(new ReadOnlySequence<byte>(Frames.ReadOne(Sequences.Whole(bytes)).Payload));
        Assert.True(System.Text.Encoding.UTF8.GetByteCount(error.Message) <= PeerProtocol.MaxErrorMessageLength);
        Assert.True(System.Text.Encoding.UTF8.GetByteCount(error.Message) > PeerProtocol.MaxErrorMessageLength - 3);
        Assert.StartsWith(error.Message, message);
    }

    [Fact]
    public void Writers_refuse_frames_the_reader_would_reject()
    {
        var w = new ArrayBufferWriter<byte>();
        Assert.Throws<ArgumentOutOfRangeException>(() => ReplicationFrameWriter.WriteWrite(w, 1, PeerFrameFlags.None, Volume, 0, ReadOnlySpan<byte>.Empty));
        Assert.Throws<ArgumentOutOfRangeException>(() => ReplicationFrameWriter.WriteWrite(w, 1, PeerFrameFlags.None, Volume, 0, new byte[PeerProtocol.MaxWriteDataLength + 1]));
        Assert.Throws<ArgumentOutOfRangeException>(() => ReplicationFrameWriter.WriteZero(w, 1, PeerFrameFlags.None, new PeerZero(Volume, 0, 0)));
        Assert.Throws<ArgumentException>(() => ReplicationFrameWriter.WriteZero(w, 1, (PeerFrameFlags)0x40, new PeerZero(Volume, 0, 1)));
        Assert.Throws<ArgumentException>(() => PeerFrameWriter.WriteHello(w, 0, new PeerHello(1, 1, new string('x', 256))));
        Assert.Throws<ArgumentException>(() => PeerFrameWriter.WriteHelloAck(w, 0, new PeerHelloAck(1, "")));
        Assert.Equal(0, w.WrittenCount);
    }

    [Fact]
    public void A_write_from_segmented_data_is_the_same_frame_as_from_one_span()
    {
        var data = new byte[10_000];
        new Random(3).NextBytes(data);
        var fromSpan = Frames.Of(w => ReplicationFrameWriter.WriteWrite(w, 5, PeerFrameFlags.None, Volume, 512, data));
        var fromSegments = Frames.Of(w => ReplicationFrameWriter.WriteWrite(w, 5, PeerFrameFlags.None, Volume, 512, Sequences.SegmentPerByte(data)));
        Assert.Equal(fromSpan, fromSegments);
    }

    [Fact]
    public void Reading_a_frame_allocates_nothing()
    {
        var data = new byte[64 * 1024];
        var bytes = Frames.Of(w =>
        {
            for (int i = 0; i < 50; i++) ReplicationFrameWriter.WriteWrite(w, (ulong)i, PeerFrameFlags.None, Volume, (ulong)i * 65536, data);
            ReplicationFrameWriter.WriteAck(w, 99, new PeerAck(1));
        });
        // Many small segments: the checksum runs across segment boundaries.
        var chunks = bytes.Chunk(1000).ToArray();
        // Measured over several fresh copies of the stream, keeping the least: a background JIT tier-up landing
        // during one pass allocates on this thread too, while a reader that allocates does so on every pass.
        long allocated = long.MaxValue;
        for (int round = 0; round < 5; round++)
        {
            var seq = BuildSegments(chunks);
            long before = GC.GetAllocatedBytesForCurrentThread();
            int frames = 0;
            while (PeerFrameReader.TryRead(ref seq, PeerProtocol.DefaultMaxPayload, out _, out _)) frames++;
            allocated = Math.Min(allocated, GC.GetAllocatedBytesForCurrentThread() - before);
            Assert.Equal(51, frames);
        }

        Assert.Equal(0, allocated);
    }

    [Fact]
    public async Task ReadFrameAsync_tells_a_clean_end_from_a_truncated_frame()
    {
        var clean = new Pipe();
        await clean.Writer.WriteAsync(Sample("heartbeat"));
        await clean.Writer.CompleteAsync();
        Assert.Equal(PeerFrameType.Heartbeat, (await PeerFrameReader.ReadFrameAsync(clean.Reader, 1024))!.Type);
        Assert.Null(await PeerFrameReader.ReadFrameAsync(clean.Reader, 1024));

        var cut = new Pipe();
        await cut.Writer.WriteAsync(Sample("ack")[..30]);
        await cut.Writer.CompleteAsync();
        var ex = await Assert.ThrowsAsync<PeerProtocolException>(async () => await PeerFrameReader.ReadFrameAsync(cut.Reader, 1024));
        Assert.Equal(PeerRejection.TruncatedFrame, ex.Rejection);
    }

    internal static void Decode(PeerFrameType type, ReadOnlySequence<byte> payload)
    {
        switch (type)
        {
            case PeerFrameType.Hello: PeerHello.Read(payload); break;
            case PeerFrameType.HelloAck: PeerHelloAck.Read(payload); break;
            case PeerFrameType.Write: PeerWrite.Read(payload); break;
            case PeerFrameType.Zero: PeerZero.Read(payload); break;
            case PeerFrameType.Flush: PeerFlush.Read(payload); break;
            case PeerFrameType.Ack: PeerAck.Read(payload); break;
            case PeerFrameType.Error: PeerError.Read(payload); break;
            case PeerFrameType.Heartbeat: break;
            case PeerFrameType.AttachAck: PeerAttachAck.Read(payload); break;
            default: throw new ArgumentException(type.ToString());
        }
    }

    private static PeerRejection Reject(byte[] bytes, int maxPayload)
    {
        PeerRejection? whole = null;
        foreach (var (_, seq) in Sequences.Both(bytes))
        {
            var s = seq;
            var ex = Assert.Throws<PeerProtocolException>(() => PeerFrameReader.TryRead(ref s, maxPayload, out _, out _));
            if (whole is { } w) Assert.Equal(w, ex.Rejection);
            whole = ex.Rejection;
        }
        return whole!.Value;
    }

    private static byte[] Raw(PeerFrameType type, byte[] payload) =>
        Frames.Of(w => PeerFrameWriter.WriteRaw(w, type, PeerFrameFlags.None, 1, payload));

    private static byte[] Patch(byte[] bytes, Action<byte[]> patch, bool reseal)
    {
        patch(bytes);
        if (reseal) Frames.Reseal(bytes);
        return bytes;
    }

    private static ReadOnlySequence<byte> BuildSegments(byte[][] chunks)
    {
        var first = new Chunk(chunks[0], 0);
        var last = first;
        foreach (var c in chunks.Skip(1)) last = last.Append(c);
        return new ReadOnlySequence<byte>(first, 0, last, last.Memory.Length);
    }

    private sealed class Chunk : ReadOnlySequenceSegment<byte>
    {
        public Chunk(byte[] data, long index) { Memory = data; RunningIndex = index; }
        public Chunk Append(byte[] data) { var next = new Chunk(data, RunningIndex + Memory.Length); Next = next; return next; }
    }
}
