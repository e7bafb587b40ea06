using Microsoft.Extensions.Logging;
using Roam.Nbd.Protocol;

namespace Roam.Nbd;

internal static partial class Log
{
    [LoggerMessage(2001, LogLevel.Information, "NBD listening on {Endpoint}")]
    public static partial void Listening(ILogger logger, string endpoint);

    [LoggerMessage(2002, LogLevel.Warning, "NBD TCP listener on {Endpoint} is reachable beyond this host: anyone who reaches it can read and write every volume (no TLS yet)")]
    public static partial void ExposedListener(ILogger logger, string endpoint);

    [LoggerMessage(2003, LogLevel.Debug, "[conn {Id}] accepted from {Remote}")]
    public static partial void Accepted(ILogger logger, long id, string remote);

    [LoggerMessage(2004, LogLevel.Debug, "[conn {Id}] option {Option} ({Length} bytes)")]
    public static partial void Option(ILogger logger, long id, NbdOption option, uint length);

    [LoggerMessage(2005, LogLevel.Information, "[conn {Id}] export {Name} opened ({Size} bytes)")]
    public static partial void ExportOpened(ILogger logger, long id, string name, long size);

    [LoggerMessage(2006, LogLevel.Warning, "[conn {Id}] protocol error {Rejection}: {Message}; closing")]
    public static partial void ProtocolError(ILogger logger, long id, NbdRejection rejection, string message);

    [LoggerMessage(2007, LogLevel.Information, "[conn {Id}] connection lost: {Message}")]
    public static partial void ConnectionLost(ILogger logger, long id, string message);

    [LoggerMessage(2008, LogLevel.Information, "[conn {Id}] disconnected ({Reason})")]
    public static partial void Disconnected(ILogger logger, long id, string reason);

    [LoggerMessage(2009, LogLevel.Debug, "[conn {Id}] {Command} rejected with {Error}: {Why}")]
    public static partial void RequestRejected(ILogger logger, long id, NbdCommand command, NbdError error, string why);

    [LoggerMessage(2010, LogLevel.Warning, "[conn {Id}] {Command} at {Offset}+{Length} failed: {Message}")]
    public static partial void RequestFailed(ILogger logger, long id, NbdCommand command, ulong offset, uint length, string message);

    [LoggerMessage(2011, LogLevel.Warning, "[conn {Id}] {Count} request(s) still running after the shutdown grace period")]
    public static partial void DrainTimedOut(ILogger logger, long id, int count);
}
