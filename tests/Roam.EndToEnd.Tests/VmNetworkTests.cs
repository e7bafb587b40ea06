using System.Diagnostics;
using System.Globalization;
using System.Text.RegularExpressions;
using Roam.EndToEnd.Tests.Infrastructure;
using Xunit.Abstractions;
using static Roam.EndToEnd.Tests.Infrastructure.Guest;

namespace Roam.EndToEnd.Tests;

/// <summary>
/// The VM's network follows it (issue 11), on a small internet of network namespaces (Infrastructure/NetLab): two
/// hosts, office and car, each with an uplink through a router to a server that runs an MPTCP sink
/// (scripts/net-sink.py). The guest (roam.net=dhcp) takes its address by DHCP and streams to the sink; the tests count
/// the sink's resets and connections through migrations, on another subnet (the default network of each host, MPTCP)
/// and on one LAN (bridge=lan0, plain TCP). Root only (namespaces, bridges, taps, nftables).
/// </summary>
[Collection(nameof(VmNetworkTests))]
public sealed partial class VmNetworkTests(ITestOutputHelper output) : IAsyncLifetime
{
    private const string Vol = "vol";
    private const int PeerPort = 10810;
    private readonly TestDirectory _dir = new();
    private readonly string _prefix = "rn" + Guid.NewGuid().ToString("N")[..4];
    private NetLab _lab = null!;
    private readonly List<RoamdProcess> _roamds = [];

    public Task InitializeAsync() => Task.CompletedTask;

    public async Task DisposeAsync()
    {
        foreach (var roamd in _roamds)
        {
            // What roamd said, for a failure's reader (the network's set-up and removal are logged).
            output.WriteLine($"--- roamd {Path.GetFileName(roamd.DataDir)}, last lines:\n" + string.Join('\n', roamd.Output.Split('\n').TakeLast(25)));
            var serial = Path.Combine(roamd.DataDir, "vms", "vm.serial");
            if (File.Exists(serial))
                output.WriteLine($"--- console there (heartbeats left out):\n" + string.Join('\n', ReadShared(serial).Split('\n')
                    .Where(l => !l.StartsWith("HB ", StringComparison.Ordinal) && !l.Contains("STREAM stats", StringComparison.Ordinal)).TakeLast(30)));
            await roamd.DisposeAsync();
            await DataDirQemus.KillAllAsync(roamd.DataDir);
        }
        if (_lab is not null) await _lab.DisposeAsync();
        _dir.Dispose();
    }

    private string DataOf(string host) => Path.Combine(_dir.Path, host);

    private static Task<CliResult> Roam(RoamdProcess host, params string[] arguments) => RoamRunner.RunAsync(host.ControlSocket, arguments);

    private async Task<RoamdProcess> StartRoamdAsync(string host, params string[] extra)
    {
        var roamd = await RoamdProcess.StartAsync(DataOf(host),
            ["--host-name", host, "--peer-listen", $"{_lab.Uplink[host]}:{PeerPort}", "--sync-timeout", "2", "--vm-network", "default", .. extra],
            new Dictionary<string, string> { ["ROAM_VM_ACCELERATOR"] = "tcg" }, _lab.Namespace(host));
        _roamds.Add(roamd);
        return roamd;
    }

    private static async Task TrustAsync(RoamdProcess a, string nameA, RoamdProcess b, string nameB)
    {
        var idA = (await Roam(a, "host", "id", "--json")).ShouldSucceed().Json;
        var idB = (await Roam(b, "host", "id", "--json")).ShouldSucceed().Json;
        (await Roam(a, "host", "add", nameB, idB.GetProperty("peerListen").GetString()!, "--fingerprint", idB.GetProperty("fingerprint").GetString()!)).ShouldSucceed();
        (await Roam(b, "host", "add", nameA, idA.GetProperty("peerListen").GetString()!, "--fingerprint", idA.GetProperty("fingerprint").GetString()!)).ShouldSucceed();
    }

    private static void RequireRoot() =>
        Requires.That(Environment.UserName == "root", "the VM network tests need root (network namespaces, bridges, taps, nftables)");

    /// <summary>The sink on the server; stopped with SIGTERM, it prints its summary line.</summary>
    private sealed class Sink(Process process, string csv, Stopwatch clock)
    {
        public Stopwatch Clock => clock;

        public async Task<(long Bytes, long GapMs, int Resets, int Connections, IReadOnlyList<(long T, long Bytes)> Rows, string Log)> StopAsync()
        {
            RoamdProcess.Signal(process.Id, 15);
            var stdout = await process.StandardOutput.ReadToEndAsync();
            var stderr = await process.StandardError.ReadToEndAsync();
            await process.WaitForExitAsync();
            var m = SummaryLine().Match(stdout + stderr);
            Assert.True(m.Success, $"the sink printed no summary:\n{stdout}\n{stderr}");
            var rows = File.ReadLines(csv).Skip(1).Select(l => l.Split(','))
                .Select(f => (long.Parse(f[0], CultureInfo.InvariantCulture), long.Parse(f[1], CultureInfo.InvariantCulture))).ToList();
            return (long.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture), long.Parse(m.Groups[2].Value, CultureInfo.InvariantCulture),
                int.Parse(m.Groups[3].Value, CultureInfo.InvariantCulture), int.Parse(m.Groups[4].Value, CultureInfo.InvariantCulture), rows, stderr);
        }
    }

    [GeneratedRegex(@"sink: bytes (\d+), longest gap (\d+) ms, resets (\d+), connections (\d+)")]
    private static partial Regex SummaryLine();

    private Sink StartSink(bool mptcp)
    {
        var csv = Path.Combine(_dir.Path, "sink.csv");
        string[] args = [Path.Combine(RepoRoot(), "scripts", "net-sink.py"), "--listen", $"{NetLab.ServerAddress}:5201", "--interval-ms", "10", "--csv", csv];
        var process = _lab.Start(_lab.Server, "python3", mptcp ? [.. args, "--mptcp"] : args);
        return new Sink(process, csv, Stopwatch.StartNew());
    }

    private static async Task<Match> WaitConsoleAsync(string serial, Regex pattern, TimeSpan timeout, string what, int skip = 0)
    {
        var clock = Stopwatch.StartNew();
        while (true)
        {
            var matches = pattern.Matches(File.Exists(serial) ? ReadShared(serial) : "");
            if (matches.Count > skip) return matches[skip];
            if (clock.Elapsed > timeout)
                Assert.Fail($"{what}: not on the console within {timeout.TotalSeconds:0} s; its last lines:\n" +
                            string.Join('\n', (File.Exists(serial) ? ReadShared(serial) : "").Split('\n').Where(l => !l.StartsWith("HB ", StringComparison.Ordinal)).TakeLast(15)));
            await Task.Delay(200);
        }
    }

    [GeneratedRegex(@"ROAM-NET ADDR ([0-9.]+)/\d+")]
    private static partial Regex AddressLine();

    [GeneratedRegex(@"ROAM-NET STREAM connected proto=(\w+)")]
    private static partial Regex StreamLine();

    private async Task CreateStreamingVmAsync(RoamdProcess host, string network, string proto)
    {
        var guest = await BuildGuestAsync();
        (await Roam(host, "volume", "create", Vol, "--size", "64M")).ShouldSucceed();
        (await Roam(host, "vm", "create", "vm", "--volume", Vol, "--memory", "256M", "--network", network,
            "--kernel", Path.Combine(guest, "vmlinuz"), "--initrd", Path.Combine(guest, "initrd.img"),
            "--append", $"console=ttyS0 quiet panic=-1 roam.region_mib=8 roam.net=dhcp roam.stream={NetLab.ServerAddress}:5201 roam.stream_proto={proto} roam.stream_rate=400000"))
            .ShouldSucceed();
        (await Roam(host, "vm", "start", "vm")).ShouldSucceed();
    }

    private async Task<string[]> LinksAsync(string host) =>
        (await _lab.RunAsync(_lab.Namespace(host), "ip", "-br", "link")).Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => l.Split(' ')[0].Split('@')[0]).ToArray();

    private static async Task WaitAsync(Func<Task<bool>> done, TimeSpan timeout, string what)
    {
        var clock = Stopwatch.StartNew();
        while (!await done())
        {
            if (clock.Elapsed > timeout) Assert.Fail($"{what}: not within {timeout.TotalSeconds:0} s");
            await Task.Delay(200);
        }
    }

    /// <remarks>
    /// Open (issue 11), so Category=Open, which ./test.sh leaves out (ROAM_TEST_ALL=1 runs it): everything up to the
    /// subflow works (the lease on car's subnet in about 0.8 s, the server's SF_ESTABLISHED for the join from car), but
    /// the server's MPTCP connection ends (its `ip mptcp monitor` shows CLOSED) as soon as the first subflow is removed,
    /// with or without NAT and with or without a RST from the old host; guest/net-smoke.sh, which moves the guest's
    /// cable without a migration, keeps the connection. The test prints the server's MPTCP events and counters.
    /// </remarks>
    [Trait("Category", "Open")]
    [ToolFact("qemu-system-x86_64", "python3", "ip", "tc", "nft", "dnsmasq")]
    public async Task An_MPTCP_stream_survives_a_move_to_another_subnet_and_the_old_host_keeps_nothing()
    {
        RequireRoot();
        _lab = await NetLab.CreateAsync(_prefix);
        await _lab.AddHostAsync("office");
        await _lab.AddHostAsync("car");
        var office = await StartRoamdAsync("office", "--vm-subnet", "10.1.0.0/24");
        var car = await StartRoamdAsync("car", "--vm-subnet", "10.2.0.0/24");
        await TrustAsync(office, "office", car, "car");
        var sink = StartSink(mptcp: true);
        var monitor = _lab.Start(_lab.Server, "ip", "mptcp", "monitor");
        var monitorOut = monitor.StandardOutput.ReadToEndAsync();

        await CreateStreamingVmAsync(office, "default", "mptcp");
        var serialOffice = Path.Combine(DataOf("office"), "vms", "vm.serial");
        var serialCar = Path.Combine(DataOf("car"), "vms", "vm.serial");
        var first = await WaitConsoleAsync(serialOffice, AddressLine(), TimeSpan.FromSeconds(90), "an address on office's VM network");
        Assert.StartsWith("10.1.0.", first.Groups[1].Value, StringComparison.Ordinal);
        Assert.Equal("mptcp", (await WaitConsoleAsync(serialOffice, StreamLine(), TimeSpan.FromSeconds(30), "the stream")).Groups[1].Value);
        var show = (await Roam(office, "vm", "show", "vm", "--json")).ShouldSucceed().Json;
        Assert.Equal("default", show.GetProperty("network").GetString());
        var mac = show.GetProperty("mac").GetString()!;
        var tap = show.GetProperty("tap").GetString()!;
        Assert.Contains(tap, await LinksAsync("office"));
        await Task.Delay(3000); // a few seconds of stream before the move

        var migrated = (await Roam(office, "vm", "migrate", "vm", "--to", "car")).ShouldSucceed();
        output.WriteLine(migrated.Stdout.Trim());
        var movedAt = sink.Clock.ElapsedMilliseconds;
        // On car, after its link went down and up: a lease on car's subnet; the MPTCP connection moved its subflow there.
        var second = await WaitConsoleAsync(serialCar, AddressLine(), TimeSpan.FromSeconds(60), "an address on car's VM network");
        Assert.StartsWith("10.2.0.", second.Groups[1].Value, StringComparison.Ordinal);
        var addressedAt = sink.Clock.ElapsedMilliseconds;
        var onCar = (await Roam(car, "vm", "show", "vm", "--json")).ShouldSucceed().Json;
        Assert.Equal(mac, onCar.GetProperty("mac").GetString()); // the MAC went with the VM

        // No residual dependency: office's tap, bridge, NAT and dnsmasq are gone, and its uplink is cut for good.
        await WaitAsync(async () => !(await LinksAsync("office")).Any(l => l.StartsWith("rt", StringComparison.Ordinal) || l.StartsWith("roam", StringComparison.Ordinal)),
            TimeSpan.FromSeconds(20), "office's tap and bridge removed");
        Assert.Equal("", (await _lab.RunAsync(_lab.Namespace("office"), "nft", "list", "ruleset")).Trim());
        await _lab.RunAsync(_lab.Namespace("office"), "ip", "link", "set", "uplink", "down");
        await Task.Delay(5000); // the stream goes on from car alone

        var result = await sink.StopAsync();
        output.WriteLine($"sink: bytes {result.Bytes}, longest gap {result.GapMs} ms, resets {result.Resets}, connections {result.Connections}; " +
                         $"moved at {movedAt} ms, address on car at {addressedAt} ms\n{result.Log}");
        output.WriteLine("server's MPTCP counters:\n" + await _lab.RunAsync(_lab.Server, "nstat", "-az", "MPTcp*"));
        monitor.Kill();
        output.WriteLine("server's MPTCP events:\n" + await monitorOut);
        Assert.Equal(0, result.Resets);
        Assert.Equal(1, result.Connections); // one MPTCP connection all along, not a reconnect
        long after = result.Rows.Where(r => r.T > addressedAt + 1000).Sum(r => r.Bytes);
        Assert.True(after > 200_000, $"only {after} bytes reached the sink after the guest took car's address");
        Assert.DoesNotContain("ROAM-NET STREAM RESET", ReadShared(serialCar));
    }

    [ToolFact("qemu-system-x86_64", "python3", "ip", "tc", "nft", "dnsmasq")]
    public async Task A_plain_TCP_stream_survives_a_move_on_one_LAN_and_roamd_restarted_keeps_the_network()
    {
        RequireRoot();
        _lab = await NetLab.CreateAsync(_prefix);
        await _lab.AddHostAsync("office");
        await _lab.AddHostAsync("car");
        await _lab.AddLanAsync("office", "car");
        var office = await StartRoamdAsync("office");
        var car = await StartRoamdAsync("car");
        await TrustAsync(office, "office", car, "car");
        var sink = StartSink(mptcp: false);

        await CreateStreamingVmAsync(office, "bridge=lan0", "tcp");
        var serialOffice = Path.Combine(DataOf("office"), "vms", "vm.serial");
        var serialCar = Path.Combine(DataOf("car"), "vms", "vm.serial");
        var address = (await WaitConsoleAsync(serialOffice, AddressLine(), TimeSpan.FromSeconds(90), "an address on the LAN")).Groups[1].Value;
        Assert.StartsWith(NetLab.LanSubnetPrefix + ".", address, StringComparison.Ordinal);
        Assert.Equal("tcp", (await WaitConsoleAsync(serialOffice, StreamLine(), TimeSpan.FromSeconds(30), "the stream")).Groups[1].Value);
        await Task.Delay(3000);

        (await Roam(office, "vm", "migrate", "vm", "--to", "car")).ShouldSucceed();
        var movedAt = sink.Clock.ElapsedMilliseconds;
        await Task.Delay(5000);
        // Same LAN: no link flap, no new lease; the guest keeps its address and its TCP connection.
        Assert.DoesNotContain("ROAM-NET LINK down", ReadShared(serialCar));

        // car's roamd restarts; the VM, its tap on lan0 and its stream carry on.
        var tap = (await Roam(car, "vm", "show", "vm", "--json")).ShouldSucceed().Json.GetProperty("tap").GetString()!;
        Assert.Equal(0, await car.StopAsync(TimeSpan.FromSeconds(30)));
        _roamds.Remove(car);
        car = await StartRoamdAsync("car");
        var adopted = (await Roam(car, "vm", "show", "vm", "--json")).ShouldSucceed().Json;
        Assert.Equal("running", adopted.GetProperty("state").GetString());
        Assert.Equal(tap, adopted.GetProperty("tap").GetString());
        Assert.Contains(tap, await LinksAsync("car"));
        var restartedAt = sink.Clock.ElapsedMilliseconds;
        await Task.Delay(3000);

        var result = await sink.StopAsync();
        output.WriteLine($"sink: bytes {result.Bytes}, longest gap {result.GapMs} ms, resets {result.Resets}, connections {result.Connections}; moved at {movedAt} ms\n{result.Log}");
        Assert.Equal(0, result.Resets);
        Assert.Equal(1, result.Connections);
        Assert.True(result.Rows.Where(r => r.T > movedAt + 1000 && r.T < restartedAt).Sum(r => r.Bytes) > 200_000, "the stream did not go on after the move");
        Assert.True(result.Rows.Where(r => r.T > restartedAt).Sum(r => r.Bytes) > 100_000, "the stream did not go on after car's roamd restarted");

        // The VM goes: its tap goes with it.
        (await Roam(car, "vm", "kill", "vm")).ShouldSucceed();
        (await Roam(car, "vm", "delete", "vm")).ShouldSucceed();
        await WaitAsync(async () => !(await LinksAsync("car")).Contains(tap), TimeSpan.FromSeconds(20), "car's tap removed");
        Assert.Contains("lan0", await LinksAsync("car")); // the host's own bridge stays
    }

    [ToolFact("ip", "nft", "dnsmasq")]
    public async Task Bad_network_input_gets_a_clear_error_and_changes_nothing()
    {
        RequireRoot();
        _lab = await NetLab.CreateAsync(_prefix);
        await _lab.AddHostAsync("office");
        // A VM subnet that overlaps the uplink, or is not a subnet at all: roamd refuses to start, and says why.
        foreach (var (subnet, reason) in new[] { ("10.0.1.0/24", "overlaps 10.0.1.0/24 on uplink"), ("10.1.0.1/24", "host bits are set"), ("10.1.0.0/33", "between 8 and 29") })
        {
            var refused = RoamdProcess.Spawn(["--data-dir", DataOf("office"), "--vm-subnet", subnet], networkNamespace: _lab.Namespace("office"));
            var stderr = await refused.StandardError.ReadToEndAsync();
            await refused.WaitForExitAsync();
            Assert.Equal(2, refused.ExitCode);
            Assert.Contains(reason, stderr, StringComparison.Ordinal);
        }
        var office = await StartRoamdAsync("office", "--vm-subnet", "10.1.0.0/24");
        var before = await LinksAsync("office");
        (await Roam(office, "volume", "create", Vol, "--size", "16M")).ShouldSucceed();
        (await Roam(office, "vm", "create", "vm", "--volume", Vol, "--network", "bridge=nosuch")).ShouldFail(1, "this host has no bridge nosuch");
        (await Roam(office, "vm", "create", "vm", "--volume", Vol, "--network", "bridge=uplink")).ShouldFail(1, "uplink is not a bridge");
        (await Roam(office, "vm", "create", "vm", "--volume", Vol, "--mac", "01:00:5e:00:00:01")).ShouldFail(1, "a unicast address");
        (await Roam(office, "vm", "create", "vm", "--volume", Vol, "--mac", "52:54:00:zz:00:01")).ShouldFail(1, "invalid MAC address");
        (await Roam(office, "vm", "create", "vm", "--volume", Vol, "--network", "nat")).ShouldFail(1, "use default, none or bridge=BRIDGE");
        (await Roam(office, "vm", "create", "vm", "--volume", Vol, "--network", "none", "--mac", "52:54:00:00:00:01")).ShouldFail(1, "--mac needs a network");
        Assert.Equal("[]", (await Roam(office, "vm", "list", "--json")).ShouldSucceed().Stdout.Replace(" ", "").Replace("\n", "").Trim());
        Assert.Equal(before, await LinksAsync("office"));

        // --network none: a VM without a NIC, as before VMs had one.
        (await Roam(office, "vm", "create", "vm", "--volume", Vol, "--network", "none")).ShouldSucceed();
        var show = (await Roam(office, "vm", "show", "vm", "--json")).ShouldSucceed().Json;
        Assert.False(show.TryGetProperty("network", out _));
        var id = (await Roam(office, "host", "id", "--json")).ShouldSucceed().Json;
        Assert.Equal("10.1.0.0/24", id.GetProperty("vmSubnet").GetString());
        Assert.Equal(before, await LinksAsync("office"));
    }
}
