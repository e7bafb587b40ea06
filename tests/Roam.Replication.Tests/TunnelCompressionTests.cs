using System.Buffers;
using System.Buffers.Binary;
using System.Net.Sockets;
using System.Text;
using CsCheck;
using Roam.Replication.Tests.Support;
using Roam.Replication.Tunnel;

namespace Roam.Replication.Tests;

/// <summary>The compressed tunnel stream (a VM's memory migration): chunks round trip, pay or are stored, and malformed ones are refused.</summary>
public sealed class TunnelCompressionTests
{
    /// <summary>Text-like bytes (what kernel data, page cache and logs look like to LZ4) or random ones, 1..MaxChunk long.</summary>
    private static readonly Gen<(byte[] Data, bool Random)> Chunk = ChunkUpTo(TunnelCompression.MaxChunk);

    private static Gen<(byte[] Data, bool Random)> ChunkUpTo(int maxLength) =>
        Gen.Select(Gen.Int[1, maxLength], Gen.Int[0, 1000], Gen.Bool, (length, seed, random) =>
        {
            var rng = new Random(seed);
            var data = new byte[length];
            if (random) rng.NextBytes(data);
            else
            {
                var words = new[] { "page ", "kernel ", "heartbeat ", "\n", "0000", "record " };
                var text = new StringBuilder();
                while (text.Length < length) text.Append(words[rng.Next(words.Length)]);
                Encoding.ASCII.GetBytes(text.ToString(0, length), data);
            }
            return (data, random);
        });

    private static byte[] Encode(IEnumerable<byte[]> chunks)
    {
        var stream = new ArrayBufferWriter<byte>();
        foreach (var chunk in chunks)
        {
            var span = stream.GetSpan(TunnelCompression.MaxEncodedLength);
            stream.Advance(TunnelCompression.Encode(chunk, span));
        }
        return stream.WrittenSpan.ToArray();
    }

    private static byte[] DecodeAll(ReadOnlySequence<byte> buffer)
    {
        var output = new MemoryStream();
        var decoded = new byte[TunnelCompression.MaxChunk];
        while (TunnelCompression.TryDecode(ref buffer, decoded, out int length)) output.Write(decoded, 0, length);
        Assert.True(buffer.IsEmpty, $"{buffer.Length} bytes left undecoded");
        return output.ToArray();
    }

    [Fact]
    public void Chunks_round_trip_and_only_those_that_pay_are_compressed()
    {
        Chunk.Array[1, 4].Sample(chunks =>
        {
            var stream = Encode(chunks.Select(c => c.Data));
            Assert.Equal(chunks.SelectMany(c => c.Data).ToArray(), DecodeAll(Sequences.Whole(stream)));
            var sequence = Sequences.Whole(stream);
            foreach (var (data, random) in chunks)
            {
                var header = sequence.Slice(0, TunnelCompression.HeaderSize).ToArray();
                uint encoded = BinaryPrimitives.ReadUInt32BigEndian(header) & 0x7FFF_FFFF;
                if (random) Assert.Equal((uint)data.Length, encoded);                     // stored: LZ4 would not pay
                else if (data.Length >= 1024) Assert.True(encoded < data.Length / 2, $"{data.Length} text bytes encoded in {encoded}");
                sequence = sequence.Slice(TunnelCompression.HeaderSize + encoded);
            }
        }, iter: 60);
    }

    [Fact]
    public void A_chunk_split_across_segments_decodes_the_same()
    {
        ChunkUpTo(4096).Array[1, 3].Sample(chunks =>
        {
            var stream = Encode(chunks.Select(c => c.Data));
            Assert.Equal(chunks.SelectMany(c => c.Data).ToArray(), DecodeAll(Sequences.SegmentPerByte(stream)));
        }, iter: 60);
    }

    [Fact]
    public void An_incomplete_chunk_is_left_for_the_next_read()
    {
        var data = Encoding.ASCII.GetBytes(string.Concat(Enumerable.Repeat("heartbeat 0000 record ", 500)));
        var stream = Encode([data]);
        var decoded = new byte[TunnelCompression.MaxChunk];
        for (int cut = 0; cut < stream.Length; cut++)
        {
            var prefix = Sequences.Whole(stream[..cut]);
            Assert.False(TunnelCompression.TryDecode(ref prefix, decoded, out _));
            Assert.Equal(cut, prefix.Length);
        }
        var whole = Sequences.Whole(stream);
        Assert.True(TunnelCompression.TryDecode(ref whole, decoded, out int length));
        Assert.Equal(data, decoded[..length]);
    }

    public static TheoryData<string, uint, uint, byte[]> Malformed() => new()
    {
        { "no raw bytes", 0, 0, [] },
        { "a chunk longer than allowed", (uint)TunnelCompression.MaxChunk + 1, (uint)TunnelCompression.MaxChunk + 1, [] },
        { "stored, lengths differ", 10, 9, new byte[9] },
        { "LZ4 not smaller than raw", 0x8000_0000 | 16, 16, new byte[16] },
        { "LZ4 of nothing", 0x8000_0000, 16, [] },
        { "LZ4 block that is garbage", 0x8000_0000 | 8, 64, [0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF] },
        { "LZ4 block short of its claim", 0x8000_0000 | 2, 64, [0x10, (byte)'a'] },
    };

    [Theory]
    [MemberData(nameof(Malformed))]
    public void A_malformed_chunk_is_refused(string what, uint first, uint raw, byte[] body)
    {
        var stream = new byte[TunnelCompression.HeaderSize + body.Length];
        BinaryPrimitives.WriteUInt32BigEndian(stream, first);
        BinaryPrimitives.WriteUInt32BigEndian(stream.AsSpan(4), raw);
        body.CopyTo(stream, TunnelCompression.HeaderSize);
        var buffer = Sequences.Whole(stream);
        var ex = Assert.Throws<InvalidDataException>(() => TunnelCompression.TryDecode(ref buffer, new byte[TunnelCompression.MaxChunk], out _));
        Assert.True(ex.Message.Contains("tunnel chunk", StringComparison.Ordinal), $"{what}: {ex.Message}");
    }

    /// <summary>Two relays back to back over an in-memory tunnel, each with a real local socket: what goes in comes out,
    /// in fewer bytes on the tunnel when it compresses.</summary>
    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task A_relayed_stream_arrives_whole_and_compressed_when_agreed(bool compressed)
    {
        var (sourceTunnel, destinationTunnel) = TestPipes.Connected();
        var (qemuOut, relayIn) = SocketPair();
        var (relayOut, qemuIn) = SocketPair();
        var sending = TunnelRelay.RunAsync(sourceTunnel, relayIn, localEndsIt: true, default,
            _ => sourceTunnel.Output.CompleteAsync().AsTask(), compressed: compressed);
        var receiving = TunnelRelay.RunAsync(destinationTunnel, relayOut, localEndsIt: false, default,
            _ => destinationTunnel.Output.CompleteAsync().AsTask(), compressed: compressed);

        var payload = new byte[8 << 20];
        var rng = new Random(5);
        for (int at = 0; at < payload.Length; at += 4096)
        {
            if (at % (64 * 1024) == 0) rng.NextBytes(payload.AsSpan(at, 4096));   // one page in 16 random, the rest text
            else Encoding.ASCII.GetBytes(string.Concat(Enumerable.Repeat($"page {at:x8} ", 4096 / 14 + 1)).AsSpan(0, 4096), payload.AsSpan(at, 4096));
        }
        var writing = Task.Run(async () =>
        {
            for (int at = 0; at < payload.Length;) at += await qemuOut.SendAsync(payload.AsMemory(at, Math.Min(100_000, payload.Length - at)));
            qemuOut.Shutdown(SocketShutdown.Send);
        });
        var received = new MemoryStream();
        var buffer = new byte[65536];
        int n;
        while ((n = await qemuIn.ReceiveAsync(buffer, SocketFlags.None).WaitAsync(TimeSpan.FromSeconds(30))) > 0) received.Write(buffer, 0, n);
        await writing;
        qemuIn.Shutdown(SocketShutdown.Send); // the destination QEMU's (empty) return path ends too
        var (sent, _) = await sending.WaitAsync(TimeSpan.FromSeconds(30));
        var (_, arrived) = await receiving.WaitAsync(TimeSpan.FromSeconds(30));

        Assert.True(payload.AsSpan().SequenceEqual(received.ToArray()), "the relayed stream differs");
        Assert.Equal(sent, arrived);
        if (compressed) Assert.True(sent < payload.Length / 2, $"{sent} bytes on the tunnel for {payload.Length}");
        else Assert.Equal(payload.Length, sent);
        foreach (var s in new[] { qemuOut, relayIn, relayOut, qemuIn }) s.Dispose();
    }

    private static (Socket, Socket) SocketPair()
    {
        string path = Path.Combine(Path.GetTempPath(), $"roam-tc-{Guid.NewGuid():N}.sock");
        using var listener = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        listener.Bind(new UnixDomainSocketEndPoint(path));
        listener.Listen(1);
        var client = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        client.Connect(new UnixDomainSocketEndPoint(path));
        var server = listener.Accept();
        File.Delete(path);
        return (client, server);
    }
}
