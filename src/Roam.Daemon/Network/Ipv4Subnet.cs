using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;

namespace Roam.Daemon.Network;

/// <summary>An IPv4 subnet (a VM network's): its network address and prefix, the gateway roamd takes and the DHCP range.</summary>
internal readonly record struct Ipv4Subnet(uint Network, int Prefix)
{
    public uint Mask => Prefix == 0 ? 0 : uint.MaxValue << (32 - Prefix);

    /// <summary>The bridge's own address, the VMs' gateway and DNS: the subnet's first host.</summary>
    public IPAddress Gateway => ToAddress(Network + 1);

    public IPAddress DhcpFirst => ToAddress(Network + 2);

    public IPAddress DhcpLast => ToAddress((Network | ~Mask) - 1);

    public IPAddress NetMask => ToAddress(Mask);

    public bool Overlaps(Ipv4Subnet other)
    {
        var mask = Prefix < other.Prefix ? Mask : other.Mask;
        return (Network & mask) == (other.Network & mask);
    }

    public override string ToString() => $"{ToAddress(Network)}/{Prefix}";

    /// <summary>Parses A.B.C.D/N with N from 8 to 29 (a VM network needs a gateway and a few leases) and no host bits set.</summary>
    public static Ipv4Subnet Parse(string text)
    {
        var slash = text.IndexOf('/', StringComparison.Ordinal);
        if (slash < 0 || !IPAddress.TryParse(text.AsSpan(0, slash), out var address) || address.AddressFamily != AddressFamily.InterNetwork
            || !int.TryParse(text.AsSpan(slash + 1), out int prefix))
            throw new NetworkException(NetworkError.InvalidRequest, $"invalid subnet '{text}': use an IPv4 CIDR such as 10.77.0.0/24");
        if (prefix is < 8 or > 29)
            throw new NetworkException(NetworkError.InvalidRequest, $"invalid subnet '{text}': the prefix length must be between 8 and 29");
        var subnet = new Ipv4Subnet(FromAddress(address), prefix);
        if ((subnet.Network & ~subnet.Mask) != 0)
            throw new NetworkException(NetworkError.InvalidRequest, $"invalid subnet '{text}': host bits are set (did you mean {new Ipv4Subnet(subnet.Network & subnet.Mask, prefix)}?)");
        return subnet;
    }

    public static bool TryParseInterfaceAddress(string cidr, out Ipv4Subnet subnet)
    {
        subnet = default;
        var slash = cidr.IndexOf('/', StringComparison.Ordinal);
        if (slash < 0 || !IPAddress.TryParse(cidr.AsSpan(0, slash), out var address) || address.AddressFamily != AddressFamily.InterNetwork
            || !int.TryParse(cidr.AsSpan(slash + 1), out int prefix) || prefix is < 0 or > 32) return false;
        var mask = prefix == 0 ? 0 : uint.MaxValue << (32 - prefix);
        subnet = new Ipv4Subnet(FromAddress(address) & mask, prefix);
        return true;
    }

    public static uint FromAddress(IPAddress address)
    {
        Span<byte> bytes = stackalloc byte[4];
        address.TryWriteBytes(bytes, out _);
        return BinaryPrimitives.ReadUInt32BigEndian(bytes);
    }

    public static IPAddress ToAddress(uint value)
    {
        Span<byte> bytes = stackalloc byte[4];
        BinaryPrimitives.WriteUInt32BigEndian(bytes, value);
        return new IPAddress(bytes);
    }
}
