using System.Buffers;
using System.Text;

namespace Roam.Peers.Protocol;

/// <summary>Field readers shared by the payload types; a short or inconsistent payload is <see cref="PeerRejection.MalformedPayload"/>.</summary>
public static class PayloadReader
{
    // Hosts names and messages come from another machine: refuse invalid UTF-8 instead of
    // smuggling U+FFFD into logs and comparisons.
    private static readonly UTF8Encoding StrictUtf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);

    public static Guid ReadGuid(ref SequenceReader<byte> reader, PeerFrameType type)
    {
        Span<byte> bytes = stackalloc byte[PeerProtocol.VolumeIdLength];
        if (!reader.TryCopyTo(bytes)) Malformed(type, "volume id is cut short");
        reader.Advance(PeerProtocol.VolumeIdLength);
        return new Guid(bytes, bigEndian: true);
    }

    public static ushort ReadUInt16(ref SequenceReader<byte> reader, PeerFrameType type)
    {
        if (!reader.TryReadBigEndian(out short value)) Malformed(type, "payload is cut short");
        return (ushort)value;
    }

    public static uint ReadUInt32(ref SequenceReader<byte> reader, PeerFrameType type)
    {
        if (!reader.TryReadBigEndian(out int value)) Malformed(type, "payload is cut short");
        return (uint)value;
    }

    public static ulong ReadUInt64(ref SequenceReader<byte> reader, PeerFrameType type)
    {
        if (!reader.TryReadBigEndian(out long value)) Malformed(type, "payload is cut short");
        return (ulong)value;
    }

    /// <summary>Reads <paramref name="length"/> bytes of UTF-8 that must end the payload exactly.</summary>
    public static string ReadFinalText(ref SequenceReader<byte> reader, int length, PeerFrameType type)
    {
        if (reader.Remaining != length) Malformed(type, $"text length {length} does not match the {reader.Remaining} bytes left");
        var bytes = reader.UnreadSequence;
        reader.AdvanceToEnd();
        try
        {
            return StrictUtf8.GetString(bytes);
        }
        catch (DecoderFallbackException)
        {
            Malformed(type, "text is not valid UTF-8");
            return null;
        }
    }

    /// <summary>Reads <paramref name="length"/> bytes of UTF-8 with more payload after them.</summary>
    public static string ReadText(ref SequenceReader<byte> reader, int length, PeerFrameType type)
    {
        if (reader.Remaining < length) Malformed(type, "text is cut short");
        var bytes = reader.UnreadSequence.Slice(0, length);
        reader.Advance(length);
        try
        {
            return StrictUtf8.GetString(bytes);
        }
        catch (DecoderFallbackException)
        {
            Malformed(type, "text is not valid UTF-8");
            return null;
        }
    }

    public static void ExpectEnd(ref SequenceReader<byte> reader, PeerFrameType type)
    {
        if (!reader.End) Malformed(type, $"{reader.Remaining} unexpected bytes after the payload");
    }

    [System.Diagnostics.CodeAnalysis.DoesNotReturn]
    public static void Malformed(PeerFrameType type, string why) =>
        throw new PeerProtocolException(PeerRejection.MalformedPayload, $"malformed {type} payload: {why}");
}
