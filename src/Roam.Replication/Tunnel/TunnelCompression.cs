using System.Buffers;
using System.Buffers.Binary;
using K4os.Compression.LZ4;

namespace Roam.Replication.Tunnel;

/// <summary>
/// The compressed form of a tunnel's raw byte stream (a VM's memory migration, when both roamds agree on "lz4"):
/// a sequence of chunks, each an 8-byte header (u32 big-endian: bit 31 set for an LZ4 block, bits 0-30 the
/// encoded length; u32 big-endian: the raw length, 1..<see cref="MaxChunk"/>) and the encoded bytes. A chunk
/// that LZ4 does not shrink by at least a sixteenth is stored as it is. A guest's memory halves under LZ4
/// (QEMU already sends zero pages as flags), and on a slow link every byte saved shortens the copy and the
/// final pass inside the VM's pause. TLS below guards integrity; the decoder still refuses any length or
/// block that does not add up, so a corrupt stream ends the relay instead of feeding QEMU garbage.
/// </summary>
public static class TunnelCompression
{
    public const string Lz4 = "lz4";
    public const int HeaderSize = 8;
    public const int MaxChunk = 256 * 1024;
    private const uint CompressedFlag = 0x8000_0000;

    /// <summary>Room for one encoded chunk of up to <see cref="MaxChunk"/> raw bytes.</summary>
    public static int MaxEncodedLength => HeaderSize + MaxChunk;

    /// <summary>Encodes <paramref name="raw"/> (1..MaxChunk bytes) as one chunk; returns the bytes written.</summary>
    public static int Encode(ReadOnlySpan<byte> raw, Span<byte> destination)
    {
        if (raw.IsEmpty || raw.Length > MaxChunk) throw new ArgumentOutOfRangeException(nameof(raw));
        var body = destination.Slice(HeaderSize, raw.Length);
        // A target a sixteenth smaller than the input makes LZ4 give up as soon as it would not pay.
        int encoded = LZ4Codec.Encode(raw, body[..(raw.Length - Math.Max(1, raw.Length / 16))], LZ4Level.L00_FAST);
        bool compressed = encoded > 0;
        if (!compressed)
        {
            raw.CopyTo(body);
            encoded = raw.Length;
        }
        BinaryPrimitives.WriteUInt32BigEndian(destination, (uint)encoded | (compressed ? CompressedFlag : 0));
        BinaryPrimitives.WriteUInt32BigEndian(destination[4..], (uint)raw.Length);
        return HeaderSize + encoded;
    }

    /// <summary>
    /// Decodes the first chunk of <paramref name="buffer"/> into <paramref name="destination"/> (MaxChunk bytes) and
    /// moves <paramref name="buffer"/> past it; false (nothing consumed) when the chunk is not all there yet.
    /// </summary>
    /// <exception cref="InvalidDataException">The chunk is malformed.</exception>
    public static bool TryDecode(ref ReadOnlySequence<byte> buffer, Span<byte> destination, out int rawLength)
    {
        rawLength = 0;
        if (buffer.Length < HeaderSize) return false;
        Span<byte> header = stackalloc byte[HeaderSize];
        buffer.Slice(0, HeaderSize).CopyTo(header);
        uint first = BinaryPrimitives.ReadUInt32BigEndian(header);
        bool compressed = (first & CompressedFlag) != 0;
        long encoded = first & ~CompressedFlag;
        long raw = BinaryPrimitives.ReadUInt32BigEndian(header[4..]);
        if (raw is < 1 or > MaxChunk) throw new InvalidDataException($"tunnel chunk claims {raw} raw bytes (1..{MaxChunk})");
        if (compressed ? encoded is < 1 || encoded >= raw : encoded != raw)
            throw new InvalidDataException($"tunnel chunk of {raw} raw bytes claims {encoded} encoded bytes{(compressed ? " of LZ4" : " stored")}");
        if (buffer.Length < HeaderSize + encoded) return false;
        var body = buffer.Slice(HeaderSize, encoded);
        var target = destination[..(int)raw];
        if (!compressed) body.CopyTo(target);
        else if (body.IsSingleSegment) Decode(body.FirstSpan, target);
        else
        {
            var contiguous = ArrayPool<byte>.Shared.Rent((int)encoded);
            try
            {
                body.CopyTo(contiguous);
                Decode(contiguous.AsSpan(0, (int)encoded), target);
            }
            finally { ArrayPool<byte>.Shared.Return(contiguous); }
        }
        buffer = buffer.Slice(body.End);
        rawLength = (int)raw;
        return true;
    }

    private static void Decode(ReadOnlySpan<byte> block, Span<byte> target)
    {
        int decoded = LZ4Codec.Decode(block, target);
        if (decoded != target.Length)
            throw new InvalidDataException($"tunnel chunk's LZ4 block decodes to {(decoded < 0 ? "nothing valid" : decoded + " bytes")}, not the {target.Length} it claims");
    }
}
