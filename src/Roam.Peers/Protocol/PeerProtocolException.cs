namespace Roam.Peers.Protocol;

/// <summary>Why a peer connection was dropped; tests assert on these values, never on message text.</summary>
public enum PeerRejection
{
    BadMagic,
    UnknownFrameType,
    InvalidFlags,
    /// <summary>The length is impossible for the frame type (an Ack that is not 8 bytes).</summary>
    BadPayloadLength,
    /// <summary>The length is possible for the type but over this connection's maximum.</summary>
    PayloadTooLong,
    ChecksumMismatch,
    MalformedPayload,
    TruncatedFrame,
    UnexpectedFrame,
    UnsupportedVersion,
}

/// <summary>A connection-fatal protocol error: the stream cannot be resynchronised, so the connection ends.</summary>
public sealed class PeerProtocolException(PeerRejection rejection, string message) : Exception(message)
{
    public PeerRejection Rejection { get; } = rejection;
}
