using Roam.Daemon.Network;

namespace Roam.Daemon.Tests;

/// <summary>What `roam vm create --network/--mac` and `roamd --vm-subnet` accept, and the clear refusals of the rest.</summary>
public sealed class VmNetworkInputTests
{
    [Theory]
    [InlineData("52:54:00:AB:cd:01", "52:54:00:ab:cd:01")]
    [InlineData("02-00-00-00-00-01", "02:00:00:00:00:01")]
    public void A_unicast_mac_is_kept_in_lower_case_colon_form(string text, string expected) => Assert.Equal(expected, MacAddress.Parse(text));

    [Theory]
    [InlineData("52:54:00:ab:cd")]
    [InlineData("52:54:00:ab:cd:0g")]
    [InlineData("52:54:00:ab:cd:001")]
    [InlineData("01:00:5e:00:00:01")] // multicast
    [InlineData("00:00:00:00:00:00")]
    [InlineData("")]
    public void A_malformed_or_multicast_mac_is_refused_with_the_reason(string text)
    {
        var ex = Assert.Throws<NetworkException>(() => MacAddress.Parse(text));
        Assert.Equal(NetworkError.InvalidRequest, ex.Error);
        Assert.Contains("invalid MAC address", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Generated_macs_are_qemu_unicast_and_differ()
    {
        var macs = Enumerable.Range(0, 64).Select(_ => MacAddress.Generate()).ToList();
        Assert.All(macs, m => Assert.StartsWith("52:54:00:", m, StringComparison.Ordinal));
        Assert.All(macs, m => Assert.Equal(m, MacAddress.Parse(m)));
        Assert.True(macs.Distinct().Count() > 60);
    }

    [Fact]
    public void Network_choices_parse_to_a_nic_or_none()
    {
        Assert.Null(VmNic.From("none", null, "default"));
        Assert.Null(VmNic.From(null, null, "none"));
        var nic = VmNic.From(null, "52:54:00:00:00:07", "default")!;
        Assert.Equal(("default", "52:54:00:00:00:07", (string?)null), (nic.Network, nic.Mac, nic.Bridge));
        var bridged = VmNic.From("bridge=br-lan", null, "none")!;
        Assert.Equal("br-lan", bridged.Bridge);
    }

    [Theory]
    [InlineData("bridge=", "invalid bridge name")]
    [InlineData("bridge=a/b", "invalid bridge name")]
    [InlineData("bridge=averyverylongname0", "invalid bridge name")]
    [InlineData("nat", "use default, none or bridge=BRIDGE")]
    public void A_bad_network_is_refused_with_the_reason(string network, string reason)
    {
        var ex = Assert.Throws<NetworkException>(() => VmNic.From(network, null, "none"));
        Assert.Equal(NetworkError.InvalidRequest, ex.Error);
        Assert.Contains(reason, ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_mac_without_a_network_is_refused() =>
        Assert.Equal(NetworkError.InvalidRequest, Assert.Throws<NetworkException>(() => VmNic.From("none", "52:54:00:00:00:01", "default")).Error);

    [Fact]
    public void A_subnet_gives_gateway_and_dhcp_range()
    {
        var subnet = Ipv4Subnet.Parse("10.2.0.0/24");
        Assert.Equal("10.2.0.1", subnet.Gateway.ToString());
        Assert.Equal("10.2.0.2", subnet.DhcpFirst.ToString());
        Assert.Equal("10.2.0.254", subnet.DhcpLast.ToString());
        Assert.Equal("255.255.255.0", subnet.NetMask.ToString());
        Assert.Equal("10.2.0.0/24", subnet.ToString());
    }

    [Theory]
    [InlineData("10.2.0.0/24", "10.2.0.128/25", true)]
    [InlineData("10.0.0.0/8", "10.200.3.0/24", true)]
    [InlineData("10.1.0.0/24", "10.2.0.0/24", false)]
    [InlineData("192.168.0.0/16", "10.2.0.0/24", false)]
    public void Overlap_is_symmetric(string a, string b, bool overlaps)
    {
        Assert.True(Ipv4Subnet.TryParseInterfaceAddress(a, out var x));
        Assert.True(Ipv4Subnet.TryParseInterfaceAddress(b, out var y));
        Assert.Equal(overlaps, x.Overlaps(y));
        Assert.Equal(overlaps, y.Overlaps(x));
    }

    [Theory]
    [InlineData("10.2.0.1/24", "host bits are set")]
    [InlineData("10.2.0.0", "use an IPv4 CIDR")]
    [InlineData("10.2.0.0/31", "between 8 and 29")]
    [InlineData("fd00::/64", "use an IPv4 CIDR")]
    [InlineData("10.2.0.300/24", "use an IPv4 CIDR")]
    public void A_bad_subnet_is_refused_with_the_reason(string text, string reason)
    {
        var ex = Assert.Throws<NetworkException>(() => Ipv4Subnet.Parse(text));
        Assert.Contains(reason, ex.Message, StringComparison.Ordinal);
    }
}
