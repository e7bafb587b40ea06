using System.Buffers;
using CsCheck;
using Roam.Peers.Protocol;
using Roam.Replication.Protocol;
using Roam.Replication.Tests.Support;
using Roam.Storage.Tracking;

namespace Roam.Replication.Tests;

/// <summary>Generated values of every frame type survive writer → reader → decoder, whole and one segment per byte.</summary>
public sealed class FrameRoundTripTests
{
    private const long Iterations = 200;

    // Names mix one-, two- and three-byte UTF-8 characters; lone surrogates are excluded since
    // they cannot round-trip through UTF-8 by definition.
    private static readonly Gen<string> HostName = Gen.String[Gen.Char["abcxyz019.-_éüø中文"], 1, 80];
    private static readonly Gen<PeerFrameFlags> DataFlags = Gen.Bool.Select(b => b ? PeerFrameFlags.Fua : PeerFrameFlags.None);

    private static (PeerFrameHeader Header, ReadOnlySequence<byte> Payload) RoundTrip(byte[] bytes, bool perByte)
    {
        var (header, payload) = Frames.ReadOne(perByte ? Sequences.SegmentPerByte(bytes) : Sequences.Whole(bytes));
        return (header, new ReadOnlySequence<byte>(payload));
    }

    [Fact]
    public void Hello() =>
        Gen.Select(Gen.UShort, Gen.UShort, HostName, Gen.ULong, Gen.Bool).Sample((a, b, name, seq, perByte) =>
        {
            var hello = new PeerHello(Math.Min(a, b), Math.Max(a, b), name);
            var (header, payload) = RoundTrip(Frames.Of(w => PeerFrameWriter.WriteHello(w, seq, hello)), perByte);
            Assert.Equal((PeerFrameType.Hello, seq), (header.Type, header.Sequence));
            Assert.Equal(hello, PeerHello.Read(payload));
        }, iter: Iterations);

    [Fact]
    public void HelloAck() =>
        Gen.Select(Gen.UShort, HostName, Gen.ULong, Gen.Bool).Sample((version, name, seq, perByte) =>
        {
            var ack = new PeerHelloAck(version, name);
            var (header, payload) = RoundTrip(Frames.Of(w => PeerFrameWriter.WriteHelloAck(w, seq, ack)), perByte);
            Assert.Equal(PeerFrameType.HelloAck, header.Type);
            Assert.Equal(ack, PeerHelloAck.Read(payload));
        }, iter: Iterations);

    [Fact]
    public void Write() =>
        Gen.Select(Gen.Guid, Gen.ULong[0, ulong.MaxValue / 2], Gen.Byte.Array[1, 3000], DataFlags, Gen.ULong, Gen.Bool)
            .Sample((volume, offset, data, flags, seq, perByte) =>
            {
                var (header, payload) = RoundTrip(Frames.Of(w => ReplicationFrameWriter.WriteWrite(w, seq, flags, volume, offset, data)), perByte);
                Assert.Equal(new PeerFrameHeader(PeerFrameType.Write, flags, seq, PeerWrite.FixedLength + data.Length), header);
                var write = PeerWrite.Read(payload);
                Assert.Equal((volume, offset), (write.VolumeId, write.Offset));
                Assert.Equal(data, write.Data.ToArray());
            }, iter: Iterations);

    [Fact]
    public void Zero() =>
        Gen.Select(Gen.Guid, Gen.ULong[0, 1UL << 62], Gen.ULong[1, 1UL << 62], DataFlags, Gen.ULong, Gen.Bool)
            .Sample((volume, offset, length, flags, seq, perByte) =>
            {
                var zero = new PeerZero(volume, offset, length);
                var (header, payload) = RoundTrip(Frames.Of(w => ReplicationFrameWriter.WriteZero(w, seq, flags, zero)), perByte);
                Assert.Equal(new PeerFrameHeader(PeerFrameType.Zero, flags, seq, PeerZero.PayloadLength), header);
                Assert.Equal(zero, PeerZero.Read(payload));
            }, iter: Iterations);

    [Fact]
    public void Flush() =>
        Gen.Select(Gen.Guid, Gen.ULong, Gen.Bool).Sample((volume, seq, perByte) =>
        {
            var (header, payload) = RoundTrip(Frames.Of(w => ReplicationFrameWriter.WriteFlush(w, seq, new PeerFlush(volume))), perByte);
            Assert.Equal(new PeerFrameHeader(PeerFrameType.Flush, PeerFrameFlags.None, seq, PeerFlush.PayloadLength), header);
            Assert.Equal(new PeerFlush(volume), PeerFlush.Read(payload));
        }, iter: Iterations);

    [Fact]
    public void Ack() =>
        Gen.Select(Gen.ULong, Gen.ULong, Gen.Bool).Sample((acked, seq, perByte) =>
        {
            var (header, payload) = RoundTrip(Frames.Of(w => ReplicationFrameWriter.WriteAck(w, seq, new PeerAck(acked))), perByte);
            Assert.Equal(new PeerFrameHeader(PeerFrameType.Ack, PeerFrameFlags.None, seq, PeerAck.PayloadLength), header);
            Assert.Equal(new PeerAck(acked), PeerAck.Read(payload));
        }, iter: Iterations);

    [Fact]
    public void Error() =>
        Gen.Select(Gen.ULong, Gen.UInt, Gen.String[Gen.Char["abc é中\n:"], 0, 300], Gen.ULong, Gen.Bool)
            .Sample((answered, code, message, seq, perByte) =>
            {
                var error = new PeerError(answered, (PeerErrorCode)code, message);
                var (header, payload) = RoundTrip(Frames.Of(w => PeerFrameWriter.WriteError(w, seq, error)), perByte);
                Assert.Equal(PeerFrameType.Error, header.Type);
                Assert.Equal(error, PeerError.Read(payload));
            }, iter: Iterations);

    private static readonly Gen<DataGenerations> Generations =
        Gen.Select(Gen.Guid, Gen.Guid.Array[0, PeerProtocol.MaxGenerationsHistory]).Select((current, history) => new DataGenerations(current, history));

    /// <summary>Ascending, disjoint ranges, as a loser's bitmap gives them (up to the maximum an AttachAck carries).</summary>
    private static readonly Gen<DivergedRange[]?> Diverged =
        Gen.Select(Gen.ULong[0, 1UL << 40], Gen.ULong[1, 1UL << 30]).Array[0, 60].Select(pairs =>
        {
            ulong at = 0;
            return pairs.Select(p => { var range = new DivergedRange(at + p.Item1, p.Item2); at += p.Item1 + p.Item2; return range; }).ToArray();
        }).Select(Gen.Bool, (ranges, present) => present ? ranges : null);

    [Fact]
    public void AttachAck() =>
        Gen.Select(Gen.Byte[0, 3], Generations, Diverged, Gen.ULong, Gen.Bool).Sample((flags, generations, diverged, seq, perByte) =>
        {
            var ack = new PeerAttachAck((PeerAttachFlags)flags, generations, diverged);
            var (header, payload) = RoundTrip(Frames.Of(w => ReplicationFrameWriter.WriteAttachAck(w, seq, ack)), perByte);
            Assert.Equal((PeerFrameType.AttachAck, seq), (header.Type, header.Sequence));
            var read = PeerAttachAck.Read(payload);
            Assert.Equal((PeerAttachFlags)flags | (diverged is null ? 0 : PeerAttachFlags.Diverged), read.Flags);
            Assert.Equal(generations.Current, read.Generations.Current);
            Assert.Equal(generations.History, read.Generations.History);
            if (diverged is null) Assert.Null(read.Diverged);
            else Assert.Equal(diverged, read.Diverged!);
        }, iter: Iterations);

    [Fact]
    public void AttachAck_with_the_most_diverged_ranges_fits_the_length_the_reader_admits()
    {
        var ranges = Enumerable.Range(0, PeerProtocol.MaxDivergedRanges).Select(i => new DivergedRange((ulong)i * 2, 1)).ToArray();
        var history = Enumerable.Range(0, PeerProtocol.MaxGenerationsHistory).Select(_ => Guid.NewGuid()).ToArray();
        var bytes = Frames.Of(w => ReplicationFrameWriter.WriteAttachAck(w, 1, new PeerAttachAck(PeerAttachFlags.None, new DataGenerations(Guid.NewGuid(), history), ranges)));
        Assert.Equal(PeerProtocol.HeaderSize + PeerAttachAck.MaxLength, bytes.Length);
        var (_, payload) = RoundTrip(bytes, perByte: false);
        Assert.Equal(ranges, PeerAttachAck.Read(payload).Diverged!);
        Assert.Throws<ArgumentOutOfRangeException>(() => Frames.Of(w => ReplicationFrameWriter.WriteAttachAck(w, 1,
            new PeerAttachAck(PeerAttachFlags.None, new DataGenerations(Guid.Empty, []), [.. ranges, new DivergedRange(1UL << 40, 1)]))));
    }

    [Fact]
    public void Heartbeat() =>
        Gen.Select(Gen.ULong, Gen.Bool).Sample((seq, perByte) =>
        {
            var (header, payload) = RoundTrip(Frames.Of(w => PeerFrameWriter.WriteHeartbeat(w, seq)), perByte);
            Assert.Equal(new PeerFrameHeader(PeerFrameType.Heartbeat, PeerFrameFlags.None, seq, 0), header);
            Assert.True(payload.IsEmpty);
        }, iter: Iterations);
}
