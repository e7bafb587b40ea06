using System.Buffers;
using System.Buffers.Binary;
using K4os.Compression.LZ4;

using Roam.Peers.Protocol;

namespace Roam.Replication.Protocol;

/// <summary>
/// The data of a Write frame with <see cref="PeerFrameFlags.Lz4"/>: original length (u32, big-endian)
/// then one LZ4 block. A sender uses it only when it saves at least an eighth of the bytes; the
/// receiver checks the stated length before decoding and that the block decodes to exactly it.
/// </summary>
public static class WriteCompression
{
    /// <summary>Smaller writes are sent as they are: the frame header dwarfs what LZ4 could save.</summary>
    public const int MinLength = 4096;

    private const int PrefixLength = sizeof(uint);

    /// <summary>The buffer <see cref="TryCompress"/> needs for <paramref name="length"/> bytes of data.</summary>
    public static int BufferLength(int length) => PrefixLength + length;

    /// <summary>
    /// Compresses <paramref name="data"/> into <paramref name="destination"/> (at least
    /// <see cref="BufferLength"/> long). Returns the compressed form's length, or -1 when it would not
    /// save an eighth of the bytes (random or already compressed data: send it as it is).
    /// </summary>
    public static int TryCompress(ReadOnlySpan<byte> data, Span<byte> destination)
    {
        if (data.Length < MinLength) return -1;
        int budget = data.Length - data.Length / 8 - PrefixLength;
        // A target smaller than the input makes LZ4 give up as soon as the output outgrows it.
        int encoded = LZ4Codec.Encode(data, destination.Slice(PrefixLength, budget), LZ4Level.L00_FAST);
        if (encoded <= 0) return -1;
        BinaryPrimitives.WriteUInt32BigEndian(destination, (uint)data.Length);
        return PrefixLength + encoded;
    }

    /// <summary>The length the data decodes to, checked against the largest Write; throws on a malformed frame.</summary>
    public static int DecodedLength(in ReadOnlySequence<byte> compressed)
    {
        if (compressed.Length <= PrefixLength) PayloadReader.Malformed(PeerFrameType.Write, "compressed data too short");
        Span<byte> prefix = stackalloc byte[PrefixLength];
        compressed.Slice(0, PrefixLength).CopyTo(prefix);
        uint length = BinaryPrimitives.ReadUInt32BigEndian(prefix);
        if (length == 0 || length > PeerProtocol.MaxWriteDataLength)
            PayloadReader.Malformed(PeerFrameType.Write, $"compressed data claims {length} bytes (1..{PeerProtocol.MaxWriteDataLength})");
        return (int)length;
    }

    /// <summary>Decodes into <paramref name="destination"/> of exactly <see cref="DecodedLength"/> bytes; throws on a malformed block.</summary>
    public static void Decompress(in ReadOnlySequence<byte> compressed, Span<byte> destination)
    {
        var block = compressed.Slice(PrefixLength);
        byte[]? rented = null;
        try
        {
            ReadOnlySpan<byte> source;
            if (block.IsSingleSegment) source = block.FirstSpan;
            else
            {
                rented = ArrayPool<byte>.Shared.Rent((int)block.Length);
                block.CopyTo(rented);
                source = rented.AsSpan(0, (int)block.Length);
            }
            int decoded = LZ4Codec.Decode(source, destination);
            if (decoded != destination.Length)
                PayloadReader.Malformed(PeerFrameType.Write, $"the LZ4 block decodes to {(decoded < 0 ? "nothing valid" : decoded + " bytes")}, not the {destination.Length} it claims");
        }
        finally
        {
            if (rented is not null) ArrayPool<byte>.Shared.Return(rented);
        }
    }
}
