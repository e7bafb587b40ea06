using System.Diagnostics;
using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;

namespace Roam.Daemon.Network;

/// <summary>
/// This host's `default` VM network, as libvirt's default network is built: a bridge of its own with the subnet's first
/// address, dnsmasq serving DHCP (and DNS) on it, and NAT (nftables masquerade) to whatever uplink the host routes
/// through. Set up when the first VM needs it, removed when the last VM's tap leaves the bridge. The subnet is chosen
/// once (--vm-subnet, or one derived from this host's identity that overlaps nothing here) and kept in
/// DATA_DIR/network/default.json, so it differs between hosts and stays the same across restarts. dnsmasq runs as its
/// own daemon: like the VMs' QEMUs it outlives roamd, and the next roamd finds it by its pid file.
/// </summary>
internal sealed class HostVmNetwork(string dataDir, string identitySeed, Ipv4Subnet? configured)
{
    private readonly string _directory = Path.Combine(dataDir, "network");
    private Chosen? _chosen;

    private sealed record Chosen(string Bridge, string Subnet);

    /// <summary>The bridge's name: "roam" and a hash of the data dir (two roamds on one machine never share one).</summary>
    public string Bridge { get; } = "roam" + Hash(Path.GetFullPath(dataDir))[..8];

    private string PidFile => Path.Combine(_directory, "dnsmasq.pid");
    private string LeaseFile => Path.Combine(_directory, "dnsmasq.leases");
    private string StateFile => Path.Combine(_directory, "default.json");
    private string NftTable => "roam_" + Bridge[4..];

    /// <summary>The subnet VMs here get addresses on: chosen on first use (see the class), then kept.</summary>
    public Ipv4Subnet Subnet => Ipv4Subnet.Parse(Choose().Subnet);

    /// <summary>Whether the bridge is up (VMs use the network now).</summary>
    public bool IsUp => NetTools.LinkExists(Bridge);

    /// <summary>Refuses a configured subnet that overlaps a network this host has (other than this network's own bridge).</summary>
    public void CheckConfigured()
    {
        if (configured is not { } subnet) return;
        if (LocalNetworks().FirstOrDefault(n => n.Subnet.Overlaps(subnet)) is { Device: { } device } clash)
            throw new NetworkException(NetworkError.SubnetOverlap,
                $"the VM subnet {subnet} overlaps {clash.Subnet} on {device}: give --vm-subnet a subnet this host does not use");
    }

    /// <summary>Sets up what is missing (bridge, forwarding, NAT, dnsmasq); idempotent, and cheap when all is there.</summary>
    public async Task EnsureAsync(CancellationToken ct)
    {
        NetTools.RequireRoot("the default VM network");
        var subnet = Subnet;
        var prefix = subnet.Prefix.ToString(CultureInfo.InvariantCulture);
        if (!NetTools.LinkExists(Bridge))
        {
            await NetTools.IpAsync(ct, "link", "add", Bridge, "type", "bridge").ConfigureAwait(false);
        }
        await NetTools.IpAsync(ct, "addr", "replace", $"{subnet.Gateway}/{prefix}", "dev", Bridge).ConfigureAwait(false);
        await NetTools.IpAsync(ct, "link", "set", Bridge, "up").ConfigureAwait(false);
        // NAT needs forwarding in this network namespace; like libvirt, roamd turns it on and leaves it on.
        await File.WriteAllTextAsync("/proc/sys/net/ipv4/ip_forward", "1", ct).ConfigureAwait(false);
        // One table of roamd's own, replaced whole: "table; delete table; table {...}" in one transaction works whether it existed or not.
        await NetTools.RunAsync("nft", ["-f", "-"], ct, stdin:
            $"table ip {NftTable}\ndelete table ip {NftTable}\n" +
            $"table ip {NftTable} {{\n  chain postrouting {{\n    type nat hook postrouting priority srcnat; policy accept;\n" +
            $"    ip saddr {subnet} ip daddr != {subnet} masquerade\n  }}\n}}\n").ConfigureAwait(false);
        if (DnsmasqPid() is null)
        {
            Directory.CreateDirectory(_directory);
            await NetTools.RunAsync("dnsmasq", [
                "--conf-file=/dev/null", "--pid-file=" + PidFile, "--dhcp-leasefile=" + LeaseFile,
                "--bind-interfaces", "--interface=" + Bridge, "--except-interface=lo", "--listen-address=" + subnet.Gateway,
                $"--dhcp-range={subnet.DhcpFirst},{subnet.DhcpLast},{subnet.NetMask},1h", "--dhcp-authoritative", "--dhcp-no-override",
                // No ping before an offer: it holds every lease back by seconds, and a VM that arrives from another subnet needs one at once.
                "--no-ping", "--strict-order",
            ], ct).ConfigureAwait(false);
        }
    }

    /// <summary>Removes the network if no tap is on its bridge any more: dnsmasq, the NAT table, the bridge.</summary>
    public async Task RemoveIfUnusedAsync(CancellationToken ct)
    {
        if (!NetTools.LinkExists(Bridge)) return;
        var ports = Path.Combine("/sys/class/net", Bridge, "brif");
        if (Directory.Exists(ports) && Directory.EnumerateFileSystemEntries(ports).Any()) return;
        if (DnsmasqPid() is { } pid) await StopProcessAsync(pid, ct).ConfigureAwait(false);
        File.Delete(PidFile);
        await NetTools.RunAsync("nft", ["-f", "-"], ct, stdin: $"table ip {NftTable}\ndelete table ip {NftTable}\n").ConfigureAwait(false);
        await NetTools.IpAsync(ct, "link", "del", Bridge).ConfigureAwait(false);
    }

    /// <summary>
    /// Ends dnsmasq (not roamd's child: it daemonized), waiting until it is gone or a zombie, which is as good: its
    /// reaper, init (or a subreaper above roamd), may be slow to collect it, and Process.WaitForExit would wait for that.
    /// </summary>
    private static async Task StopProcessAsync(int pid, CancellationToken ct)
    {
        try
        {
            using var process = Process.GetProcessById(pid);
            process.Kill();
        }
        catch (Exception ex) when (ex is ArgumentException or InvalidOperationException or System.ComponentModel.Win32Exception) { return; }
        for (int i = 0; i < 100; i++)
        {
            string stat;
            try { stat = await File.ReadAllTextAsync($"/proc/{pid}/stat", ct).ConfigureAwait(false); }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException) { return; }
            // "pid (comm) S ...": the state follows the last ')'.
            if (stat.LastIndexOf(')') is int close and > 0 && close + 2 < stat.Length && stat[close + 2] is 'Z' or 'X') return;
            await Task.Delay(50, ct).ConfigureAwait(false);
        }
    }

    /// <summary>The running dnsmasq of this network (its pid file names a live dnsmasq serving this bridge), or null.</summary>
    private int? DnsmasqPid()
    {
        try
        {
            if (!int.TryParse(File.ReadAllText(PidFile).Trim(), out int pid)) return null;
            var cmdline = File.ReadAllText($"/proc/{pid}/cmdline");
            return cmdline.Contains("dnsmasq", StringComparison.Ordinal) && cmdline.Contains("--interface=" + Bridge + "\0", StringComparison.Ordinal) ? pid : null;
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException) { return null; }
    }

    private Chosen Choose()
    {
        if (_chosen is { } known) return known;
        try
        {
            if (JsonSerializer.Deserialize<Dictionary<string, string>>(File.ReadAllText(StateFile)) is { } saved
                && saved.TryGetValue("subnet", out var kept) && (configured is null || configured.Value.ToString() == kept))
                return _chosen = new Chosen(Bridge, kept);
        }
        catch (Exception ex) when (ex is IOException or JsonException or UnauthorizedAccessException) { }
        var subnet = configured ?? Derive();
        Directory.CreateDirectory(_directory);
        var temp = StateFile + ".tmp";
        File.WriteAllText(temp, JsonSerializer.Serialize(new Dictionary<string, string> { ["subnet"] = subnet.ToString(), ["bridge"] = Bridge }));
        File.Move(temp, StateFile, overwrite: true);
        return _chosen = new Chosen(Bridge, subnet.ToString());
    }

    /// <summary>A /24 in 10.128.0.0/10 picked by this host's identity, the first that overlaps no network here.</summary>
    private Ipv4Subnet Derive()
    {
        var seed = SHA256.HashData(Encoding.UTF8.GetBytes(identitySeed));
        var used = LocalNetworks().Select(n => n.Subnet).ToList();
        int start = (seed[0] << 8 | seed[1]) & 0x3FFF; // 2^14 /24s in a /10
        for (int i = 0; i < 0x4000; i++)
        {
            var candidate = new Ipv4Subnet((10u << 24) | (128u << 16) + (uint)(((start + i) & 0x3FFF) << 8), 24);
            if (!used.Any(u => u.Overlaps(candidate))) return candidate;
        }
        throw new NetworkException(NetworkError.SubnetOverlap, "every /24 in 10.128.0.0/10 is in use here: give roamd --vm-subnet");
    }

    /// <summary>The IPv4 networks this host has, by address and route (not this network's own bridge), with their device.</summary>
    public IReadOnlyList<(Ipv4Subnet Subnet, string? Device)> LocalNetworks()
    {
        var found = new List<(Ipv4Subnet, string?)>();
        try
        {
            var routes = NetTools.RunAsync("ip", ["-j", "-4", "route", "show", "table", "all"], CancellationToken.None).GetAwaiter().GetResult();
            foreach (var route in JsonDocument.Parse(routes).RootElement.EnumerateArray())
            {
                var dev = route.TryGetProperty("dev", out var d) ? d.GetString() : null;
                if (dev == Bridge || dev == "lo" || !route.TryGetProperty("dst", out var dst)) continue;
                var text = dst.GetString() ?? "";
                if (text == "default") continue;
                if (!text.Contains('/', StringComparison.Ordinal)) text += "/32";
                if (route.TryGetProperty("type", out var type) && type.GetString() is "broadcast" or "local") continue;
                if (Ipv4Subnet.TryParseInterfaceAddress(text, out var subnet)) found.Add((subnet, dev));
            }
        }
        catch (NetworkException) { } // no ip: nothing known to overlap
        return found;
    }

    private static string Hash(string text) => Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(text)));
}
