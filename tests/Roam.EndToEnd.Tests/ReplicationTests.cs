using System.Net;
using System.Net.Sockets;
using System.Text.Json;
using Roam.EndToEnd.Tests.Infrastructure;

namespace Roam.EndToEnd.Tests;

/// <summary>
/// Two real roamds on loopback ("alpha" and "beta"), each with its own data dir and peer listener,
/// driven by the real `roam` command line and qemu-io.
/// </summary>
public abstract class TwoHostsTest : IAsyncLifetime
{
    protected const string Vol = "vol";

    protected TestDirectory Dir { get; } = new();

    protected RoamdProcess A { get; set; } = null!;

    protected RoamdProcess B { get; set; } = null!;

    protected string DataA => Path.Combine(Dir.Path, "a");

    protected string DataB => Path.Combine(Dir.Path, "b");

    /// <summary>Peer listen ports; 0 lets each roamd pick one (then a restarted roamd gets a new one).</summary>
    protected int PortA { get; private set; }

    protected int PortB { get; private set; }

    protected abstract bool FixedPorts { get; }

    /// <summary>Extra environment for a host's roamd (test hooks), or null.</summary>
    protected virtual IReadOnlyDictionary<string, string>? EnvironmentFor(string hostName) => null;

    protected string[] ArgumentsFor(string hostName, int port) =>
        ["--host-name", hostName, "--peer-listen", $"127.0.0.1:{port}", "--sync-timeout", "2"];

    public async Task InitializeAsync()
    {
        if (FixedPorts) (PortA, PortB) = (FreePort(), FreePort());
        var starting = new[]
        {
            RoamdProcess.StartAsync(DataA, ArgumentsFor("alpha", PortA), EnvironmentFor("alpha")),
            RoamdProcess.StartAsync(DataB, ArgumentsFor("beta", PortB), EnvironmentFor("beta")),
        };
        var started = await Task.WhenAll(starting);
        (A, B) = (started[0], started[1]);
    }

    public async Task DisposeAsync()
    {
        await A.DisposeAsync();
        await B.DisposeAsync();
        Dir.Dispose();
    }

    protected static Task<CliResult> Roam(RoamdProcess host, params string[] arguments) => RoamRunner.RunAsync(host.ControlSocket, arguments);

    protected static async Task<(string Name, string Fingerprint, string PeerListen)> IdAsync(RoamdProcess host)
    {
        var json = (await Roam(host, "host", "id", "--json")).ShouldSucceed().Json;
        return (json.GetProperty("hostName").GetString()!, json.GetProperty("fingerprint").GetString()!, json.GetProperty("peerListen").GetString()!);
    }

    protected static async Task<JsonElement> ShowAsync(RoamdProcess host, string volume = Vol) =>
        (await Roam(host, "volume", "show", volume, "--json")).ShouldSucceed().Json;

    protected static async Task<JsonElement> ReplicaAsync(RoamdProcess host, string volume = Vol)
    {
        var replicas = (await ShowAsync(host, volume)).GetProperty("replication").GetProperty("replicas");
        Assert.Equal(1, replicas.GetArrayLength());
        return replicas[0];
    }

    /// <summary>Polls `roam volume show` until the (single) replica reaches <paramref name="state"/>.</summary>
    protected static async Task<JsonElement> WaitForReplicaStateAsync(RoamdProcess host, string state, TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (true)
        {
            var replica = await ReplicaAsync(host);
            if (replica.GetProperty("state").GetString() == state) return replica;
            Assert.True(DateTime.UtcNow < deadline, $"the replica is {replica}, still not {state} after {timeout.TotalSeconds} s\n{host.Output}");
            await Task.Delay(100);
        }
    }

    /// <summary>Each host trusts the other under its own name ("alpha", "beta"), at the address `roam host id` reports.</summary>
    protected async Task TrustEachOtherAsync()
    {
        var (nameA, fingerprintA, listenA) = await IdAsync(A);
        var (nameB, fingerprintB, listenB) = await IdAsync(B);
        Assert.Equal(("alpha", "beta"), (nameA, nameB));
        (await Roam(A, "host", "add", "beta", listenB, "--fingerprint", fingerprintB)).ShouldSucceed();
        (await Roam(B, "host", "add", "alpha", listenA, "--fingerprint", fingerprintA)).ShouldSucceed();
    }

    protected static string UnixUri(RoamdProcess host) => host.NbdUri(Vol);

    protected static async Task WriteAsync(RoamdProcess host, byte pattern, string offset, string length)
    {
        var write = await Tools.RunAsync("qemu-io", "-f", "raw", UnixUri(host), "-c", $"write -P 0x{pattern:x2} {offset} {length}");
        write.ShouldSucceed($"qemu-io write on {host.DataDir}");
    }

    protected static async Task AssertReadsAsync(RoamdProcess host, byte pattern, string offset, string length)
    {
        var read = await Tools.RunAsync("qemu-io", "-r", "-f", "raw", UnixUri(host), "-c", $"read -P 0x{pattern:x2} {offset} {length}");
        read.ShouldSucceed($"qemu-io read on {host.DataDir}");
        Assert.DoesNotContain("Pattern verification failed", read.Stdout + read.Stderr);
    }

    protected void AssertSameData() =>
        Assert.Equal(Images.Sha256(Path.Combine(DataA, "volumes", Vol + ".raw")), Images.Sha256(Path.Combine(DataB, "volumes", Vol + ".raw")));

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}

/// <summary>The happy path: trust, replicate, write, read on the replica, and a replica host that restarts and catches up.</summary>
public sealed class ReplicationTests : TwoHostsTest
{
    protected override bool FixedPorts => true; // beta restarts and must come back where alpha expects it

    [ToolFact("qemu-io")]
    public async Task Sync_replica_gets_the_writes_is_read_only_and_catches_up_after_a_restart()
    {
        // Identities: text and JSON agree, and name the listener.
        var (_, fingerprintA, listenA) = await IdAsync(A);
        Assert.Equal($"127.0.0.1:{PortA}", listenA);
        var idText = (await Roam(A, "host", "id")).ShouldSucceed().Stdout;
        Assert.Contains("alpha", idText);
        Assert.Contains(fingerprintA, idText);

        await TrustEachOtherAsync();
        var list = (await Roam(A, "host", "list")).ShouldSucceed().Stdout;
        Assert.Contains("beta", list);
        Assert.Contains($"127.0.0.1:{PortB}", list);
        var peers = (await Roam(A, "host", "list", "--json")).ShouldSucceed().Json;
        Assert.Equal("beta", peers[0].GetProperty("name").GetString());
        Assert.Equal(JsonValueKind.Null, peers[0].GetProperty("connected").ValueKind); // nothing replicated with it yet

        (await Roam(A, "volume", "create", Vol, "--size", "64M")).ShouldSucceed();
        var replicate = (await Roam(A, "volume", "replicate", Vol, "--to", "beta", "--mode", "sync", "--bandwidth", "50M")).ShouldSucceed();
        Assert.Contains("replicating volume vol to beta (sync)", replicate.Stdout);
        await WaitForReplicaStateAsync(A, "InSync", TimeSpan.FromSeconds(20));

        await WriteAsync(A, 0x5c, "0", "4M");

        // Sync mode: the write completed only once beta had it.
        var replica = await ReplicaAsync(A);
        Assert.Equal("InSync", replica.GetProperty("state").GetString());
        Assert.Equal("sync", replica.GetProperty("mode").GetString());
        Assert.Equal(0, replica.GetProperty("bytesOutOfSync").GetInt64());
        Assert.Equal(50L * 1024 * 1024, replica.GetProperty("bandwidth").GetInt64());
        // qemu-io's pattern compresses: LZ4 kept most of the 4 MiB off the wire.
        Assert.True(replica.GetProperty("bytesSavedByCompression").GetInt64() > 2 * 1024 * 1024, $"replica: {replica}");
        Assert.Equal("primary", (await ShowAsync(A)).GetProperty("replication").GetProperty("role").GetString());
        AssertSameData();
        await AssertReadsAsync(B, 0x5c, "0", "4M");

        var onB = (await ShowAsync(B)).GetProperty("replication");
        Assert.Equal("replica", onB.GetProperty("role").GetString());
        Assert.Equal("alpha", onB.GetProperty("primaryPeer").GetString());
        Assert.Equal((await ShowAsync(A)).GetProperty("replication").GetProperty("generation").GetString(), onB.GetProperty("generation").GetString());

        var show = (await Roam(A, "volume", "show", Vol)).ShouldSucceed().Stdout;
        Assert.Contains("primary", show);
        Assert.Contains("InSync", show);
        Assert.Contains("LZ4 saved", show);
        Assert.Contains("50 MiB/s", show);
        Assert.Contains("replica of alpha", (await Roam(B, "volume", "show", Vol)).ShouldSucceed().Stdout);

        // The replica is read-only: a writer cannot even open it.
        var refused = await Tools.RunAsync("qemu-io", "-f", "raw", UnixUri(B), "-c", "write -P 0x11 0 64k");
        Assert.NotEqual(0, refused.ExitCode);
        await AssertReadsAsync(B, 0x5c, "0", "4M");

        Assert.True((await Roam(A, "host", "list", "--json")).ShouldSucceed().Json[0].GetProperty("connected").GetBoolean());
        Assert.Contains("yes", (await Roam(B, "host", "list")).ShouldSucceed().Stdout);

        // Replicated volumes are not deleted from under replication.
        (await Roam(A, "volume", "delete", Vol)).ShouldFail(1, "replicated to beta");
        (await Roam(B, "volume", "delete", Vol)).ShouldFail(1, "is a replica of alpha");

        // beta goes away: alpha's writer carries on, and the replica falls behind.
        Assert.Equal(0, await B.StopAsync(TimeSpan.FromSeconds(15)));
        await WriteAsync(A, 0x7e, "8M", "2M");
        var behind = await ReplicaAsync(A);
        Assert.NotEqual("InSync", behind.GetProperty("state").GetString());
        Assert.True(behind.GetProperty("bytesOutOfSync").GetInt64() >= 2 * 1024 * 1024, $"replica: {behind}");
        Assert.False((await Roam(A, "host", "list", "--json")).ShouldSucceed().Json[0].GetProperty("connected").GetBoolean());

        // beta comes back on the same data dir and port; alpha reconnects and resyncs what it missed.
        await B.DisposeAsync();
        B = await RoamdProcess.StartAsync(DataB, ArgumentsFor("beta", PortB));
        Assert.Equal(fingerprintA, (await Roam(B, "host", "list", "--json")).ShouldSucceed().Json[0].GetProperty("fingerprint").GetString());
        await WaitForReplicaStateAsync(A, "InSync", TimeSpan.FromSeconds(30));
        AssertSameData();
        await AssertReadsAsync(B, 0x7e, "8M", "2M");
        await AssertReadsAsync(B, 0x5c, "0", "4M");

        // Promotion: refused while alpha is attached; once alpha is gone, beta's copy becomes the writable primary.
        (await Roam(B, "volume", "promote", Vol)).ShouldFail(1, "attached to its primary alpha");
        Assert.Equal(0, await A.StopAsync(TimeSpan.FromSeconds(15)));
        var deadline = DateTime.UtcNow.AddSeconds(10);
        while ((await ShowAsync(B)).GetProperty("replication").GetProperty("primaryConnected").GetBoolean())
        {
            Assert.True(DateTime.UtcNow < deadline, "beta still reports alpha attached after alpha stopped");
            await Task.Delay(50);
        }
        var promoted = (await Roam(B, "volume", "promote", Vol)).ShouldSucceed();
        Assert.Contains("is now the primary", promoted.Stdout);
        Assert.Equal("primary", (await ShowAsync(B)).GetProperty("replication").GetProperty("role").GetString());
        await WriteAsync(B, 0x42, "0", "64k");
        await AssertReadsAsync(B, 0x42, "0", "64k");
    }
}

/// <summary>Refusals: fingerprints that do not match, peers that are not trusted, bad arguments.</summary>
public sealed class ReplicationRefusalTests : TwoHostsTest
{
    protected override bool FixedPorts => false; // port 0: roamd reports the port it got

    [Fact]
    public async Task A_wrong_fingerprint_or_an_untrusting_peer_is_refused_with_the_reason()
    {
        var (_, fingerprintA, listenA) = await IdAsync(A);
        var (_, fingerprintB, listenB) = await IdAsync(B);
        Assert.NotEqual("127.0.0.1:0", listenA);
        (await Roam(A, "volume", "create", Vol, "--size", "16M")).ShouldSucceed();

        // Not trusted at all.
        (await Roam(A, "volume", "replicate", Vol, "--to", "beta")).ShouldFail(1, "no trusted peer is named beta");

        // alpha pins the wrong certificate for beta (alpha's own): the TLS check names both fingerprints.
        (await Roam(A, "host", "add", "beta", listenB, "--fingerprint", fingerprintA)).ShouldSucceed();
        var mismatch = (await Roam(A, "volume", "replicate", Vol, "--to", "beta")).ShouldFail(1, "beta");
        Assert.Contains(fingerprintB, mismatch.Stderr);
        Assert.Contains("trusted as " + fingerprintA, mismatch.Stderr);
        (await Roam(B, "volume", "show", Vol)).ShouldFail(1, "no volume named 'vol'");

        // The right fingerprint, but beta does not trust alpha: refused during the handshake.
        (await Roam(A, "host", "remove", "beta")).ShouldSucceed();
        (await Roam(A, "host", "remove", "beta")).ShouldFail(1, "no trusted peer is named beta");
        (await Roam(A, "host", "add", "beta", listenB, "--fingerprint", fingerprintB)).ShouldSucceed();
        (await Roam(A, "volume", "replicate", Vol, "--to", "beta")).ShouldFail(1, "does not trust this host");

        // Trusting each other, it works.
        (await Roam(B, "host", "add", "alpha", listenA, "--fingerprint", fingerprintA)).ShouldSucceed();
        (await Roam(A, "volume", "replicate", Vol, "--to", "beta", "--mode", "async")).ShouldSucceed();
        await WaitForReplicaStateAsync(A, "InSync", TimeSpan.FromSeconds(20));
        Assert.Equal("async", (await ReplicaAsync(A)).GetProperty("mode").GetString());
        (await Roam(A, "volume", "replicate", Vol, "--to", "beta")).ShouldFail(1, "already replicated to beta");

        // Argument checks.
        (await Roam(A, "host", "add", "gamma", "127.0.0.1:1", "--fingerprint", "nonsense")).ShouldFail(1, "is not a certificate fingerprint");
        (await Roam(A, "host", "add", "gamma", "127.0.0.1", "--fingerprint", fingerprintB)).ShouldFail(1, "has no port");
        (await Roam(A, "host", "add", "other", listenB, "--fingerprint", fingerprintB)).ShouldFail(1, "already trusted as peer beta");
        (await Roam(A, "volume", "replicate", Vol, "--to", "beta", "--mode", "sometimes")).ShouldFail(2, "sometimes");
        (await Roam(A, "volume", "replicate", "nope", "--to", "beta")).ShouldFail(1, "no volume named 'nope'");
        (await Roam(A, "volume", "promote", Vol)).ShouldFail(1, "is not a replica here");
    }
}
