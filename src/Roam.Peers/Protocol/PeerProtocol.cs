namespace Roam.Peers.Protocol;

/// <summary>
/// Wire constants of the Roam peer protocol, spoken between two roamd hosts inside a mutually
/// authenticated TLS 1.3 stream. Every number on the wire is big-endian; a volume id is the 16
/// bytes of its Guid in RFC 9562 (big-endian) order.
///
/// Every frame is a 24-byte header and a payload:
///
///    0                   1                   2                   3
///    0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
///   +---------------------------------------------------------------+
///   |                   magic "RMPF" (0x524D5046)                   |  0
///   +-------------------------------+-------------------------------+
///   |          type (u16)           |          flags (u16)          |  4
///   +-------------------------------+-------------------------------+
///   |                        sequence (u64)                         |  8
///   |                                                               |
///   +---------------------------------------------------------------+
///   |                    payload length (u32)                       | 16
///   +---------------------------------------------------------------+
///   |     CRC32C of header bytes 0..19 followed by the payload      | 20
///   +---------------------------------------------------------------+
///   |                  payload (length bytes) ...                   | 24
///
/// Payloads, by type:
///   Hello      min version (u16) | max version (u16) | name length (u8) | host name (UTF-8)
///   HelloAck   version (u16) | name length (u8) | host name (UTF-8)
///   Write      volume id (16) | offset (u64) | data (the rest, at least one byte); with flag Lz4 (version 2),
///              data is: original length (u32) | one LZ4 block that decodes to exactly that many bytes
///   Zero       volume id (16) | offset (u64) | length (u64)
///   Flush      volume id (16)
///   Ack        sequence being acknowledged (u64)
///   Error      sequence it answers, 0 for the connection (u64) | code (u32) | message length (u16) | message (UTF-8)
///   Heartbeat  (empty)
///   Attach     volume id (16) | size (u64) | generations | name length (u8) | volume name (UTF-8)
///   AttachAck  flags (u8: 1 created, 2 primary here, 4 diverged) | generations
///              [with flag 4 (version 3): range count (u32) | ranges, each offset (u64) | length (u64), ascending:
///              the regions a split brain's loser wrote since it parted from the attaching host]
///   Generations volume id (16) | generations
///   HandOver   volume id (16) | generations (the new primary's) | flags (u8: 1 keep the old primary as replica, 2 async link)
///              [version 3, optional: replica count (u8) | replicas], the old primary's other replicas, each:
///              name length (u8) | peer name (UTF-8) | flags (u8: 1 async, 2 paused) | bandwidth (u64) |
///              synced generation (16, zero: none) | extent count (u32) | extents (offset u64 | length u64, ascending, apart)
///   Detach     name length (u8) | volume name (UTF-8): instead of Attach, stop replicating it here (answered by Ack)
///   where generations = current (16) | history count (u8) | history (16 x count)
///
/// Replication: the primary opens one connection per (volume, replica), sends Attach and waits for
/// AttachAck (or Error); then Write/Zero/Flush/Generations follow, each acknowledged by sequence.
/// A live migration ends with HandOver after a Flush: its Ack means the replica is now the primary.
///
/// Handshake, client first, right after TLS: C: Hello, S: HelloAck with the chosen version (or
/// Error UnsupportedVersion, then close). TLS already protects the bytes in flight; the CRC guards
/// the path TLS does not cover (buffers, copies, bugs) from one roamd's memory to the other's.
/// </summary>
public static class PeerProtocol
{
    public const uint Magic = 0x524D5046;                  // "RMPF": Roam peer frame

    /// <summary>The protocol versions this build speaks, negotiated by Hello/HelloAck.</summary>
    public const ushort MinVersion = 1;
    public const ushort Version = 3;

    /// <summary>The first version whose receivers understand <see cref="PeerFrameFlags.Lz4"/>.</summary>
    public const ushort CompressionVersion = 2;

    /// <summary>The first version whose HandOver may carry the old primary's other replicas (the replicas part of a HandOver payload).</summary>
    public const ushort HandOverReplicasVersion = 3;

    /// <summary>The first version whose primaries understand the diverged flag (4) in AttachAck.</summary>
    public const ushort DivergedRegionsVersion = 3;

    /// <summary>TLS ALPN name, so that no other TLS protocol can be confused with this one.</summary>
    public const string ApplicationProtocol = "roam-peer/1";

    /// <summary>The default TCP port of the peer listener (next to NBD's 10809).</summary>
    public const int DefaultPort = 10810;

    public const int HeaderSize = 24;
    public const int MagicOffset = 0;
    public const int TypeOffset = 4;
    public const int FlagsOffset = 6;
    public const int SequenceOffset = 8;
    public const int LengthOffset = 16;
    public const int ChecksumOffset = 20;

    public const int VolumeIdLength = 16;

    /// <summary>Host names in Hello/HelloAck: at most 255 bytes of UTF-8 (a DNS name is at most 253).</summary>
    public const int MaxHostNameLength = 255;

    /// <summary>Generation history entries a frame may carry.</summary>
    public const int MaxGenerationsHistory = 32;

    /// <summary>
    /// Diverged ranges an AttachAck may carry (64 KiB of them): a loser's bitmap with more runs is sent
    /// coarser (neighbouring runs merged), which only copies more, never less.
    /// </summary>
    public const int MaxDivergedRanges = 4096;

    /// <summary>Volume names in Attach: at most 255 bytes of UTF-8.</summary>
    public const int MaxVolumeNameLength = 255;

    /// <summary>Error messages longer than this are cut on the way out.</summary>
    public const int MaxErrorMessageLength = 1024;

    /// <summary>Other replicas one HandOver may hand to the new primary (more are left behind, logged).</summary>
    public const int MaxHandOverReplicas = 16;

    /// <summary>
    /// Out-of-sync ranges per handed-over replica: a more scattered bitmap is sent coarser (ranges merged across
    /// their smallest gaps), which only copies more. Bounds the frame to about 1 MiB whatever the volume size.
    /// </summary>
    public const int MaxHandOverExtents = 4096;

    /// <summary>Largest data of one Write frame.</summary>
    public const int MaxWriteDataLength = 4 * 1024 * 1024;

    // Payload lengths of every frame type: the reader checks them from the header alone, so they are part of the
    // wire format here, whichever layer (this channel, replication) reads and writes the payloads.
    public const int WriteFixedLength = VolumeIdLength + sizeof(ulong);
    public const int ZeroLength = VolumeIdLength + sizeof(ulong) + sizeof(ulong);
    public const int FlushLength = VolumeIdLength;
    public const int AckLength = sizeof(ulong);
    public const int AttachFixedLength = VolumeIdLength + sizeof(ulong) + 16 + sizeof(byte) + sizeof(byte);
    public const int AttachAckFixedLength = sizeof(byte) + 16 + sizeof(byte);
    public const int DivergedRangeLength = 2 * sizeof(ulong);
    public const int AttachAckMaxLength = AttachAckFixedLength + MaxGenerationsHistory * 16 + sizeof(uint) + MaxDivergedRanges * DivergedRangeLength;
    public const int GenerationsFixedLength = VolumeIdLength + 16 + sizeof(byte);
    public const int HandOverFixedLength = VolumeIdLength + 16 + sizeof(byte) + sizeof(byte);
    public const int HandOverReplicaFixedLength = sizeof(byte) + sizeof(byte) + sizeof(ulong) + 16 + sizeof(uint);
    public const int HandOverReplicaMaxLength = HandOverReplicaFixedLength + MaxHostNameLength + MaxHandOverExtents * 16;
    public const int HandOverMaxReplicasLength = sizeof(byte) + MaxHandOverReplicas * HandOverReplicaMaxLength;
    public const int DetachFixedLength = sizeof(byte);

    /// <summary>A maximum payload that admits every frame this build sends.</summary>
    public const int DefaultMaxPayload = WriteFixedLength + MaxWriteDataLength;

    /// <summary>The maximum payload during the handshake: Hello, HelloAck and Error are all small.</summary>
    public const int MaxHandshakePayload = 2048;

    /// <summary>
    /// The payload lengths a frame type may have. The reader checks them with the header alone, so a
    /// bad length is refused before a single payload byte is waited for (Kestrel's max-frame check).
    /// </summary>
    public static bool IsValidLength(PeerFrameType type, uint length) => type switch
    {
        PeerFrameType.Hello => length is >= PeerHello.FixedLength and <= PeerHello.FixedLength + MaxHostNameLength,
        PeerFrameType.HelloAck => length is >= PeerHelloAck.FixedLength and <= PeerHelloAck.FixedLength + MaxHostNameLength,
        PeerFrameType.Write => length > WriteFixedLength,
        PeerFrameType.Zero => length == ZeroLength,
        PeerFrameType.Flush => length == FlushLength,
        PeerFrameType.Ack => length == AckLength,
        PeerFrameType.Error => length is >= PeerError.FixedLength and <= PeerError.FixedLength + MaxErrorMessageLength,
        PeerFrameType.Heartbeat => length == 0,
        PeerFrameType.Attach => length is >= AttachFixedLength + 1 and <= AttachFixedLength + MaxGenerationsHistory * 16 + MaxVolumeNameLength,
        PeerFrameType.AttachAck => length is >= AttachAckFixedLength and <= AttachAckMaxLength,
        PeerFrameType.Generations => length is >= GenerationsFixedLength and <= GenerationsFixedLength + MaxGenerationsHistory * 16,
        PeerFrameType.HandOver => length is >= HandOverFixedLength and <= HandOverFixedLength + MaxGenerationsHistory * 16 + HandOverMaxReplicasLength,
        PeerFrameType.Detach => length is >= DetachFixedLength + 1 and <= DetachFixedLength + MaxVolumeNameLength,
        _ => false,
    };

    /// <summary>The flags a frame type may carry; any other bit is a protocol error.</summary>
    public static PeerFrameFlags AllowedFlags(PeerFrameType type) => type switch
    {
        PeerFrameType.Write => PeerFrameFlags.Fua | PeerFrameFlags.Lz4,
        PeerFrameType.Zero => PeerFrameFlags.Fua,
        _ => PeerFrameFlags.None,
    };
}

public enum PeerFrameType : ushort
{
    Hello = 1,
    HelloAck = 2,
    Write = 3,
    Zero = 4,
    Flush = 5,
    Ack = 6,
    Error = 7,
    Heartbeat = 8,
    Attach = 9,
    AttachAck = 10,
    Generations = 11,
    HandOver = 12,
    Detach = 13,
}

[Flags]
public enum PeerFrameFlags : ushort
{
    None = 0,
    /// <summary>Write/Zero: make the range durable before acknowledging it (NBD's FUA).</summary>
    Fua = 1 << 0,
    /// <summary>Write: the data is LZ4-compressed (protocol version 2 and later).</summary>
    Lz4 = 1 << 1,
}

/// <summary>The code of an Error frame.</summary>
public enum PeerErrorCode : uint
{
    None = 0,
    UnsupportedVersion = 1,
    ProtocolError = 2,
    UnknownVolume = 3,
    OutOfRange = 4,
    IoError = 5,
    NoSpace = 6,
    ShuttingDown = 7,
    Internal = 8,
}
