using System.Buffers;
using System.Buffers.Binary;
using System.IO.Hashing;
using K4os.Compression.LZ4;

namespace Roam.Peers.Tunnel;

/// <summary>
/// The framing of a tunnel's byte stream (a VM's memory migration, and QEMU's return path the other way): a sequence
/// of checksummed chunks, compressed or not. QEMU's stream has no checksum of its own, and TLS only guards the wire:
/// a bit flipped in a roamd's buffers, a relay bug or an LZ4 bug would be loaded by the destination QEMU and run. So
/// every chunk is verified before any of its bytes reach the local QEMU, and the first bad one ends the stream.
/// <para>
/// A chunk is a 16-byte header and a payload. Header, big-endian: u32 = flags (bits 24-31: <see cref="FlagLz4"/>,
/// <see cref="FlagAbort"/>, the rest must be 0) | payload length (bits 0-23, at most <see cref="MaxChunk"/>); u32 raw
/// length (1..<see cref="MaxChunk"/>); u64 checksum. The payload is the raw bytes as they are ("stored"), or an LZ4
/// block of them when both ends agreed on "lz4" and LZ4 saves at least a sixteenth.
/// </para>
/// <para>
/// Checksum: XxHash3-64 of the raw bytes, seeded with the XxHash3-64 of the chunk's index in the stream and the
/// header's first 8 bytes. So it covers the flags and lengths, the chunk's place in the stream (a lost, repeated or
/// reordered chunk fails too) and the bytes as QEMU wrote them (LZ4 encoding and decoding are checked end to end).
/// XxHash3 rather than CRC-32C or XxHash64: it is the fastest of the three (vectorised, tens of GB/s, far above
/// TLS and LZ4, so the memory copy does not slow down), its 64 bits make an undetected random corruption
/// vanishingly unlikely (2^-64 per chunk, against 2^-32 for a CRC), and the one-shot static call allocates nothing.
/// CRC's guarantees for short bursts matter on a raw wire, not behind TLS.
/// </para>
/// An abort chunk (<see cref="FlagAbort"/>, stored) tells the peer that this side found the stream it received corrupt:
/// its payload is the finding (u8 reason, u64 chunk, u64 offset), and nothing follows it.
/// </summary>
public static class TunnelChunks
{
    /// <summary>The name both ends agree on (VmTunnelRequest/Reply StreamChecksum).</summary>
    public const string Checksum = "xxh3-64";
    public const int HeaderSize = 16;
    public const int MaxChunk = 256 * 1024;
    public const int MaxFrame = HeaderSize + MaxChunk;
    public const uint FlagLz4 = 0x0100_0000;
    public const uint FlagAbort = 0x0200_0000;
    internal const uint LengthMask = 0x00FF_FFFF;
    internal const int AbortPayload = 17;

    /// <summary>The checksum of a chunk: see the class.</summary>
    public static ulong ChecksumOf(long index, ReadOnlySpan<byte> header8, ReadOnlySpan<byte> raw)
    {
        Span<byte> seed = stackalloc byte[16];
        BinaryPrimitives.WriteInt64BigEndian(seed, index);
        header8[..8].CopyTo(seed[8..]);
        return XxHash3.HashToUInt64(raw, unchecked((long)XxHash3.HashToUInt64(seed)));
    }
}

/// <summary>What was wrong with the stream.</summary>
public enum TunnelCorruption
{
    /// <summary>The chunk's bytes do not match its checksum.</summary>
    ChecksumMismatch = 1,
    /// <summary>Unknown flags, a zero or inconsistent length.</summary>
    MalformedHeader = 2,
    /// <summary>A length beyond <see cref="TunnelChunks.MaxChunk"/>.</summary>
    Oversize = 3,
    /// <summary>The stream ended inside a chunk (its header or payload).</summary>
    Truncated = 4,
    /// <summary>An LZ4 block that does not decode to the length it claims.</summary>
    BadBlock = 5,
}

/// <summary>
/// The tunnel's stream is corrupt at <see cref="Chunk"/>: nothing of that chunk, nor anything after it, was passed on.
/// <see cref="FoundByPeer"/>: the peer found it in what this side sent (and said so in an abort chunk).
/// </summary>
public sealed class TunnelCorruptException(TunnelCorruption reason, long chunk, long offset, bool foundByPeer = false)
    : IOException($"tunnel stream corrupt at chunk {chunk} (stream offset {offset}): {Describe(reason)}{(foundByPeer ? ", found by the peer" : "")}")
{
    public TunnelCorruption Reason { get; } = reason;

    /// <summary>The chunk's index in its stream (0 is the first).</summary>
    public long Chunk { get; } = chunk;

    /// <summary>The raw bytes of the stream before the chunk (all of them passed on).</summary>
    public long Offset { get; } = offset;

    public bool FoundByPeer { get; } = foundByPeer;

    public string ReasonText => Describe(Reason);

    public static string Describe(TunnelCorruption reason) => reason switch
    {
        TunnelCorruption.ChecksumMismatch => "checksum mismatch",
        TunnelCorruption.MalformedHeader => "malformed header",
        TunnelCorruption.Oversize => "oversized chunk",
        TunnelCorruption.Truncated => "truncated: the stream ended inside it",
        TunnelCorruption.BadBlock => "LZ4 block does not decode",
        _ => $"reason {(int)reason}",
    };
}

/// <summary>One direction's sender: frames what is received into <see cref="Input"/> as the next chunk. Not thread-safe.</summary>
public sealed class TunnelChunkWriter : IDisposable
{
    private readonly byte[] _frame = ArrayPool<byte>.Shared.Rent(TunnelChunks.MaxFrame);
    private readonly byte[]? _raw;

    /// <param name="compress">Both ends agreed on LZ4: chunks it shrinks go as LZ4 blocks.</param>
    public TunnelChunkWriter(bool compress)
    {
        if (compress) _raw = ArrayPool<byte>.Shared.Rent(TunnelChunks.MaxChunk);
    }

    /// <summary>Where the next chunk's raw bytes go (up to <see cref="TunnelChunks.MaxChunk"/>): uncompressed, right
    /// behind the header, so a stored chunk costs no copy.</summary>
    public Memory<byte> Input => _raw is null ? _frame.AsMemory(TunnelChunks.HeaderSize, TunnelChunks.MaxChunk) : _raw.AsMemory(0, TunnelChunks.MaxChunk);

    /// <summary>Chunks sealed so far (the next one's index).</summary>
    public long Chunks { get; private set; }

    /// <summary>Raw bytes sealed so far.</summary>
    public long Offset { get; private set; }

    /// <summary>Frames the <paramref name="length"/> bytes just put into <see cref="Input"/>; the frame stays valid until the next call.</summary>
    /// <param name="flipBitForTests">Fault injection: the chunk is stored, and one payload bit flipped after its checksum was computed.</param>
    public ReadOnlyMemory<byte> Seal(int length, bool flipBitForTests = false)
    {
        if (length is < 1 or > TunnelChunks.MaxChunk) throw new ArgumentOutOfRangeException(nameof(length));
        var body = _frame.AsSpan(TunnelChunks.HeaderSize, length);
        int payload = length;
        uint flags = 0;
        if (_raw is not null)
        {
            var raw = _raw.AsSpan(0, length);
            // A target a sixteenth smaller than the input makes LZ4 give up as soon as it would not pay.
            int encoded = flipBitForTests ? 0 : LZ4Codec.Encode(raw, body[..(length - Math.Max(1, length / 16))], LZ4Level.L00_FAST);
            if (encoded > 0)
            {
                payload = encoded;
                flags = TunnelChunks.FlagLz4;
            }
            else raw.CopyTo(body);
        }
        var frame = Finish(flags, payload, length, _raw is null ? body : _raw.AsSpan(0, length));
        if (flipBitForTests) _frame[TunnelChunks.HeaderSize + length / 2] ^= 0x10;
        return frame;
    }

    /// <summary>An abort chunk: this side found the stream it receives corrupt (the last chunk this writer sends).</summary>
    public ReadOnlyMemory<byte> Abort(TunnelCorruptException finding)
    {
        var body = _frame.AsSpan(TunnelChunks.HeaderSize, TunnelChunks.AbortPayload);
        body[0] = (byte)finding.Reason;
        BinaryPrimitives.WriteInt64BigEndian(body[1..], finding.Chunk);
        BinaryPrimitives.WriteInt64BigEndian(body[9..], finding.Offset);
        return Finish(TunnelChunks.FlagAbort, TunnelChunks.AbortPayload, TunnelChunks.AbortPayload, body);
    }

    private ReadOnlyMemory<byte> Finish(uint flags, int payload, int rawLength, ReadOnlySpan<byte> raw)
    {
        var header = _frame.AsSpan(0, TunnelChunks.HeaderSize);
        BinaryPrimitives.WriteUInt32BigEndian(header, flags | (uint)payload);
        BinaryPrimitives.WriteUInt32BigEndian(header[4..], (uint)rawLength);
        BinaryPrimitives.WriteUInt64BigEndian(header[8..], TunnelChunks.ChecksumOf(Chunks, header, raw));
        Chunks++;
        Offset += rawLength;
        return _frame.AsMemory(0, TunnelChunks.HeaderSize + payload);
    }

    public void Dispose()
    {
        ArrayPool<byte>.Shared.Return(_frame);
        if (_raw is not null) ArrayPool<byte>.Shared.Return(_raw);
    }
}

/// <summary>
/// One direction's receiver: takes verified chunks off the front of a buffer. After a corrupt chunk it refuses
/// everything (the same exception again): nothing of that chunk or after it is ever handed out. Not thread-safe.
/// </summary>
public sealed class TunnelChunkReader : IDisposable
{
    private readonly byte[] _raw = ArrayPool<byte>.Shared.Rent(TunnelChunks.MaxChunk);
    private byte[]? _block;
    private TunnelCorruptException? _failed;

    /// <summary>Chunks verified so far (the next one's index).</summary>
    public long Chunks { get; private set; }

    /// <summary>Raw bytes verified so far.</summary>
    public long Offset { get; private set; }

    /// <summary>
    /// Verifies the first chunk of <paramref name="buffer"/> and moves <paramref name="buffer"/> past it; false (nothing
    /// consumed) when it is not all there yet. <paramref name="raw"/> is valid until the next call.
    /// </summary>
    /// <exception cref="TunnelCorruptException">The chunk is corrupt, or the peer's abort chunk says what it sent was.</exception>
    public bool TryRead(ref ReadOnlySequence<byte> buffer, out ReadOnlyMemory<byte> raw)
    {
        raw = default;
        if (_failed is not null) throw _failed;
        if (buffer.Length < TunnelChunks.HeaderSize) return false;
        Span<byte> header = stackalloc byte[TunnelChunks.HeaderSize];
        buffer.Slice(0, TunnelChunks.HeaderSize).CopyTo(header);
        uint first = BinaryPrimitives.ReadUInt32BigEndian(header);
        uint flags = first & ~TunnelChunks.LengthMask;
        long payload = first & TunnelChunks.LengthMask;
        long rawLength = BinaryPrimitives.ReadUInt32BigEndian(header[4..]);
        bool lz4 = flags == TunnelChunks.FlagLz4, abort = flags == TunnelChunks.FlagAbort;
        if (flags != 0 && !lz4 && !abort) throw Fail(TunnelCorruption.MalformedHeader);
        if (payload > TunnelChunks.MaxChunk || rawLength > TunnelChunks.MaxChunk) throw Fail(TunnelCorruption.Oversize);
        if (rawLength < 1 || (lz4 ? payload < 1 || payload >= rawLength : payload != rawLength)
            || (abort && rawLength != TunnelChunks.AbortPayload)) throw Fail(TunnelCorruption.MalformedHeader);
        if (buffer.Length < TunnelChunks.HeaderSize + payload) return false;
        var body = buffer.Slice(TunnelChunks.HeaderSize, payload);
        var target = _raw.AsSpan(0, (int)rawLength);
        if (!lz4) body.CopyTo(target);
        else
        {
            ReadOnlySpan<byte> block;
            if (body.IsSingleSegment) block = body.FirstSpan;
            else
            {
                _block ??= ArrayPool<byte>.Shared.Rent(TunnelChunks.MaxChunk);
                body.CopyTo(_block);
                block = _block.AsSpan(0, (int)payload);
            }
            if (LZ4Codec.Decode(block, target) != target.Length) throw Fail(TunnelCorruption.BadBlock);
        }
        if (TunnelChunks.ChecksumOf(Chunks, header, target) != BinaryPrimitives.ReadUInt64BigEndian(header[8..]))
            throw Fail(TunnelCorruption.ChecksumMismatch);
        if (abort)
        {
            var reason = (TunnelCorruption)target[0];
            throw _failed = new TunnelCorruptException(Enum.IsDefined(reason) ? reason : TunnelCorruption.MalformedHeader,
                BinaryPrimitives.ReadInt64BigEndian(target[1..]), BinaryPrimitives.ReadInt64BigEndian(target[9..]), foundByPeer: true);
        }
        buffer = buffer.Slice(body.End);
        Chunks++;
        Offset += rawLength;
        raw = _raw.AsMemory(0, (int)rawLength);
        return true;
    }

    /// <summary>The stream ended inside a chunk: the exception to fail with.</summary>
    public TunnelCorruptException Truncated() => _failed ?? Fail(TunnelCorruption.Truncated);

    private TunnelCorruptException Fail(TunnelCorruption reason) => _failed = new TunnelCorruptException(reason, Chunks, Offset);

    public void Dispose()
    {
        ArrayPool<byte>.Shared.Return(_raw);
        if (_block is not null) ArrayPool<byte>.Shared.Return(_block);
    }
}
