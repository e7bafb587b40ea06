using System.Net;
using Roam.Peers.Identity;
using Roam.Peers.Transport;
using Roam.Peers.Trust;

namespace Roam.Replication.Tests.Support;

/// <summary>One simulated roamd: its own data dir, identity and trust store, made at test start.</summary>
public sealed class TestHost : IAsyncDisposable
{
    private readonly TestDirectory _dir = new();

    public TestHost(string name)
    {
        Identity = HostIdentity.LoadOrCreate(_dir.Path, name);
        Trust = TrustStore.Open(_dir.Path);
    }

    public HostIdentity Identity { get; }
    public TrustStore Trust { get; }
    public TestLog Log { get; } = new();
    public PeerListener? Listener { get; private set; }

    public PeerListener Listen(TimeSpan? handshakeTimeout = null)
    {
        var options = new PeerListenerOptions { EndPoint = new IPEndPoint(IPAddress.Loopback, 0) };
        if (handshakeTimeout is { } t) options = options with { HandshakeTimeout = t };
        return Listener = PeerListener.Start(Identity, Trust, options, Log);
    }

    public PeerConnector Connector() => new(Identity, Trust, new PeerConnectorOptions { Timeout = TimeSpan.FromSeconds(10) }, Log);

    /// <summary>Makes this host trust <paramref name="other"/> under its certificate name, at its listener's address.</summary>
    public TrustedPeer Trusts(TestHost other) =>
        Trust.Add(other.Identity.Name, other.Listener is { } l ? $"127.0.0.1:{l.LocalEndPoint.Port}" : "127.0.0.1:1", other.Identity.Fingerprint.ToString());

    public async ValueTask DisposeAsync()
    {
        if (Listener is not null) await Listener.DisposeAsync();
        Identity.Dispose();
        _dir.Dispose();
    }
}
