using System.Text.Json;
using Roam.EndToEnd.Tests.Infrastructure;

namespace Roam.EndToEnd.Tests;

/// <summary>`roam volume unreplicate`: dropping a replica, with the peer told (its copy becomes its own) or unreachable.</summary>
public sealed class ReplicaDetailTests : TwoHostsTest
{
    protected override bool FixedPorts => false;

    private async Task ReplicateInSyncAsync()
    {
        await TrustEachOtherAsync();
        (await Roam(A, "volume", "create", Vol, "--size", "16M")).ShouldSucceed();
        (await Roam(A, "volume", "replicate", Vol, "--to", "beta")).ShouldSucceed();
        await WaitForReplicaStateAsync(A, "InSync", TimeSpan.FromSeconds(20));
        await WriteAsync(A, 0x5c, "0", "1M");
    }

    [ToolFact("qemu-io")]
    public async Task Unreplicate_drops_the_link_and_the_peer_copy_becomes_a_writable_volume()
    {
        await ReplicateInSyncAsync();

        // The replica says why it refuses writes.
        var onB = (await ShowAsync(B)).GetProperty("replication");
        Assert.True(onB.GetProperty("writesRefused").GetBoolean());
        var showB = (await Roam(B, "volume", "show", Vol)).ShouldSucceed().Stdout;
        Assert.Contains("refused", showB);
        Assert.Contains($"roam volume promote {Vol}", showB);
        Assert.False((await ShowAsync(A)).GetProperty("replication").GetProperty("writesRefused").GetBoolean());

        // What can be refused up front is, with a reason.
        (await Roam(A, "volume", "unreplicate", Vol, "--from", "gamma")).ShouldFail(1, "has no replica on gamma");
        (await Roam(B, "volume", "unreplicate", Vol, "--from", "alpha")).ShouldFail(1, "is a replica of alpha");
        (await Roam(A, "volume", "unreplicate", "nope", "--from", "beta")).ShouldFail(1, "nope");

        var removed = (await Roam(A, "volume", "unreplicate", Vol, "--from", "beta")).ShouldSucceed().Stdout;
        Assert.Contains("no longer replicated to beta", removed);
        Assert.Contains("beta dropped its replica role", removed);

        var onA = (await ShowAsync(A)).GetProperty("replication");
        Assert.Equal(0, onA.GetProperty("replicas").GetArrayLength());
        Assert.Equal("primary", onA.GetProperty("role").GetString());
        Assert.DoesNotContain("REPLICA", (await Roam(A, "volume", "show", Vol)).ShouldSucceed().Stdout);

        // beta's copy keeps the data and is a primary of its own: writable.
        onB = (await ShowAsync(B)).GetProperty("replication");
        Assert.Equal("primary", onB.GetProperty("role").GetString());
        Assert.False(onB.GetProperty("writesRefused").GetBoolean());
        await AssertReadsAsync(B, 0x5c, "0", "1M");
        await WriteAsync(B, 0x33, "2M", "1M");
        await AssertReadsAsync(B, 0x33, "2M", "1M");
        await AssertReadsAsync(A, 0x00, "2M", "1M"); // nothing flows back to alpha

        // Neither host holds the volume under replication any more: both can delete it.
        (await Roam(A, "volume", "unreplicate", Vol, "--from", "beta")).ShouldFail(1, "not replicated");
        (await Roam(B, "volume", "delete", Vol)).ShouldSucceed();
        // Without a restart: the replicated-primary wrapper lets go of the volume once it has no replica left.
        (await Roam(A, "volume", "delete", Vol)).ShouldSucceed();
        Assert.False(File.Exists(Path.Combine(DataA, "replication", Vol + ".json")), "the deleted volume's replication state was left behind");
        (await Roam(A, "volume", "create", Vol, "--size", "1M")).ShouldSucceed();
        Assert.Equal("primary", (await ShowAsync(A)).GetProperty("replication").GetProperty("role").GetString());
        Assert.Empty((await ShowAsync(A)).GetProperty("replication").GetProperty("replicas").EnumerateArray());
    }

    [ToolFact("qemu-io")]
    public async Task Unreplicate_with_the_peer_unreachable_warns_and_the_peer_copy_stays_a_replica_until_promoted()
    {
        await ReplicateInSyncAsync();
        Assert.Equal(0, await B.StopAsync(TimeSpan.FromSeconds(15)));

        var removed = await Roam(A, "volume", "unreplicate", Vol, "--from", "beta", "--json");
        Assert.Equal(0, removed.ExitCode);
        var json = JsonDocument.Parse(removed.Stdout).RootElement;
        Assert.False(json.GetProperty("peerDetached").GetBoolean());
        Assert.False(string.IsNullOrEmpty(json.GetProperty("peerError").GetString()));
        Assert.Equal(0, json.GetProperty("volume").GetProperty("replication").GetProperty("replicas").GetArrayLength());
        var text = await Roam(A, "volume", "show", Vol);
        Assert.DoesNotContain("REPLICA", text.ShouldSucceed().Stdout);

        await B.DisposeAsync();
        B = await RoamdProcess.StartAsync(DataB, ArgumentsFor("beta", 0));
        Assert.Equal("replica", (await ShowAsync(B)).GetProperty("replication").GetProperty("role").GetString());
        (await Roam(B, "volume", "promote", Vol)).ShouldSucceed();
        await WriteAsync(B, 0x44, "0", "64k");
        // Promoted, it tracks what it writes for alpha on a parted link: shown, in the way of a resize, not of a delete.
        Assert.Equal("Parted", (await ReplicaAsync(B)).GetProperty("state").GetString());
        (await Roam(B, "volume", "resize", Vol, "--size", "64M")).ShouldFail(1, "promoted away from alpha");
        (await Roam(B, "volume", "delete", Vol)).ShouldSucceed();
    }
}
