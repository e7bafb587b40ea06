namespace Roam.Peers.Transport;

public sealed record PeerConnectorOptions
{
    /// <summary>TCP connect, TLS and Hello must all be done within this.</summary>
    public TimeSpan Timeout { get; init; } = TimeSpan.FromSeconds(10);
}
