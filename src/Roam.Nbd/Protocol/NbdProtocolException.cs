namespace Roam.Nbd.Protocol;

/// <summary>Why a connection was dropped; tests assert on these values, never on message text.</summary>
public enum NbdRejection
{
    BadInitMagic,
    BadOptionMagic,
    UnknownClientFlags,
    OptionTooLong,
    UnknownExport,
    BadRequestMagic,
    PayloadTooLong,
    TruncatedRequest,
    TruncatedHandshake,
    ClientAborted,
}

/// <summary>A connection-fatal protocol error: the stream cannot be resynchronised, so the connection ends.</summary>
public sealed class NbdProtocolException(NbdRejection rejection, string message) : Exception(message)
{
    public NbdRejection Rejection { get; } = rejection;
}
