using Roam.Replication.Engine;
using Roam.Replication.Tests.Support;
using Roam.Replication.Source;

namespace Roam.Replication.Tests;

/// <summary>
/// Three hosts (office, home, laptop): a volume on alpha with replicas beta and gamma, migrated to beta.
/// gamma must end up a replica of beta, caught up with what it lacks (never a full copy).
/// </summary>
[Collection(ReplicationCollection.Name)]
public sealed class ReplicaHandOffTests : ThreeHostsTest
{
    /// <summary>A volume on alpha, <paramref name="filled"/> bytes of random data, replicated to gamma (in sync).</summary>
    private async Task CreateWithGammaAsync(long size, long filled, ReplicaMode gammaMode)
    {
        Alpha.Store.Create(Vol, size);
        using (var lease = Alpha.Store.Open(Vol))
        {
            for (long at = 0; at < filled; at += 4 * MiB)
                await lease.Device.WriteAsync(at, Random((int)Math.Min(4 * MiB, filled - at), 100 + (int)(at / MiB)), false, default);
            await lease.Device.FlushAsync(default);
        }
        await Alpha.Service.AddReplicaAsync(Vol, "gamma", gammaMode);
        await Alpha.WaitInSyncAsync(Vol, "gamma");
    }

    private void AssertAllSame(params ReplNode[] nodes)
    {
        var expected = nodes[0].ReadRaw(Vol);
        foreach (var node in nodes.Skip(1))
            Assert.True(node.ReadRaw(Vol).AsSpan().SequenceEqual(expected), $"{node.Name}'s copy differs from {nodes[0].Name}'s");
    }

    private void AssertGammaFollowsBeta()
    {
        var gamma = Gamma.Service.GetStatus(Vol);
        Assert.Equal(VolumeRole.Replica, gamma.Role);
        Assert.Equal("beta", gamma.PrimaryPeer);
        Assert.Equal(Beta.Service.GetStatus(Vol).Generations.Current, gamma.Generations.Current);
    }

    [Theory]
    [InlineData(ReplicaMode.Sync)]
    [InlineData(ReplicaMode.Async)]
    public async Task Migrating_under_a_writer_hands_the_other_replica_to_the_new_primary_with_a_delta(ReplicaMode gammaMode)
    {
        await CreateWithGammaAsync(64 * MiB, 48 * MiB, gammaMode);
        await Alpha.Service.PrepareMigrationAsync(Vol, "beta");
        var device = Alpha.Open(Vol, out _);
        var writer = LoopWriter.Start(device, 0, 512, seed: 11);   // [0, 32 MiB), through the hand-over
        await Alpha.Service.WaitInSyncAsync(Vol);
        await Task.Delay(200);
        var result = await Alpha.Service.HandOverAsync(Vol, keepReplica: true);
        await writer.Task.WaitAsync(TimeSpan.FromSeconds(5));
        Assert.NotNull(writer.Refused);
        Assert.True(writer.Count > 20, $"only {writer.Count} writes");
        Assert.True(result.WritePause >= TimeSpan.Zero, $"write pause {result.WritePause}");   // measured by roam-bench write-pause, not asserted

        // beta lists both other hosts as its replicas, gamma in its old mode; alpha feeds nobody and kept no bitmap for gamma.
        var beta = Beta.Service.GetStatus(Vol);
        Assert.Equal(VolumeRole.Primary, beta.Role);
        Assert.Equal(["alpha", "gamma"], beta.Replicas.Select(r => r.Peer).Order());
        Assert.Equal(gammaMode, Beta.Replica(Vol, "gamma").Mode);
        Assert.Equal(VolumeRole.Replica, Alpha.Service.GetStatus(Vol).Role);
        Assert.False(File.Exists(Alpha.Service.Paths.Bitmap(Vol, "gamma")), "alpha still has a bitmap for gamma");

        await Beta.WaitInSyncAsync(Vol, "gamma");
        await Beta.WaitInSyncAsync(Vol, "alpha");
        AssertGammaFollowsBeta();
        AssertAllSame(Beta, Alpha, Gamma);
        writer.AssertOn(Gamma.ReadRaw(Vol));
        // A full copy would be 48 MiB of random data; gamma lacked at most what alpha had not mirrored yet.
        var toGamma = Beta.Replica(Vol, "gamma");
        Assert.True(toGamma.BytesSent < 4 * MiB, $"beta sent gamma {toGamma.BytesSent} bytes");
        Assert.Contains(Beta.Log.Entries, e => e.Message.Contains("[disk -> gamma] replica is older: resync the bitmap"));
    }

    [Fact]
    public async Task Writes_on_the_new_primary_reach_the_other_replica()
    {
        await CreateWithGammaAsync(16 * MiB, 8 * MiB, ReplicaMode.Sync);
        var migrated = await Alpha.Service.MigrateAsync(Vol, "beta", keepReplica: false, null);
        Assert.True(migrated.HandOver.VolumeDeleted);
        Assert.Equal(["gamma"], Beta.Service.GetStatus(Vol).Replicas.Select(r => r.Peer));
        await Beta.WaitInSyncAsync(Vol, "gamma");

        var device = Beta.Open(Vol, out bool readOnly);
        Assert.False(readOnly);
        var data = Random(300 * 1024, 5);
        await device.WriteAsync(10 * MiB + 4096, data, fua: false, default);
        await device.FlushAsync(default);
        // A sync replica: the write is on gamma once it completed.
        Assert.True(Gamma.ReadRaw(Vol).AsSpan((int)(10 * MiB + 4096), data.Length).SequenceEqual(data), "beta's write is not on gamma");
        await Beta.WaitInSyncAsync(Vol, "gamma");
        AssertGammaFollowsBeta();
        AssertAllSame(Beta, Gamma);
        Assert.True(Beta.Replica(Vol, "gamma").BytesResynced == 0, $"resynced {Beta.Replica(Vol, "gamma").BytesResynced} bytes");
    }

    [Fact]
    public async Task A_replica_away_during_the_hand_over_catches_up_from_the_new_primary_with_a_delta()
    {
        await CreateWithGammaAsync(32 * MiB, 32 * MiB, ReplicaMode.Sync);
        await Gamma.StopAsync();
        var device = Alpha.Open(Vol, out _);
        for (int i = 0; i < 4; i++) await device.WriteAsync(i * 7 * MiB + 8192, Random(64 * 1024, 30 + i), false, default);
        await Alpha.Service.MigrateAsync(Vol, "beta", keepReplica: true, null);

        // beta holds gamma's link with what gamma lacks, durably: it survives a crash right after the hand-over.
        await Beta.RestartAsync(crash: true);
        var waiting = Beta.Replica(Vol, "gamma");
        Assert.NotEqual(ReplicaState.InSync, waiting.State);
        Assert.InRange(waiting.BytesOutOfSync, 4 * 64 * 1024, 2 * MiB);
        var onBeta = Beta.Open(Vol, out _);
        var late = Random(64 * 1024, 40);
        await onBeta.WriteAsync(20 * MiB, late, false, default);

        await Gamma.StartAsync();
        await Beta.WaitInSyncAsync(Vol, "gamma");
        await Beta.WaitInSyncAsync(Vol, "alpha");
        AssertGammaFollowsBeta();
        AssertAllSame(Beta, Alpha, Gamma);
        var toGamma = Beta.Replica(Vol, "gamma");
        Assert.True(toGamma.BytesResynced <= 2 * MiB, $"beta resynced {toGamma.BytesResynced} bytes to gamma (the volume is 32 MiB)");
        Assert.True(toGamma.BytesSent < 3 * MiB, $"beta sent gamma {toGamma.BytesSent} bytes");
    }

    [Fact]
    public async Task A_promotion_whose_confirmation_is_lost_still_hands_the_other_replica_over()
    {
        await CreateWithGammaAsync(8 * MiB, 4 * MiB, ReplicaMode.Sync);
        await Alpha.Service.PrepareMigrationAsync(Vol, "beta");
        await Alpha.Service.WaitInSyncAsync(Vol);
        Beta.Service.Hooks.DropBeforeHandOverAck = true;
        Assert.Equal(ReplicationError.HandOverFailedAfterConfirm,
            (await Assert.ThrowsAsync<ReplicationException>(() => Alpha.Service.HandOverAsync(Vol))).Error);
        Beta.Service.Hooks.DropBeforeHandOverAck = false;
        Assert.Equal(VolumeRole.Replica, Alpha.Service.GetStatus(Vol).Role);
        await Beta.WaitInSyncAsync(Vol, "gamma");
        AssertGammaFollowsBeta();
        AssertAllSame(Beta, Gamma);
    }

    [Fact]
    public async Task A_refused_hand_over_leaves_the_other_replica_with_the_old_primary()
    {
        await CreateWithGammaAsync(8 * MiB, 4 * MiB, ReplicaMode.Sync);
        await Alpha.Service.PrepareMigrationAsync(Vol, "beta");
        await Alpha.Service.WaitInSyncAsync(Vol);
        Beta.Service.Hooks.RefuseHandOver = true;
        Assert.Equal(ReplicationError.HandOverFailed, (await Assert.ThrowsAsync<ReplicationException>(() => Alpha.Service.HandOverAsync(Vol))).Error);
        Beta.Service.Hooks.RefuseHandOver = false;

        Assert.Equal(VolumeRole.Primary, Alpha.Service.GetStatus(Vol).Role);
        Assert.Equal(VolumeRole.Replica, Beta.Service.GetStatus(Vol).Role);
        Assert.Equal("alpha", Gamma.Service.GetStatus(Vol).PrimaryPeer);
        var device = Alpha.Open(Vol, out _);
        var data = Random(128 * 1024, 7);
        await device.WriteAsync(MiB, data, false, default);
        await Alpha.WaitInSyncAsync(Vol, "gamma");
        Assert.True(Gamma.ReadRaw(Vol).AsSpan((int)MiB, data.Length).SequenceEqual(data), "alpha no longer feeds gamma");
        AssertAllSame(Alpha, Gamma);
    }
}
