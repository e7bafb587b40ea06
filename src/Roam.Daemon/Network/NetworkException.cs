namespace Roam.Daemon.Network;

/// <summary>Why roamd refuses or fails to give a VM its network (mapped to HTTP in Api/ErrorHandling).</summary>
internal enum NetworkError
{
    /// <summary>A malformed network choice, MAC address or subnet.</summary>
    InvalidRequest,
    /// <summary>The bridge named by bridge=BR does not exist on this host.</summary>
    UnknownBridge,
    /// <summary>The VM subnet overlaps a network this host already has.</summary>
    SubnetOverlap,
    /// <summary>Setting up bridges, taps, DHCP or NAT needs root (CAP_NET_ADMIN), and roamd runs without it.</summary>
    NeedsRoot,
    /// <summary>A tool roamd runs for it (ip, nft, dnsmasq) is missing or failed.</summary>
    ToolFailed,
}

/// <summary>A VM network request refused or failed, with its <see cref="NetworkError"/> reason and the one line a client shows.</summary>
internal sealed class NetworkException(NetworkError error, string message, Exception? inner = null) : Exception(message, inner)
{
    public NetworkError Error { get; } = error;
}
