namespace Roam.Nbd.Protocol;

/// <summary>
/// Wire constants of the NBD protocol (NetworkBlockDevice/nbd doc/proto.md), fixed newstyle only.
/// Every number on the wire is big-endian.
///
/// Handshake, server first:
///   S: "NBDMAGIC" (u64) | IHAVEOPT (u64) | handshake flags (u16)
///   C: client flags (u32)
///   C: IHAVEOPT (u64) | option (u32) | length (u32) | data[length]            (repeated)
///   S: ReplyMagic (u64) | option (u32) | reply type (u32) | length (u32) | data
///
/// Transmission:
///   request      magic 0x25609513 (u32) | flags (u16) | type (u16) | cookie (u64) | offset (u64) | length (u32) | [data]
///   simple reply magic 0x67446698 (u32) | error (u32) | cookie (u64) | [data]
///   structured   magic 0x668e33ef (u32) | flags (u16) | type (u16) | cookie (u64) | length (u32) | payload
/// </summary>
public static class NbdProtocol
{
    public const ulong InitMagic = 0x4e42444d41474943;        // "NBDMAGIC"
    public const ulong OptionMagic = 0x49484156454F5054;      // "IHAVEOPT"
    public const ulong OptionReplyMagic = 0x0003e889045565a9;
    public const uint RequestMagic = 0x25609513;
    public const uint SimpleReplyMagic = 0x67446698;
    public const uint StructuredReplyMagic = 0x668e33ef;

    public const int RequestHeaderSize = 28;
    public const int SimpleReplyHeaderSize = 16;
    public const int StructuredReplyHeaderSize = 20;
    public const int OptionHeaderSize = 16;
    public const int OptionReplyHeaderSize = 20;

    /// <summary>Strings (export names, messages) must not exceed 4096 bytes.</summary>
    public const int MaxStringLength = 4096;

    /// <summary>Largest option payload accepted; anything larger cannot be a legitimate option here.</summary>
    public const int MaxOptionLength = 64 * 1024;

    /// <summary>Largest READ/WRITE/CACHE payload; advertised as the maximum block size.</summary>
    public const int MaxPayloadLength = 32 * 1024 * 1024;

    public const int MinBlockSize = 1;
    public const int PreferredBlockSize = 4096;

    public const string BaseAllocationContext = "base:allocation";
    public const uint BaseAllocationContextId = 1;
}

[Flags]
public enum NbdHandshakeFlags : ushort
{
    FixedNewstyle = 1 << 0,
    NoZeroes = 1 << 1,
}

[Flags]
public enum NbdClientFlags : uint
{
    FixedNewstyle = 1 << 0,
    NoZeroes = 1 << 1,
}

public enum NbdOption : uint
{
    ExportName = 1,
    Abort = 2,
    List = 3,
    PeekExport = 4,
    StartTls = 5,
    Info = 6,
    Go = 7,
    StructuredReply = 8,
    ListMetaContext = 9,
    SetMetaContext = 10,
    ExtendedHeaders = 11,
}

public enum NbdOptionReply : uint
{
    Ack = 1,
    Server = 2,
    Info = 3,
    MetaContext = 4,
    ErrUnsupported = 0x80000000 | 1,
    ErrPolicy = 0x80000000 | 2,
    ErrInvalid = 0x80000000 | 3,
    ErrPlatform = 0x80000000 | 4,
    ErrTlsRequired = 0x80000000 | 5,
    ErrUnknown = 0x80000000 | 6,
    ErrShutdown = 0x80000000 | 7,
    ErrBlockSizeRequired = 0x80000000 | 8,
    ErrTooBig = 0x80000000 | 9,
}

public enum NbdInfo : ushort
{
    Export = 0,
    Name = 1,
    Description = 2,
    BlockSize = 3,
}

[Flags]
public enum NbdTransmissionFlags : ushort
{
    HasFlags = 1 << 0,
    ReadOnly = 1 << 1,
    SendFlush = 1 << 2,
    SendFua = 1 << 3,
    Rotational = 1 << 4,
    SendTrim = 1 << 5,
    SendWriteZeroes = 1 << 6,
    SendDf = 1 << 7,
    CanMultiConn = 1 << 8,
    SendResize = 1 << 9,
    SendCache = 1 << 10,
    SendFastZero = 1 << 11,
}

public enum NbdCommand : ushort
{
    Read = 0,
    Write = 1,
    Disconnect = 2,
    Flush = 3,
    Trim = 4,
    Cache = 5,
    WriteZeroes = 6,
    BlockStatus = 7,
    Resize = 8,
}

[Flags]
public enum NbdCommandFlags : ushort
{
    None = 0,
    Fua = 1 << 0,
    NoHole = 1 << 1,
    DontFragment = 1 << 2,
    RequestOne = 1 << 3,
    FastZero = 1 << 4,
    PayloadLength = 1 << 5,
}

public enum NbdError : uint
{
    None = 0,
    EPERM = 1,
    EIO = 5,
    ENOMEM = 12,
    EINVAL = 22,
    ENOSPC = 28,
    EOVERFLOW = 75,
    ENOTSUP = 95,
    ESHUTDOWN = 108,
}

public enum NbdReplyType : ushort
{
    None = 0,
    OffsetData = 1,
    OffsetHole = 2,
    BlockStatus = 5,
    Error = 0x8000 | 1,
    ErrorOffset = 0x8000 | 2,
}

[Flags]
public enum NbdReplyFlags : ushort
{
    Done = 1 << 0,
}

[Flags]
public enum NbdAllocationFlags : uint
{
    Hole = 1 << 0,
    Zero = 1 << 1,
}
