using System.Net;

namespace Roam.Daemon.Hosting;

/// <summary>What roamd was asked to do, after the command line and the config file are merged.</summary>
internal sealed record RoamdOptions(string DataDir, IPEndPoint? NbdListen)
{
    public const string DefaultDataDir = "/var/lib/roam";
    public const int DefaultNbdPort = 10809;
    public const int DefaultPeerPort = Roam.Peers.Protocol.PeerProtocol.DefaultPort;
    public const double DefaultSyncTimeoutSeconds = 5;

    /// <summary>The name put in this host's identity when it is first created (later starts keep the stored one).</summary>
    public string HostName { get; init; } = Dns.GetHostName();

    /// <summary>Where peers connect to replicate to this host; null: no peer listener.</summary>
    public IPEndPoint? PeerListen { get; init; }

    /// <summary>How long a write waits for a sync replica before the replica is marked out of sync.</summary>
    public TimeSpan SyncTimeout { get; init; } = TimeSpan.FromSeconds(DefaultSyncTimeoutSeconds);

    /// <summary>LZ4 on replication Write frames where it pays, or never.</summary>
    public Roam.Replication.Engine.WireCompression Compression { get; init; } = Roam.Replication.Engine.WireCompression.Auto;

    /// <summary>What `roam vm create` without --network gives a VM: default (this host's VM network; needs root) or none.</summary>
    public string VmNetwork { get; init; } = Environment.IsPrivilegedProcess ? Network.VmNic.DefaultNetwork : Network.VmNic.NoNetwork;

    /// <summary>The default VM network's subnet; null: one chosen from this host's identity (see Network/HostVmNetwork).</summary>
    public Network.Ipv4Subnet? VmSubnet { get; init; }

    public string ControlSocket => Path.Combine(DataDir, "control.sock");

    public string NbdSocket => Path.Combine(DataDir, "nbd.sock");

    /// <summary>Parses ADDR[:PORT] ("127.0.0.1", "[::1]:10809", "localhost:10809"); the port defaults to <paramref name="defaultPort"/>.</summary>
    public static bool TryParseListen(string text, out IPEndPoint? endpoint, int defaultPort = DefaultNbdPort)
    {
        endpoint = null;
        text = text.Trim();
        if (text.Length == 0) return false;
        string host = text;
        int port = defaultPort;
        int colon = text.LastIndexOf(':');
        bool bracketed = text.StartsWith('[');
        bool hasPort = bracketed ? text.Contains("]:", StringComparison.Ordinal) : colon > 0 && text.IndexOf(':') == colon;
        if (hasPort)
        {
            if (!int.TryParse(text.AsSpan(colon + 1), out port) || port is < 0 or > 65535) return false;
            host = text[..colon];
        }
        if (bracketed)
        {
            if (!host.EndsWith(']')) return false;
            host = host[1..^1];
        }
        IPAddress? address = host.Equals("localhost", StringComparison.OrdinalIgnoreCase) ? IPAddress.Loopback
            : IPAddress.TryParse(host, out var parsed) ? parsed : null;
        if (address is null) return false;
        endpoint = new IPEndPoint(address, port);
        return true;
    }
}
