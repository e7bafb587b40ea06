using System.Buffers;
using System.Buffers.Binary;
using System.Net.Sockets;
using System.Text;
using CsCheck;
using Roam.Replication.Tests.Support;
using Roam.Peers.Tunnel;

namespace Roam.Replication.Tests;

/// <summary>The compressed tunnel stream (a VM's memory migration): chunks round trip, pay or are stored (malformed ones: TunnelChecksumTests).</summary>
public sealed class TunnelCompressionTests
{
    /// <summary>Text-like bytes (what kernel data, page cache and logs look like to LZ4) or random ones, 1..MaxChunk long.</summary>
    private static readonly Gen<(byte[] Data, bool Random)> Chunk = ChunkUpTo(TunnelChunks.MaxChunk);

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

    private static byte[] Encode(IEnumerable<byte[]> chunks) => TunnelStreams.Encode(chunks, compress: true);

    private static byte[] DecodeAll(ReadOnlySequence<byte> buffer)
    {
        var output = new MemoryStream();
        using var reader = new TunnelChunkReader();
        while (reader.TryRead(ref buffer, out var raw)) output.Write(raw.Span);
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
                var header = sequence.Slice(0, TunnelChunks.HeaderSize).ToArray();
                uint first = BinaryPrimitives.ReadUInt32BigEndian(header);
                uint encoded = first & 0x00FF_FFFF;
                Assert.Equal(encoded < data.Length ? TunnelChunks.FlagLz4 : 0, first & 0xFF00_0000);
                if (random) Assert.Equal((uint)data.Length, encoded);                     // stored: LZ4 would not pay
                else if (data.Length >= 1024) Assert.True(encoded < data.Length / 2, $"{data.Length} text bytes encoded in {encoded}");
                sequence = sequence.Slice(TunnelChunks.HeaderSize + encoded);
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
        for (int cut = 0; cut < stream.Length; cut++)
        {
            using var reader = new TunnelChunkReader();
            var prefix = Sequences.Whole(stream[..cut]);
            Assert.False(reader.TryRead(ref prefix, out _));
            Assert.Equal(cut, prefix.Length);
        }
        using var whole = new TunnelChunkReader();
        var all = Sequences.Whole(stream);
        Assert.True(whole.TryRead(ref all, out var raw));
        Assert.Equal(data, raw.ToArray());
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
        else
        {
            // Stored chunks: the bytes as they are, and a 16-byte header per chunk (QEMU's writes are KiBs).
            Assert.True(sent > payload.Length && (sent - payload.Length) % TunnelChunks.HeaderSize == 0 && sent - payload.Length < payload.Length / 100,
                $"{sent} bytes on the tunnel for {payload.Length}");
        }
        foreach (var s in new[] { qemuOut, relayIn, relayOut, qemuIn }) s.Dispose();
    }

    internal static (Socket, Socket) SocketPair()
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
