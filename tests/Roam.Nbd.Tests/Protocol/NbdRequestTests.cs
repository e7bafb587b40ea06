using System.Buffers;
using CsCheck;
using Roam.Nbd.Protocol;
using Roam.Testing;

namespace Roam.Nbd.Tests.Protocol;

/// <summary>NbdRequest.TryRead, fed every input whole and one segment per byte (Kestrel's parser tests).</summary>
public sealed class NbdRequestTests
{
    private static readonly NbdRequest Sample = new(NbdCommandFlags.Fua, NbdCommand.Write, 0x0102030405060708, 0x1122334455667788, 0xdeadbeef);

    // The spec's layout, written out by hand: magic, flags, type, cookie, offset, length (all big-endian).
    private static readonly byte[] SampleBytes =
    [
        0x25, 0x60, 0x95, 0x13,
        0x00, 0x01,
        0x00, 0x01,
        0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08,
        0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88,
        0xde, 0xad, 0xbe, 0xef,
    ];

    public static TheoryData<string> Shapes => ["whole", "segment-per-byte"];

    private static ReadOnlySequence<byte> Shape(string shape, byte[] bytes) =>
        shape == "whole" ? new ReadOnlySequence<byte>(bytes) : Sequences.SegmentPerByte(bytes);

    [Theory, MemberData(nameof(Shapes))]
    public void Header_parses_to_the_fields_the_spec_lays_out(string shape)
    {
        var buffer = Shape(shape, SampleBytes);

        Assert.True(NbdRequest.TryRead(ref buffer, out var request));

        Assert.Equal(Sample, request);
        Assert.Equal(0, buffer.Length);
    }

    [Theory, MemberData(nameof(Shapes))]
    public void Header_is_consumed_without_the_write_payload_after_it(string shape)
    {
        byte[] payload = [9, 8, 7];
        var buffer = Shape(shape, [.. SampleBytes, .. payload]);

        Assert.True(NbdRequest.TryRead(ref buffer, out _));

        Assert.Equal(payload, buffer.ToArray());
    }

    [Theory, MemberData(nameof(Shapes))]
    public void Every_incomplete_header_returns_false_and_leaves_the_buffer_alone(string shape)
    {
        for (int n = 0; n < NbdProtocol.RequestHeaderSize; n++)
        {
            var buffer = Shape(shape, SampleBytes[..n]);

            Assert.False(NbdRequest.TryRead(ref buffer, out _));

            Assert.Equal(n, buffer.Length);
        }
    }

    [Theory, MemberData(nameof(Shapes))]
    public void Bad_magic_throws_BadRequestMagic(string shape)
    {
        foreach (int flip in new[] { 0, 1, 2, 3 })
        {
            var bytes = (byte[])SampleBytes.Clone();
            bytes[flip] ^= 0x40;
            var buffer = Shape(shape, bytes);

            var ex = Assert.Throws<NbdProtocolException>(() => NbdRequest.TryRead(ref buffer, out _));

            Assert.Equal(NbdRejection.BadRequestMagic, ex.Rejection);
        }
    }

    [Fact]
    public void Two_pipelined_headers_parse_one_after_the_other()
    {
        var second = Sample with { Command = NbdCommand.Read, Cookie = 2, Flags = NbdCommandFlags.None };
        var bytes = new byte[2 * NbdProtocol.RequestHeaderSize];
        Sample.WriteTo(bytes);
        second.WriteTo(bytes.AsSpan(NbdProtocol.RequestHeaderSize));
        var buffer = Sequences.SegmentPerByte(bytes);

        Assert.True(NbdRequest.TryRead(ref buffer, out var a));
        Assert.True(NbdRequest.TryRead(ref buffer, out var b));

        Assert.Equal((Sample, second), (a, b));
        Assert.False(NbdRequest.TryRead(ref buffer, out _));
    }

    [Fact]
    public void WriteTo_matches_the_spec_layout()
    {
        var bytes = new byte[NbdProtocol.RequestHeaderSize];

        Sample.WriteTo(bytes);

        Assert.Equal(SampleBytes, bytes);
    }

    private static readonly Gen<NbdRequest> GenRequest =
        Gen.Select(Gen.UShort, Gen.UShort, Gen.ULong, Gen.ULong, Gen.UInt,
            (flags, type, cookie, offset, length) => new NbdRequest((NbdCommandFlags)flags, (NbdCommand)type, cookie, offset, length));

    [Fact]
    public void Any_header_round_trips_through_WriteTo_and_TryRead()
    {
        GenRequest.Sample(request =>
        {
            var bytes = new byte[NbdProtocol.RequestHeaderSize];
            request.WriteTo(bytes);
            foreach (var buffer0 in new[] { new ReadOnlySequence<byte>(bytes), Sequences.SegmentPerByte(bytes) })
            {
                var buffer = buffer0;
                Assert.True(NbdRequest.TryRead(ref buffer, out var parsed));
                Assert.Equal(request, parsed);
                Assert.True(buffer.IsEmpty);
            }
        });
    }
}
