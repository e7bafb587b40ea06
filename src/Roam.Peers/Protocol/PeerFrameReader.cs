using System.Buffers;
using System.Buffers.Binary;
using System.IO.Pipelines;

namespace Roam.Peers.Protocol;

/// <summary>
/// Splits the peer byte stream into frames. Static and stateless: the caller owns the buffer and
/// follows the pipe contract (on false, AdvanceTo(consumed, examined: buffer.End) and read again).
/// </summary>
public static class PeerFrameReader
{
    /// <summary>
    /// Takes one whole frame off the front of <paramref name="buffer"/>. False means "need more bytes"
    /// and leaves the buffer as it was. The header is validated (magic, type, flags, length for the
    /// type and against <paramref name="maxPayload"/>) as soon as its 24 bytes are in, before any
    /// payload byte is awaited; the checksum once the payload is in. Any failure throws
    /// <see cref="PeerProtocolException"/>: after it nothing on the connection can be trusted.
    /// The payload is a slice of the caller's buffer, valid until the caller advances past it.
    /// </summary>
    public static bool TryRead(ref ReadOnlySequence<byte> buffer, int maxPayload, out PeerFrameHeader header, out ReadOnlySequence<byte> payload)
    {
        header = default;
        payload = default;
        if (buffer.Length < PeerProtocol.HeaderSize) return false;

        Span<byte> raw = stackalloc byte[PeerProtocol.HeaderSize];
        buffer.Slice(0, PeerProtocol.HeaderSize).CopyTo(raw);

        uint magic = BinaryPrimitives.ReadUInt32BigEndian(raw[PeerProtocol.MagicOffset..]);
        if (magic != PeerProtocol.Magic)
            Throw(PeerRejection.BadMagic, $"bad frame magic 0x{magic:x8}");

        var type = (PeerFrameType)BinaryPrimitives.ReadUInt16BigEndian(raw[PeerProtocol.TypeOffset..]);
        if (!Enum.IsDefined(type))
            Throw(PeerRejection.UnknownFrameType, $"unknown frame type {(ushort)type}");

        var flags = (PeerFrameFlags)BinaryPrimitives.ReadUInt16BigEndian(raw[PeerProtocol.FlagsOffset..]);
        if ((flags & ~PeerProtocol.AllowedFlags(type)) != 0)
            Throw(PeerRejection.InvalidFlags, $"flags 0x{(ushort)flags:x4} are not valid on {type}");

        ulong sequence = BinaryPrimitives.ReadUInt64BigEndian(raw[PeerProtocol.SequenceOffset..]);
        uint length = BinaryPrimitives.ReadUInt32BigEndian(raw[PeerProtocol.LengthOffset..]);
        if (!PeerProtocol.IsValidLength(type, length))
            Throw(PeerRejection.BadPayloadLength, $"{type} cannot have a {length}-byte payload");
        if (length > (uint)maxPayload)
            Throw(PeerRejection.PayloadTooLong, $"{type} payload of {length} bytes exceeds the maximum of {maxPayload}");

        if (buffer.Length - PeerProtocol.HeaderSize < length) return false;

        var body = buffer.Slice(PeerProtocol.HeaderSize, length);
        uint expected = BinaryPrimitives.ReadUInt32BigEndian(raw[PeerProtocol.ChecksumOffset..]);
        uint actual = Crc32C.Finish(Crc32C.Append(Crc32C.Append(Crc32C.Seed, raw[..PeerProtocol.ChecksumOffset]), body));
        if (actual != expected)
            Throw(PeerRejection.ChecksumMismatch, $"{type} frame {sequence}: checksum 0x{actual:x8}, header says 0x{expected:x8}");

        header = new PeerFrameHeader(type, flags, sequence, (int)length);
        payload = body;
        buffer = buffer.Slice(body.End);
        return true;
    }

    /// <summary>
    /// Reads one frame and copies its payload, so it outlives the pipe buffer. Null at a clean end of
    /// stream (between frames); an end inside a frame throws <see cref="PeerRejection.TruncatedFrame"/>.
    /// Meant for the handshake and other control traffic: the data path should loop over
    /// <see cref="TryRead"/> on the pipe's own buffer and skip the copy.
    /// </summary>
    public static async ValueTask<PeerFrame?> ReadFrameAsync(PipeReader input, int maxPayload, CancellationToken cancellationToken = default)
    {
        while (true)
        {
            var result = await input.ReadAsync(cancellationToken).ConfigureAwait(false);
            var buffer = result.Buffer;
            var consumed = buffer.Start;
            var examined = buffer.End;
            try
            {
                if (TryRead(ref buffer, maxPayload, out var header, out var payload))
                {
                    consumed = examined = buffer.Start;
                    return new PeerFrame(header, new ReadOnlySequence<byte>(payload.ToArray()));
                }
                if (result.IsCompleted)
                {
                    if (buffer.IsEmpty) return null;
                    Throw(PeerRejection.TruncatedFrame, $"the stream ended inside a frame ({buffer.Length} bytes buffered)");
                }
                if (result.IsCanceled) throw new OperationCanceledException("the read was cancelled");
            }
            finally
            {
                input.AdvanceTo(consumed, examined);
            }
        }
    }

    [System.Diagnostics.CodeAnalysis.DoesNotReturn]
    internal static void Throw(PeerRejection rejection, string message) => throw new PeerProtocolException(rejection, message);
}
