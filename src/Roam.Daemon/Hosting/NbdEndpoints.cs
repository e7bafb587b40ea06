using System.Net;
using System.Net.Sockets;

namespace Roam.Daemon.Hosting;

/// <summary>Where NBD clients reach this daemon, and the URIs that say so (the NBD URI standard).</summary>
internal sealed class NbdEndpoints(RoamdOptions options)
{
    public string UnixSocket { get; } = options.NbdSocket;

    /// <summary>The bound TCP endpoint once listening, or null when TCP is off.</summary>
    public IPEndPoint? Tcp { get; set; }

    // The socket path is a query value: escape what would end it (space, '&', '#', '%'), keep the slashes readable.
    public string UnixUri(string volume) => $"nbd+unix:///{Uri.EscapeDataString(volume)}?socket={Uri.EscapeDataString(UnixSocket).Replace("%2F", "/", StringComparison.Ordinal)}";

    public string? TcpAddress => Tcp is null ? null : FormatHostPort(Tcp);

    public IReadOnlyList<string> UrisFor(string volume) =>
        Tcp is null ? [UnixUri(volume)] : [UnixUri(volume), $"nbd://{FormatHostPort(Tcp)}/{Uri.EscapeDataString(volume)}"];

    public static string FormatHostPort(IPEndPoint endpoint)
    {
        // A wildcard bind is reachable by this host's name; the literal 0.0.0.0 would be useless to a client.
        string host = endpoint.Address.Equals(IPAddress.Any) || endpoint.Address.Equals(IPAddress.IPv6Any) ? Dns.GetHostName()
            : endpoint.AddressFamily == AddressFamily.InterNetworkV6 ? $"[{endpoint.Address}]" : endpoint.Address.ToString();
        return $"{host}:{endpoint.Port}";
    }
}
