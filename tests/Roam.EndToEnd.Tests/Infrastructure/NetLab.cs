using System.Diagnostics;

namespace Roam.EndToEnd.Tests.Infrastructure;

/// <summary>
/// A small internet in network namespaces for the VM network tests: hosts (each its own namespace with an uplink
/// 10.0.N.2/24 to a router 10.0.N.1), the router, and a server 10.9.0.2 behind it; optionally a LAN segment (a
/// bridge in its own namespace, with DHCP) that hosts join through a bridge "lan0" of their own, for VMs bridged to one
/// LAN. Each link can be shaped with tbf. Everything (namespaces and every process in them) goes on dispose; a lab
/// left by a killed test run is removed by the next one with the same names.
/// </summary>
public sealed class NetLab : IAsyncDisposable
{
    public const string ServerAddress = "10.9.0.2";
    public const string LanSubnetPrefix = "10.3.0";

    private readonly string _prefix;
    private readonly List<string> _namespaces = [];
    private readonly List<Process> _processes = [];
    private int _hosts;

    private NetLab(string prefix) => _prefix = prefix;

    public string Router => _prefix + "-router";
    public string Server => _prefix + "-server";
    public string Lan => _prefix + "-lan";

    public string Namespace(string host) => _prefix + "-" + host;

    /// <summary>The host's uplink address, where its roamd listens for peers.</summary>
    public Dictionary<string, string> Uplink { get; } = [];

    /// <summary>A lab with a router and a server; <paramref name="prefix"/> names its namespaces (keep it short, unique per test).</summary>
    public static async Task<NetLab> CreateAsync(string prefix, string? rate = null)
    {
        var lab = new NetLab(prefix);
        await lab.RemoveStaleAsync();
        await lab.AddNamespaceAsync(lab.Router);
        await lab.AddNamespaceAsync(lab.Server);
        await lab.RunAsync(lab.Router, "sysctl", "-q", "-w", "net.ipv4.ip_forward=1");
        await lab.LinkAsync(lab.Router, "to-server", "10.9.0.1/24", lab.Server, "uplink", ServerAddress + "/24", rate);
        await lab.RunAsync(lab.Server, "ip", "route", "add", "default", "via", "10.9.0.1");
        // The server takes a client's extra subflows (an MPTCP server's usual set-up; the kernel's default is 2).
        await lab.RunAsync(lab.Server, "ip", "mptcp", "limits", "set", "subflow", "4", "add_addr_accepted", "4");
        return lab;
    }

    /// <summary>A host namespace with its uplink through the router (10.0.N.2, N from 1).</summary>
    public async Task<string> AddHostAsync(string host, string? rate = null)
    {
        int n = ++_hosts;
        var ns = Namespace(host);
        await AddNamespaceAsync(ns);
        await LinkAsync(Router, "to-" + host, $"10.0.{n}.1/24", ns, "uplink", $"10.0.{n}.2/24", rate);
        await RunAsync(ns, "ip", "route", "add", "default", "via", $"10.0.{n}.1");
        Uplink[host] = $"10.0.{n}.2";
        return ns;
    }

    /// <summary>
    /// One LAN for the hosts given (a switch: a bridge in its own namespace, routed to the server through the router,
    /// DHCP from dnsmasq for 10.3.0.0/24): each host gets a bridge lan0 with a port on it, for `--network bridge=lan0`.
    /// </summary>
    public async Task AddLanAsync(params string[] hosts)
    {
        await AddNamespaceAsync(Lan);
        await RunAsync(Lan, "ip", "link", "add", "switch", "type", "bridge");
        await RunAsync(Lan, "ip", "link", "set", "switch", "up");
        await RunAsync(Lan, "ip", "addr", "add", LanSubnetPrefix + ".1/24", "dev", "switch");
        await RunAsync(Lan, "sysctl", "-q", "-w", "net.ipv4.ip_forward=1");
        await LinkAsync(Router, "to-lan", "10.0.99.1/24", Lan, "uplink", "10.0.99.2/24", null);
        await RunAsync(Lan, "ip", "route", "add", "default", "via", "10.0.99.1");
        await RunAsync(Router, "ip", "route", "add", LanSubnetPrefix + ".0/24", "via", "10.0.99.2");
        foreach (var host in hosts)
        {
            var ns = Namespace(host);
            await RunAsync(ns, "ip", "link", "add", "lan0", "type", "bridge");
            await RunAsync(ns, "ip", "link", "set", "lan0", "up");
            await LinkAsync(Lan, "p-" + host, null, ns, "lan-port", null, null);
            await RunAsync(Lan, "ip", "link", "set", "p-" + host, "master", "switch");
            await RunAsync(ns, "ip", "link", "set", "lan-port", "master", "lan0");
        }
        Start(Lan, "dnsmasq", "--no-daemon", "--conf-file=/dev/null", "--port=0", "--interface=switch", "--bind-interfaces",
            $"--dhcp-range={LanSubnetPrefix}.50,{LanSubnetPrefix}.150,255.255.255.0,1h", $"--dhcp-option=option:router,{LanSubnetPrefix}.1",
            "--dhcp-authoritative", "--no-ping", "--dhcp-leasefile=/dev/null");
    }

    /// <summary>Starts a long-running process in <paramref name="ns"/>, killed on dispose; its output is collected.</summary>
    public Process Start(string ns, string program, params string[] arguments)
    {
        var start = new ProcessStartInfo("ip") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in (string[])["netns", "exec", ns, program, .. arguments]) start.ArgumentList.Add(a);
        var process = Process.Start(start)!;
        lock (_processes) _processes.Add(process);
        return process;
    }

    public async Task<string> RunAsync(string ns, params string[] command)
    {
        var start = new ProcessStartInfo("ip") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in (string[])["netns", "exec", ns, .. command]) start.ArgumentList.Add(a);
        using var process = Process.Start(start)!;
        var output = process.StandardOutput.ReadToEndAsync();
        var error = process.StandardError.ReadToEndAsync();
        await process.WaitForExitAsync();
        if (process.ExitCode != 0)
            throw new InvalidOperationException($"in {ns}: {string.Join(' ', command)} failed ({process.ExitCode}): {await error}");
        return await output;
    }

    private async Task AddNamespaceAsync(string ns)
    {
        await IpAsync("netns", "add", ns);
        _namespaces.Add(ns);
        await RunAsync(ns, "ip", "link", "set", "lo", "up");
    }

    /// <summary>A veth pair between two namespaces, each end named and addressed there, shaped with tbf at both ends if a rate is given.</summary>
    private async Task LinkAsync(string nsA, string nameA, string? addressA, string nsB, string nameB, string? addressB, string? rate)
    {
        var tmpA = "t" + Guid.NewGuid().ToString("N")[..10];
        var tmpB = "t" + Guid.NewGuid().ToString("N")[..10];
        await IpAsync("link", "add", tmpA, "type", "veth", "peer", "name", tmpB);
        await IpAsync("link", "set", tmpA, "netns", nsA, "name", nameA);
        await IpAsync("link", "set", tmpB, "netns", nsB, "name", nameB);
        foreach (var (ns, name, address) in new[] { (nsA, nameA, addressA), (nsB, nameB, addressB) })
        {
            if (address is not null) await RunAsync(ns, "ip", "addr", "add", address, "dev", name);
            await RunAsync(ns, "ip", "link", "set", name, "up");
            if (rate is not null) await RunAsync(ns, "tc", "qdisc", "add", "dev", name, "root", "tbf", "rate", rate, "burst", "32kbit", "latency", "50ms");
        }
    }

    private async Task RemoveStaleAsync()
    {
        var list = await IpAsync("netns", "list");
        foreach (var line in list.Split('\n', StringSplitOptions.RemoveEmptyEntries))
        {
            var ns = line.Split(' ')[0];
            if (ns.StartsWith(_prefix + "-", StringComparison.Ordinal)) await DeleteNamespaceAsync(ns);
        }
    }

    private static async Task DeleteNamespaceAsync(string ns)
    {
        // Every process still in it first (roamd, QEMU, dnsmasq): a namespace with processes outlives `ip netns del`.
        try
        {
            var pids = await IpAsync("netns", "pids", ns);
            foreach (var pid in pids.Split('\n', StringSplitOptions.RemoveEmptyEntries))
                if (int.TryParse(pid, out int p)) try { Process.GetProcessById(p).Kill(); } catch (ArgumentException) { } catch (InvalidOperationException) { }
        }
        catch (InvalidOperationException) { }
        for (int i = 0; i < 50; i++)
        {
            try
            {
                if ((await IpAsync("netns", "pids", ns)).Trim().Length == 0) break;
            }
            catch (InvalidOperationException) { break; }
            await Task.Delay(100);
        }
        try { await IpAsync("netns", "del", ns); } catch (InvalidOperationException) { }
    }

    public async ValueTask DisposeAsync()
    {
        lock (_processes)
            foreach (var p in _processes)
            {
                try { if (!p.HasExited) p.Kill(entireProcessTree: true); } catch (InvalidOperationException) { }
            }
        foreach (var ns in Enumerable.Reverse(_namespaces)) await DeleteNamespaceAsync(ns);
    }

    /// <summary>iproute2's ip in the test's own namespace; a failure throws with what it said.</summary>
    private static async Task<string> IpAsync(params string[] arguments)
    {
        var result = await Tools.RunAsync("ip", arguments);
        if (result.ExitCode != 0) throw new InvalidOperationException($"{result.CommandLine} failed ({result.ExitCode}): {result.Stderr.Trim()}");
        return result.Stdout;
    }
}
