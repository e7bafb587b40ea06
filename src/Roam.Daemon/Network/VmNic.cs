namespace Roam.Daemon.Network;

/// <summary>
/// A VM's network interface as its definition keeps it (and a migration carries it): which network the tap joins on
/// each host, and the MAC address, generated once.
/// </summary>
/// <param name="Network"><see cref="DefaultNetwork"/> (the host's own VM network: bridge, DHCP, NAT) or bridge=BR (a
/// bridge the host has, e.g. to its LAN).</param>
internal sealed record VmNic(string Network, string Mac)
{
    public const string DefaultNetwork = "default";
    public const string NoNetwork = "none";
    private const string BridgePrefix = "bridge=";

    /// <summary>The existing host bridge the tap joins, or null for the default network.</summary>
    public string? Bridge => Network.StartsWith(BridgePrefix, StringComparison.Ordinal) ? Network[BridgePrefix.Length..] : null;

    /// <summary>
    /// The NIC that `--network NETWORK --mac MAC` asks for: null for none; <paramref name="network"/> null means
    /// <paramref name="fallback"/> (roamd's --vm-network).
    /// </summary>
    public static VmNic? From(string? network, string? mac, string fallback)
    {
        var text = (network ?? fallback).Trim();
        if (text == NoNetwork)
        {
            if (mac is not null) throw new NetworkException(NetworkError.InvalidRequest, "--mac needs a network: it is the address of the VM's NIC, and --network none gives it none");
            return null;
        }
        var address = mac is null ? MacAddress.Generate() : MacAddress.Parse(mac);
        if (text == DefaultNetwork) return new VmNic(DefaultNetwork, address);
        if (text.StartsWith(BridgePrefix, StringComparison.Ordinal)) return new VmNic(BridgePrefix + CheckBridgeName(text[BridgePrefix.Length..]), address);
        throw new NetworkException(NetworkError.InvalidRequest, $"invalid network '{text}': use default, none or bridge=BRIDGE");
    }

    /// <summary>A Linux interface name: 1 to 15 bytes, no '/', ':', whitespace or control characters, not . or ..</summary>
    public static string CheckBridgeName(string name)
    {
        if (name.Length is 0 or > 15 || name is "." or ".." || name.Any(c => c is '/' or ':' || char.IsWhiteSpace(c) || char.IsControl(c) || c > 127))
            throw new NetworkException(NetworkError.InvalidRequest, $"invalid bridge name '{name}': use 1 to 15 ASCII characters without '/', ':' or spaces");
        return name;
    }
}
