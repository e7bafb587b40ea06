using Microsoft.Extensions.Logging;
using Roam.Peers.Transport;

namespace Roam.Peers;

internal static partial class Log
{
    [LoggerMessage(3001, LogLevel.Information, "Peer listener on {Endpoint}: this host is {HostName}, fingerprint {Fingerprint}")]
    public static partial void Listening(ILogger logger, string endpoint, string hostName, string fingerprint);

    [LoggerMessage(3002, LogLevel.Debug, "[peer {Id}] TCP connection from {Remote}")]
    public static partial void Accepted(ILogger logger, long id, string remote);

    [LoggerMessage(3003, LogLevel.Information, "[peer {Id}] {Peer} ({HostName}) connected from {Remote}, protocol v{Version}")]
    public static partial void PeerAccepted(ILogger logger, long id, string peer, string hostName, string remote, int version);

    [LoggerMessage(3004, LogLevel.Warning, "[peer {Id}] refused {Remote}: {Refusal} (certificate {Fingerprint}): {Detail}")]
    public static partial void Refused(ILogger logger, long id, string remote, PeerRefusal refusal, string fingerprint, string detail);

    [LoggerMessage(3005, LogLevel.Error, "Peer listener on {Endpoint}: accept failed: {Message}")]
    public static partial void AcceptFailed(ILogger logger, string endpoint, string message);

    [LoggerMessage(3006, LogLevel.Information, "Peer listener on {Endpoint} stopped")]
    public static partial void Stopped(ILogger logger, string endpoint);

    [LoggerMessage(3010, LogLevel.Information, "Connected to peer {Peer} at {Address} ({HostName}), protocol v{Version}")]
    public static partial void Connected(ILogger logger, string peer, string address, string hostName, int version);

    [LoggerMessage(3011, LogLevel.Warning, "Connecting to peer {Peer} at {Address} failed: {Failure}: {Message}")]
    public static partial void ConnectFailed(ILogger logger, string peer, string address, PeerConnectFailure failure, string message);
}

internal static partial class Log
{
    [LoggerMessage(3007, LogLevel.Warning, "{Peer} opened a connection with frame type 0x{FrameType:x4}, which nothing here serves: closed")]
    public static partial void Unrouted(ILogger logger, string peer, ushort frameType);

    [LoggerMessage(3008, LogLevel.Error, "Serving a connection from {Peer} failed")]
    public static partial void HandlerFailed(ILogger logger, string peer, Exception exception);
}
