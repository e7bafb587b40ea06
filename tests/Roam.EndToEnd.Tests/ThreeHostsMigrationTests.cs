using System.Text.Json;
using Roam.EndToEnd.Tests.Infrastructure;

namespace Roam.EndToEnd.Tests;

/// <summary>
/// Three real roamds (office "alpha", home "beta", laptop "gamma"): a volume on alpha replicated to gamma
/// migrates to beta, and gamma stays a warm replica, fed by beta from then on with only what it lacked.
/// </summary>
public sealed class ThreeHostsMigrationTests : IAsyncLifetime
{
    private const string Vol = "vol";
    private const long MiB = 1024 * 1024;
    private readonly TestDirectory _dir = new();
    private readonly Dictionary<string, RoamdProcess> _hosts = [];

    private RoamdProcess A => _hosts["alpha"];
    private RoamdProcess B => _hosts["beta"];
    private RoamdProcess C => _hosts["gamma"];

    private string DataOf(string host) => Path.Combine(_dir.Path, host);

    public async Task InitializeAsync()
    {
        string[] names = ["alpha", "beta", "gamma"];
        var started = await Task.WhenAll(names.Select(n =>
            RoamdProcess.StartAsync(DataOf(n), "--host-name", n, "--peer-listen", "127.0.0.1:0", "--sync-timeout", "2")));
        for (int i = 0; i < names.Length; i++) _hosts[names[i]] = started[i];
    }

    public async Task DisposeAsync()
    {
        foreach (var host in _hosts.Values) await host.DisposeAsync();
        _dir.Dispose();
    }

    private static Task<CliResult> Roam(RoamdProcess host, params string[] arguments) => RoamRunner.RunAsync(host.ControlSocket, arguments);

    private static async Task<JsonElement> ReplicationOf(RoamdProcess host) =>
        (await Roam(host, "volume", "show", Vol, "--json")).ShouldSucceed().Json.GetProperty("replication");

    private async Task TrustAllAsync()
    {
        var ids = new Dictionary<string, JsonElement>();
        foreach (var (name, host) in _hosts) ids[name] = (await Roam(host, "host", "id", "--json")).ShouldSucceed().Json;
        foreach (var (name, host) in _hosts)
            foreach (var (other, id) in ids.Where(i => i.Key != name))
                (await Roam(host, "host", "add", other, id.GetProperty("peerListen").GetString()!, "--fingerprint", id.GetProperty("fingerprint").GetString()!))
                    .ShouldSucceed();
    }

    private static async Task<JsonElement> WaitForReplicaAsync(RoamdProcess host, string peer, string state, TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (true)
        {
            var replicas = (await ReplicationOf(host)).GetProperty("replicas").EnumerateArray().ToList();
            var replica = replicas.FirstOrDefault(r => r.GetProperty("peer").GetString() == peer);
            if (replica.ValueKind == JsonValueKind.Object && replica.GetProperty("state").GetString() == state) return replica;
            Assert.True(DateTime.UtcNow < deadline, $"the replica on {peer} is {replica}, still not {state} after {timeout.TotalSeconds} s\n{host.Output}");
            await Task.Delay(100);
        }
    }

    private string Sha256Of(string host) => Images.Sha256(Path.Combine(DataOf(host), "volumes", Vol + ".raw"));

    [ToolFact("qemu-io")]
    public async Task Migrating_moves_the_other_replica_to_the_new_primary_with_only_a_delta()
    {
        await TrustAllAsync();
        (await Roam(A, "volume", "create", Vol, "--size", "128M")).ShouldSucceed();
        (await Tools.RunAsync("qemu-io", "-f", "raw", A.NbdUri(Vol), "-c", "write -P 0x5a 0 96M")).ShouldSucceed("qemu-io write on alpha");
        (await Roam(A, "volume", "replicate", Vol, "--to", "gamma", "--mode", "async", "--bandwidth", "500M")).ShouldSucceed();
        await WaitForReplicaAsync(A, "gamma", "InSync", TimeSpan.FromSeconds(60));

        (await Roam(A, "volume", "migrate", Vol, "--to", "beta")).ShouldSucceed();

        // beta lists gamma (as alpha had it) and alpha; gamma follows beta; all three hold the same bytes.
        var onB = await ReplicationOf(B);
        Assert.Equal("primary", onB.GetProperty("role").GetString());
        Assert.Equal(["alpha", "gamma"], onB.GetProperty("replicas").EnumerateArray().Select(r => r.GetProperty("peer").GetString()).Order());
        var gamma = await WaitForReplicaAsync(B, "gamma", "InSync", TimeSpan.FromSeconds(30));
        Assert.Equal("Async", gamma.GetProperty("mode").GetString(), ignoreCase: true);
        Assert.True(gamma.GetProperty("bandwidth").GetInt64() > 0, $"the bandwidth limit was lost: {gamma}");
        // Resynced counts volume bytes (the wire carries less: qemu-io's patterns compress): a full copy is 128 MiB.
        Assert.True(gamma.GetProperty("bytesResynced").GetInt64() < 2 * MiB, $"beta copied to gamma: {gamma}");
        var onC = await ReplicationOf(C);
        Assert.Equal("beta", onC.GetProperty("primaryPeer").GetString());
        Assert.Empty((await ReplicationOf(A)).GetProperty("replicas").EnumerateArray());

        // beta's writes reach gamma.
        (await Tools.RunAsync("qemu-io", "-f", "raw", B.NbdUri(Vol), "-c", "write -P 0x77 100M 1M")).ShouldSucceed("qemu-io write on beta");
        await WaitForReplicaAsync(B, "gamma", "InSync", TimeSpan.FromSeconds(30));
        await WaitForReplicaAsync(B, "alpha", "InSync", TimeSpan.FromSeconds(30));
        Assert.Equal(Sha256Of("beta"), Sha256Of("gamma"));
        Assert.Equal(Sha256Of("beta"), Sha256Of("alpha"));
    }
}
