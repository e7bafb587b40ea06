using System.Buffers;
using System.Buffers.Binary;
using System.Net.Sockets;
using CsCheck;
using Roam.Replication.Tests.Support;
using Roam.Peers.Tunnel;

namespace Roam.Replication.Tests;

/// <summary>Writes chunk streams as a sending relay does.</summary>
internal static class TunnelStreams
{
    public static byte[] Encode(IEnumerable<byte[]> chunks, bool compress) => Encode(chunks, compress, out _);

    /// <summary>The stream, and where each chunk starts in it.</summary>
    public static byte[] Encode(IEnumerable<byte[]> chunks, bool compress, out List<int> starts)
    {
        starts = [];
        var stream = new ArrayBufferWriter<byte>();
        using var writer = new TunnelChunkWriter(compress);
        foreach (var chunk in chunks)
        {
            starts.Add(stream.WrittenCount);
            chunk.CopyTo(writer.Input.Span);
            stream.Write(writer.Seal(chunk.Length).Span);
        }
        return stream.WrittenSpan.ToArray();
    }
}

/// <summary>
/// The checksummed chunks of a tunnel (a VM's memory stream), compressed or not: they round trip; a flipped bit anywhere
/// in a chunk (header or payload), a truncated or oversized one is refused with a typed <see cref="TunnelCorruptException"/>
/// naming the chunk, and nothing of it or after it is handed out; through two real relays, the destination's local side
/// gets only the verified bytes before the bad chunk and both relays report the corruption.
/// </summary>
public sealed class TunnelChecksumTests
{
    /// <summary>1..5 chunks of 1..16 KiB, text-like (LZ4 shrinks them) or random.</summary>
    private static readonly Gen<byte[][]> Chunks = Gen.Select(Gen.Int[1, 16 * 1024], Gen.Int[0, 10_000], Gen.Bool, (length, seed, random) =>
    {
        var rng = new Random(seed);
        var data = new byte[length];
        if (random) rng.NextBytes(data);
        else for (int i = 0; i < length; i++) data[i] = (byte)"page heartbeat 0000 "[(i + seed) % 20];
        return data;
    }).Array[1, 5];

    /// <summary>Reads chunks until the end or a corrupt one: what was handed out, and the exception (or null).</summary>
    private static (byte[] Delivered, TunnelCorruptException? Error) ReadAll(ReadOnlySequence<byte> buffer, bool ended = true)
    {
        var output = new MemoryStream();
        using var reader = new TunnelChunkReader();
        try
        {
            while (reader.TryRead(ref buffer, out var raw)) output.Write(raw.Span);
            if (ended && !buffer.IsEmpty) throw reader.Truncated();
            return (output.ToArray(), null);
        }
        catch (TunnelCorruptException ex)
        {
            // Sticky: nothing more comes out of a reader that found corruption.
            var again = Assert.Throws<TunnelCorruptException>(() => reader.TryRead(ref buffer, out _));
            Assert.Same(ex, again);
            return (output.ToArray(), ex);
        }
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void Checksummed_chunks_round_trip(bool compress)
    {
        Chunks.Sample(chunks =>
        {
            var stream = TunnelStreams.Encode(chunks, compress);
            foreach (var (name, sequence) in Sequences.Both(stream))
            {
                var (delivered, error) = ReadAll(sequence);
                Assert.True(error is null, $"{name}: {error?.Message}");
                Assert.Equal(chunks.SelectMany(c => c).ToArray(), delivered);
            }
            if (!compress) Assert.Equal(chunks.Sum(c => c.Length + TunnelChunks.HeaderSize), stream.Length);
        }, iter: 40);
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void A_flipped_bit_in_a_chunk_is_found_and_nothing_of_it_or_after_it_is_delivered(bool compress)
    {
        Gen.Select(Chunks, Gen.Int[0, int.MaxValue], Gen.Int[0, int.MaxValue], Gen.Int[0, 7], Gen.Bool, (chunks, which, at, bit, inHeader) => (chunks, which, at, bit, inHeader))
            .Sample(t =>
            {
                var stream = TunnelStreams.Encode(t.chunks, compress, out var starts);
                int k = t.which % t.chunks.Length;
                int end = k + 1 < starts.Count ? starts[k + 1] : stream.Length;
                int position = t.inHeader ? starts[k] + t.at % TunnelChunks.HeaderSize
                    : starts[k] + TunnelChunks.HeaderSize + t.at % (end - starts[k] - TunnelChunks.HeaderSize);
                stream[position] ^= (byte)(1 << t.bit);

                var (delivered, error) = ReadAll(Sequences.Whole(stream));
                if (error is null && compress && !t.inHeader)
                {
                    // A flip inside an LZ4 block can be harmless (a match offset now pointing at the same bytes of a
                    // repeated pattern): then what comes out is exactly what went in, which the checksum proves.
                    Assert.Equal(t.chunks.SelectMany(c => c).ToArray(), delivered);
                    return;
                }
                Assert.NotNull(error);
                Assert.Equal(k, error.Chunk);
                Assert.False(error.FoundByPeer);
                Assert.Equal(t.chunks.Take(k).Sum(c => (long)c.Length), error.Offset);
                Assert.Equal(t.chunks.Take(k).SelectMany(c => c).ToArray(), delivered);
                if (!t.inHeader && !compress) Assert.Equal(TunnelCorruption.ChecksumMismatch, error.Reason);
                Assert.StartsWith($"tunnel stream corrupt at chunk {k} ", error.Message);
            }, iter: 300);
    }

    [Fact]
    public void A_stream_cut_inside_a_header_or_payload_is_truncated()
    {
        byte[][] chunks = [new byte[1000], new byte[3000]];
        new Random(3).NextBytes(chunks[1]);
        var stream = TunnelStreams.Encode(chunks, compress: false, out var starts);
        foreach (int cut in new[] { starts[1] + 1, starts[1] + 7, starts[1] + TunnelChunks.HeaderSize - 1, starts[1] + TunnelChunks.HeaderSize + 10, stream.Length - 1 })
        {
            var (delivered, error) = ReadAll(Sequences.Whole(stream[..cut]));
            Assert.NotNull(error);
            Assert.Equal(TunnelCorruption.Truncated, error.Reason);
            Assert.Equal(1, error.Chunk);
            Assert.Equal(1000, error.Offset);
            Assert.Equal(chunks[0], delivered);
        }
        // Cut at a chunk boundary, the stream just ends.
        Assert.Null(ReadAll(Sequences.Whole(stream[..starts[1]])).Error);
    }

    public static TheoryData<string, uint, uint, TunnelCorruption> MalformedHeaders() => new()
    {
        { "payload beyond MaxChunk", (uint)TunnelChunks.MaxChunk + 1, 16, TunnelCorruption.Oversize },
        { "raw beyond MaxChunk", 16, (uint)TunnelChunks.MaxChunk + 1, TunnelCorruption.Oversize },
        { "the largest length", 0x00FF_FFFF, 0xFFFF_FFFF, TunnelCorruption.Oversize },
        { "no raw bytes", 0, 0, TunnelCorruption.MalformedHeader },
        { "stored, lengths differ", 10, 9, TunnelCorruption.MalformedHeader },
        { "LZ4 not smaller than raw", TunnelChunks.FlagLz4 | 16, 16, TunnelCorruption.MalformedHeader },
        { "LZ4 of nothing", TunnelChunks.FlagLz4, 16, TunnelCorruption.MalformedHeader },
        { "an unknown flag", 0x0400_0000 | 16, 16, TunnelCorruption.MalformedHeader },
        { "LZ4 and abort", TunnelChunks.FlagLz4 | TunnelChunks.FlagAbort | 8, 16, TunnelCorruption.MalformedHeader },
    };

    /// <summary>A bad header is refused as soon as the header is there (an oversized length is not waited for).</summary>
    [Theory]
    [MemberData(nameof(MalformedHeaders))]
    public void A_malformed_or_oversized_header_is_refused_at_once(string what, uint first, uint raw, TunnelCorruption reason)
    {
        var header = new byte[TunnelChunks.HeaderSize];
        BinaryPrimitives.WriteUInt32BigEndian(header, first);
        BinaryPrimitives.WriteUInt32BigEndian(header.AsSpan(4), raw);
        var (_, error) = ReadAll(Sequences.Whole(header), ended: false);
        Assert.True(error is not null, what);
        Assert.Equal(reason, error.Reason);
        Assert.Equal(0, error.Chunk);
    }

    [Fact]
    public void An_lz4_block_that_does_not_decode_is_refused()
    {
        var stream = new byte[TunnelChunks.HeaderSize + 8];
        BinaryPrimitives.WriteUInt32BigEndian(stream, TunnelChunks.FlagLz4 | 8);
        BinaryPrimitives.WriteUInt32BigEndian(stream.AsSpan(4), 64);
        stream.AsSpan(TunnelChunks.HeaderSize).Fill(0xFF);
        var (delivered, error) = ReadAll(Sequences.Whole(stream));
        Assert.Equal(TunnelCorruption.BadBlock, error?.Reason);
        Assert.Empty(delivered);
    }

    [Fact]
    public void A_chunk_moved_to_another_place_in_the_stream_fails_its_checksum()
    {
        byte[][] chunks = [[1, 2, 3], [4, 5, 6]];
        var stream = TunnelStreams.Encode(chunks, compress: false, out var starts);
        var swapped = stream[starts[1]..].Concat(stream[..starts[1]]).ToArray();
        var (delivered, error) = ReadAll(Sequences.Whole(swapped));
        Assert.Equal(TunnelCorruption.ChecksumMismatch, error?.Reason);
        Assert.Equal(0, error!.Chunk);
        Assert.Empty(delivered);
    }

    [Fact]
    public void An_abort_chunk_reports_the_peers_finding()
    {
        using var writer = new TunnelChunkWriter(compress: true);
        new byte[] { 9, 9, 9 }.CopyTo(writer.Input.Span);
        var stream = writer.Seal(3).ToArray().Concat(writer.Abort(new TunnelCorruptException(TunnelCorruption.ChecksumMismatch, 41, 123456)).ToArray()).ToArray();
        var (delivered, error) = ReadAll(Sequences.SegmentPerByte(stream));
        Assert.Equal(new byte[] { 9, 9, 9 }, delivered);
        Assert.NotNull(error);
        Assert.True(error.FoundByPeer);
        Assert.Equal((TunnelCorruption.ChecksumMismatch, 41L, 123456L), (error.Reason, error.Chunk, error.Offset));
    }

    /// <summary>
    /// Two real relays over an in-memory tunnel, the sender flipping a bit after 1 MiB (the end-to-end tests' fault
    /// injection): the receiver's local side gets exactly the chunks before the bad one, the receiving relay fails with
    /// the checksum mismatch, and the sending relay learns of it from the abort chunk and stops sending.
    /// </summary>
    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task Through_relays_a_corrupt_chunk_stops_the_stream_before_it_and_both_sides_know(bool compressed)
    {
        var (sourceTunnel, destinationTunnel) = TestPipes.Connected();
        var (qemuOut, relayIn) = TunnelCompressionTests.SocketPair();
        var (relayOut, qemuIn) = TunnelCompressionTests.SocketPair();
        long corruptedAt = -1;
        var sending = TunnelRelay.RunCheckedAsync(sourceTunnel, relayIn, localEndsIt: true, default,
            _ => sourceTunnel.Output.CompleteAsync().AsTask(), compressed: compressed,
            corruptForTests: end => { if (end <= 1 << 20) return false; corruptedAt = end; return true; });
        var receiving = TunnelRelay.RunCheckedAsync(destinationTunnel, relayOut, localEndsIt: false, default,
            _ => destinationTunnel.Output.CompleteAsync().AsTask(), compressed: compressed);

        var payload = new byte[4 << 20];
        new Random(11).NextBytes(payload);
        var writing = Task.Run(async () =>
        {
            try
            {
                for (int at = 0; at < payload.Length;) at += await qemuOut.SendAsync(payload.AsMemory(at, Math.Min(50_000, payload.Length - at)));
            }
            catch (SocketException) { } // the source relay stopped reading: it closed its side
        });
        var received = new MemoryStream();
        var reading = Task.Run(async () =>
        {
            var buffer = new byte[65536];
            try
            {
                int n;
                while ((n = await qemuIn.ReceiveAsync(buffer, SocketFlags.None)) > 0) received.Write(buffer, 0, n);
            }
            catch (SocketException) { }
        });

        var (_, _, sourceFailure) = await sending.WaitAsync(TimeSpan.FromSeconds(30));
        relayIn.Dispose();                                   // as VmService does: the source QEMU's socket closes
        await sourceTunnel.Output.CompleteAsync();           // and the tunnel with it
        var (_, _, destinationFailure) = await receiving.WaitAsync(TimeSpan.FromSeconds(30));
        relayOut.Dispose();
        await reading.WaitAsync(TimeSpan.FromSeconds(30));
        await writing.WaitAsync(TimeSpan.FromSeconds(30));

        var found = Assert.IsType<TunnelCorruptException>(destinationFailure);
        Assert.Equal(TunnelCorruption.ChecksumMismatch, found.Reason);
        Assert.False(found.FoundByPeer);
        var told = Assert.IsType<TunnelCorruptException>(sourceFailure);
        Assert.True(told.FoundByPeer);
        Assert.Equal((found.Reason, found.Chunk, found.Offset), (told.Reason, told.Chunk, told.Offset));
        // Exactly the verified chunks before the bad one reached the destination's local side, and they are intact.
        Assert.Equal(found.Offset, received.Length);
        Assert.True(found.Offset <= 1 << 20 && corruptedAt > found.Offset, $"corrupted the chunk ending at {corruptedAt}, found at {found.Offset}");
        Assert.True(payload.AsSpan(0, (int)received.Length).SequenceEqual(received.ToArray()), "the delivered prefix differs");
        foreach (var s in new[] { qemuOut, qemuIn }) s.Dispose();
    }

    [Fact]
    public async Task Through_a_relay_a_tunnel_that_ends_inside_a_chunk_is_truncated()
    {
        var (sourceTunnel, destinationTunnel) = TestPipes.Connected();
        var (relayOut, qemuIn) = TunnelCompressionTests.SocketPair();
        var receiving = TunnelRelay.RunCheckedAsync(destinationTunnel, relayOut, localEndsIt: false, default,
            _ => destinationTunnel.Output.CompleteAsync().AsTask());
        var stream = TunnelStreams.Encode([new byte[500], new byte[500]], compress: false);
        await sourceTunnel.Output.WriteAsync(stream.AsMemory(0, stream.Length - 100));
        await sourceTunnel.Output.CompleteAsync();
        var (_, _, failure) = await receiving.WaitAsync(TimeSpan.FromSeconds(30));
        var truncated = Assert.IsType<TunnelCorruptException>(failure);
        Assert.Equal((TunnelCorruption.Truncated, 1L, 500L), (truncated.Reason, truncated.Chunk, truncated.Offset));
        relayOut.Dispose();
        var buffer = new byte[2000];
        int total = 0, n;
        while ((n = await qemuIn.ReceiveAsync(buffer.AsMemory(total), SocketFlags.None)) > 0) total += n;
        Assert.Equal(500, total);
        qemuIn.Dispose();
    }
}
