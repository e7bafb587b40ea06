using System.Net;

namespace Roam.Peers.Transport;

public sealed record PeerListenerOptions
{
    public required IPEndPoint EndPoint { get; init; }

    /// <summary>TLS and Hello must be done within this, or the connection is dropped.</summary>
    public TimeSpan HandshakeTimeout { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>Connections beyond this many unfinished handshakes are closed at once.</summary>
    public int MaxPendingHandshakes { get; init; } = 64;

    /// <summary>Authenticated connections waiting for <see cref="PeerListener.AcceptConnectionAsync"/>.</summary>
    public int AcceptQueueLength { get; init; } = 16;
}
