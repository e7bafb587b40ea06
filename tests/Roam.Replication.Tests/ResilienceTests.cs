using System.Diagnostics;
using Roam.Replication.Engine;
using Roam.Replication.HandOver;
using Roam.Storage.Devices;

namespace Roam.Replication.Tests;

/// <summary>Crashes in the middle of a hand-over, primary crashes with a forced promotion, fencing, paused links, heartbeats.</summary>
public abstract class ResilienceTestBase : ReplicationTestBase
{
    protected ReplicationService A => Primary.Service;
    protected ReplicationService B => Secondary.Service;

    protected async Task CreateFilledAsync(long size, long filled, int seed = 1)
    {
        Primary.Store.Create(Vol, size);
        using var lease = Primary.Store.Open(Vol);
        for (long at = 0; at < filled; at += 4 * MiB)
            await lease.Device.WriteAsync(at, Random((int)Math.Min(4 * MiB, filled - at), seed + (int)(at / MiB)), false, default);
        await lease.Device.FlushAsync(default);
    }

    protected static async Task AssertReadOnlyAsync(IBlockDevice device, string? contains = null)
    {
        var ex = await Assert.ThrowsAsync<BlockDeviceException>(() => device.WriteAsync(0, new byte[4096], false, default).AsTask());
        Assert.Equal(BlockDeviceError.ReadOnly, ex.Error);
        if (contains is not null) Assert.Contains(contains, ex.Message);
    }

    protected static bool Holds(byte[] raw, long offset, byte[] data) => raw.AsSpan((int)offset, data.Length).SequenceEqual(data);

    protected string Logs(ReplNode node) => string.Join(" | ", node.Log.Entries.TakeLast(15).Select(e => e.Message));
}

public sealed class HandOverCrashTests : ResilienceTestBase
{
    /// <summary>Migrated up to the hand-over with an acknowledged write; then the source "dies" right after sending HandOver.</summary>
    private async Task<byte[]> CrashAfterSendingHandOverAsync(Func<Task>? beforeCrash)
    {
        await CreateFilledAsync(8 * MiB, 4 * MiB);
        await A.PrepareMigrationAsync(Vol, "beta");
        var device = Primary.Open(Vol, out _);
        var acked = Random(256 * 1024, 9);
        await device.WriteAsync(5 * MiB, acked, fua: false, default);
        await A.WaitInSyncAsync(Vol);
        A.Hooks.CrashAfter = VolumeHandOverStep.SendPromote;
        A.Hooks.BeforeCrash = beforeCrash;
        await Assert.ThrowsAsync<SimulatedCrashException>(() => A.HandOverAsync(Vol));
        await Primary.StopAsync(crash: true);
        return acked;
    }

    [Fact]
    public async Task A_source_crashing_after_HandOver_that_the_destination_took_comes_back_as_its_replica()
    {
        var acked = await CrashAfterSendingHandOverAsync(() => Wait.UntilAsync(() => B.GetStatus(Vol).Role == VolumeRole.Primary,
            TimeSpan.FromSeconds(10), () => "beta never took over"));
        await Primary.StartAgainAsync();
        // Never two writable primaries: until alpha knows, it refuses writes; then it is beta's replica.
        var early = A.GetStatus(Vol);
        Assert.True(early.Role == VolumeRole.Replica || early.WritesRefused, $"alpha came back writable: {early}");
        Primary.Open(Vol, out bool readOnly);
        Assert.True(readOnly);
        await Wait.UntilAsync(() => A.GetStatus(Vol).Role == VolumeRole.Replica, TimeSpan.FromSeconds(10), () => $"alpha still {A.GetStatus(Vol)}: {Logs(Primary)}");
        Assert.Equal(VolumeRole.Primary, B.GetStatus(Vol).Role);
        Assert.Equal(B.GetStatus(Vol).Generations.Current, A.GetStatus(Vol).Generations.Current);
        Assert.True(Holds(Secondary.ReadRaw(Vol), 5 * MiB, acked));
        // beta replicates back to alpha, with nothing to resync.
        await Secondary.WaitInSyncAsync(Vol);
        AssertSame();
        var device = Secondary.Open(Vol, out readOnly);
        Assert.False(readOnly);
        await device.WriteAsync(MiB, Random(4096, 3), false, default);
        Primary.Open(Vol, out readOnly);
        Assert.True(readOnly, "alpha exports its replica read-only");
    }

    [Fact]
    public async Task A_source_crashing_after_HandOver_that_the_destination_refused_stays_read_only_while_it_cannot_ask_then_is_primary_again()
    {
        // Left on until beta stops (its restart starts without it): beta may get the HandOver frame only after the
        // crash returns, and must refuse it then too.
        B.Hooks.RefuseHandOver = true;
        var acked = await CrashAfterSendingHandOverAsync(null);
        Assert.Equal(VolumeRole.Replica, B.GetStatus(Vol).Role);
        await Secondary.StopAsync();   // the destination is unreachable when alpha restarts

        await Primary.StartAgainAsync();
        var device = Primary.Open(Vol, out bool readOnly);
        Assert.True(readOnly, "a volume with a hand-over in doubt is exported read-only");
        await AssertReadOnlyAsync(device, "in doubt");
        await Wait.UntilAsync(() => A.GetStatus(Vol).Notice?.Contains("cannot be asked") == true, TimeSpan.FromSeconds(15),
            () => $"no notice: {A.GetStatus(Vol)}");
        var doubt = A.GetStatus(Vol);
        Assert.Equal("beta", doubt.HandOverPeer);
        Assert.True(doubt.WritesRefused);
        Assert.Contains(Primary.Log.Entries, e => e.EventId.Id == 3139);

        await Secondary.StartAgainAsync();
        await Wait.UntilAsync(() => !A.GetStatus(Vol).WritesRefused, TimeSpan.FromSeconds(15), () => $"alpha still {A.GetStatus(Vol)}: {Logs(Primary)}");
        Assert.Equal(VolumeRole.Primary, A.GetStatus(Vol).Role);
        Assert.Null(A.GetStatus(Vol).HandOverPeer);
        Assert.Equal(VolumeRole.Replica, B.GetStatus(Vol).Role);
        Assert.True(Holds(Primary.ReadRaw(Vol), 5 * MiB, acked));
        device = Primary.Open(Vol, out readOnly);
        Assert.False(readOnly);
        await device.WriteAsync(6 * MiB, Random(4096, 10), false, default);
        await Primary.WaitInSyncAsync(Vol);
        AssertSame();
        // And the migration can be done again.
        await A.PrepareMigrationAsync(Vol, "beta");
        await A.WaitInSyncAsync(Vol);
        await A.HandOverAsync(Vol);
        Assert.Equal(VolumeRole.Primary, B.GetStatus(Vol).Role);
        Assert.Equal(VolumeRole.Replica, A.GetStatus(Vol).Role);
    }
}

public sealed class PrimaryCrashTests : ResilienceTestBase
{
    /// <summary>alpha (primary, beta in sync) crashes; beta is promoted and writes. Returns beta's write.</summary>
    private async Task<byte[]> CrashPrimaryAndPromoteAsync()
    {
        var device = await ReplicatedAsync(8 * MiB, ReplicaMode.Sync);
        await device.WriteAsync(0, Random(256 * 1024, 1), false, default);
        AssertSame();
        await Primary.StopAsync(crash: true);
        await B.PromoteAsync(Vol, force: true);
        var beta = Secondary.Open(Vol, out bool readOnly);
        Assert.False(readOnly);
        var betaWrite = Random(64 * 1024, 2);
        await beta.WriteAsync(2 * MiB, betaWrite, false, default);
        return betaWrite;
    }

    [Fact]
    public async Task A_crashed_primary_restarting_after_a_forced_promotion_is_outdated_and_nothing_syncs()
    {
        var betaWrite = await CrashPrimaryAndPromoteAsync();
        var alphaBefore = Primary.ReadRaw(Vol);
        await Primary.StartAgainAsync();
        await Wait.UntilAsync(() => Primary.Replica(Vol).State == ReplicaState.Outdated, TimeSpan.FromSeconds(10),
            () => $"{Primary.Replica(Vol)}: {Logs(Primary)}");
        await Task.Delay(500);   // a few reconnects: still nothing may flow either way
        Assert.Equal(ReplicaState.Outdated, Primary.Replica(Vol).State);
        Assert.Equal(0, Primary.Replica(Vol).BytesResynced);
        Assert.True(Primary.ReadRaw(Vol).AsSpan().SequenceEqual(alphaBefore), "alpha's data changed");
        Assert.True(Holds(Secondary.ReadRaw(Vol), 2 * MiB, betaWrite));
        Assert.Equal(VolumeRole.Primary, B.GetStatus(Vol).Role);
        Assert.Contains("newer", Primary.Replica(Vol).Detail);
        // And beta, promoted, tells by itself that alpha came back outdated.
        Assert.Contains("alpha came back as this volume's primary with older data", B.GetStatus(Vol).Notice);
        // alpha is fenced: a write would turn the outdated copy into a split brain.
        await AssertReadOnlyAsync(Primary.Open(Vol, out _), "outdated");
        Assert.True(A.GetStatus(Vol).WritesRefused);
        Assert.Contains("roam volume resolve disk --keep beta", A.GetStatus(Vol).Notice);
        Assert.True(Primary.ReadRaw(Vol).AsSpan().SequenceEqual(alphaBefore), "alpha's data changed");

        // Settled in alpha's favour (on both hosts): alpha takes writes again and beta gets alpha's data.
        await A.ResolveAsync(Vol, "alpha");
        await B.ResolveAsync(Vol, "alpha");
        var alpha = Primary.Open(Vol, out _);
        await alpha.WriteAsync(6 * MiB, Random(4096, 9), false, default);
        await Primary.WaitInSyncAsync(Vol, TimeSpan.FromSeconds(30));
        AssertSame();
    }

    [Fact]
    public async Task A_crashed_primary_that_writes_after_restarting_beside_a_promoted_replica_is_a_split_brain()
    {
        var betaWrite = await CrashPrimaryAndPromoteAsync();
        // beta is away while alpha restarts and writes (else alpha would learn first that it is outdated, and refuse).
        await Secondary.StopAsync();
        await Primary.StartAgainAsync();
        var alpha = Primary.Open(Vol, out bool readOnly);
        Assert.False(readOnly);
        var alphaWrite = Random(64 * 1024, 3);
        await alpha.WriteAsync(4 * MiB, alphaWrite, false, default);
        await Secondary.StartAgainAsync();
        await Wait.UntilAsync(() => Primary.Replica(Vol).State == ReplicaState.SplitBrain, TimeSpan.FromSeconds(10),
            () => $"{Primary.Replica(Vol)}: {Logs(Primary)}");
        Assert.Contains(Primary.Log.Entries, e => e.EventId.Id == 3102);
        Assert.False(Holds(Secondary.ReadRaw(Vol), 4 * MiB, alphaWrite));
        Assert.False(Holds(Primary.ReadRaw(Vol), 2 * MiB, betaWrite));
        Assert.True(Holds(Primary.ReadRaw(Vol), 4 * MiB, alphaWrite));
    }
}

public sealed class FencingTests : ResilienceTestBase
{
    [Fact]
    public async Task A_promoted_replica_losing_a_split_brain_refuses_writes_on_connections_already_open()
    {
        var alpha = await ReplicatedAsync(8 * MiB, ReplicaMode.Sync);
        await alpha.WriteAsync(0, Random(256 * 1024, 1), false, default);
        await B.PromoteAsync(Vol, force: true);
        var beta = Secondary.Open(Vol, out bool readOnly);   // an NBD connection opened while beta is primary
        Assert.False(readOnly);
        await beta.WriteAsync(2 * MiB, Random(64 * 1024, 2), false, default);
        var alphaWrite = Random(64 * 1024, 3);
        await alpha.WriteAsync(4 * MiB, alphaWrite, false, default);
        await Wait.UntilAsync(() => Primary.Replica(Vol).State == ReplicaState.SplitBrain, TimeSpan.FromSeconds(10), () => $"{Primary.Replica(Vol)}");

        await B.ResolveAsync(Vol, "alpha");
        await AssertReadOnlyAsync(beta, "split brain");
        Secondary.Open(Vol, out readOnly);
        Assert.True(readOnly);
        await A.ResolveAsync(Vol, "alpha");
        await Primary.WaitInSyncAsync(Vol);
        AssertSame();
        Assert.True(Holds(Secondary.ReadRaw(Vol), 4 * MiB, alphaWrite));
    }
}

public sealed class ReplicaRemovalTests : ResilienceTestBase
{
    [Fact]
    public async Task An_aborted_migration_leaves_a_paused_link_that_says_so_and_remove_replica_drops_it_on_both_hosts()
    {
        await CreateFilledAsync(16 * MiB, 16 * MiB);
        A.Hooks.ResyncPause = TimeSpan.FromMilliseconds(3);
        await A.PrepareMigrationAsync(Vol, "beta");
        await Wait.UntilAsync(() => A.GetMigration(Vol).BytesDone > 4 * MiB, TimeSpan.FromSeconds(20), () => $"{A.GetMigration(Vol)}");
        await A.AbortMigrationAsync(Vol);
        A.Hooks.ResyncPause = TimeSpan.Zero;

        var replica = Primary.Replica(Vol);
        Assert.Equal(ReplicaState.Paused, replica.State);
        Assert.True(replica.BytesOutOfSync > 0);
        Assert.Contains("paused", replica.Detail);
        Assert.Contains("out of sync", replica.Detail);
        await Primary.RestartAsync();
        Assert.Equal(ReplicaState.Paused, Primary.Replica(Vol).State);   // persisted

        Assert.Single(Directory.EnumerateFiles(Primary.DataDir, "*.bitmap", SearchOption.AllDirectories));
        var removal = await A.RemoveReplicaAsync(Vol, "beta");
        Assert.True(removal.PeerDetached, removal.PeerError);
        Assert.Empty(removal.Status.Replicas);
        Assert.Empty(A.GetStatus(Vol).Replicas);
        Assert.Empty(Directory.EnumerateFiles(Primary.DataDir, "*.bitmap", SearchOption.AllDirectories));
        // beta keeps the data as a volume of its own: no longer a replica, writable, and not overwritten by a new AddReplica.
        Assert.Equal(VolumeRole.Primary, B.GetStatus(Vol).Role);
        Assert.False(B.GetStatus(Vol).WritesRefused);
        Secondary.Open(Vol, out bool readOnly);
        Assert.False(readOnly);
        Assert.Equal(ReplicationError.PeerRefused, (await Assert.ThrowsAsync<ReplicationException>(() => A.AddReplicaAsync(Vol, "beta", ReplicaMode.Sync))).Error);
        var device = Primary.Open(Vol, out readOnly);
        Assert.False(readOnly);
        await device.WriteAsync(0, Random(4096, 5), false, default);
        await Primary.RestartAsync();
        Assert.Empty(A.GetStatus(Vol).Replicas);
    }

    [Fact]
    public async Task Removing_a_replica_whose_host_is_down_drops_the_link_and_says_the_peer_was_not_told()
    {
        await ReplicatedAsync(8 * MiB, ReplicaMode.Async);
        await Secondary.StopAsync();
        var removal = await A.RemoveReplicaAsync(Vol, "beta");
        Assert.False(removal.PeerDetached);
        Assert.NotNull(removal.PeerError);
        Assert.Empty(A.GetStatus(Vol).Replicas);
        await Secondary.StartAgainAsync();
        Assert.Equal(VolumeRole.Replica, B.GetStatus(Vol).Role);
    }
}

public sealed class HeartbeatTests : ResilienceTestBase
{
    protected override ReplicationOptions Options => ReplNode.TestOptions with
    {
        HeartbeatInterval = TimeSpan.FromMilliseconds(200),
        HeartbeatTimeout = TimeSpan.FromSeconds(1),
    };

    [Theory]
    [InlineData(ReplicaMode.Async)]
    [InlineData(ReplicaMode.Sync)]
    public async Task An_idle_link_to_a_hung_replica_leaves_InSync_within_the_heartbeat_timeout(ReplicaMode mode)
    {
        await ReplicatedAsync(8 * MiB, mode);
        Assert.Equal(ReplicaState.InSync, Primary.Replica(Vol).State);
        await Task.Delay(1500);   // an idle link with a live peer stays up: heartbeats are answered
        Assert.Equal(ReplicaState.InSync, Primary.Replica(Vol).State);

        B.Hooks.StallTargets();   // the replica stops reading, as a SIGSTOPped process would (no reset)
        var watch = Stopwatch.StartNew();
        await Wait.UntilAsync(() => Primary.Replica(Vol).State != ReplicaState.InSync, TimeSpan.FromSeconds(4), () => $"{Primary.Replica(Vol)}");
        Assert.InRange(watch.Elapsed, TimeSpan.FromSeconds(0.5), TimeSpan.FromSeconds(3));
        Assert.True(Primary.Replica(Vol).State == ReplicaState.OutOfSync, $"{Primary.Replica(Vol)}: {Logs(Primary)}");
        Assert.Contains(Primary.Log.Entries, e => e.Message.Contains("heartbeat timeout"));

        B.Hooks.Resume();
        await Primary.WaitInSyncAsync(Vol);
        var device = Primary.Open(Vol, out _);
        await device.WriteAsync(0, Random(4096, 1), false, default);
        await Primary.WaitInSyncAsync(Vol);
        AssertSame();
    }
}

/// <summary>What an activity-log eviction must save, and what it may skip.</summary>
public sealed class ActivityLogEvictionTests : ResilienceTestBase
{
    // Small extents, a small log, and no periodic bitmap save: only evictions (and link changes) save.
    protected override ReplicationOptions Options => ReplNode.TestOptions with
    {
        ActivityLogExtentSize = (int)MiB,
        ActivityLogCapacity = 4,
        BitmapSaveInterval = TimeSpan.FromHours(1),
    };

    private string BitmapFile => Directory.EnumerateFiles(Primary.DataDir, $"{Vol}.beta.bitmap", SearchOption.AllDirectories).Single();

    [Fact]
    public async Task Writes_while_the_replica_is_away_survive_a_primary_crash_after_their_extents_left_the_log()
    {
        var device = await ReplicatedAsync(32 * MiB, ReplicaMode.Sync);
        await Secondary.StopAsync();
        await Wait.UntilAsync(() => Primary.Replica(Vol).State != ReplicaState.InSync, TimeSpan.FromSeconds(10), () => $"{Primary.Replica(Vol)}");
        var writes = Enumerable.Range(0, 12).Select(i => (Offset: i * MiB + 4096, Data: Random(8192, 100 + i))).ToList();
        foreach (var (offset, data) in writes) await device.WriteAsync(offset, data, false, default);
        // Extents 0-7 left the log (4 slots): only the saved bitmap remembers those writes now.
        await Primary.StopAsync(crash: true);
        await Primary.StartAgainAsync();
        await Secondary.StartAgainAsync();
        await Primary.WaitInSyncAsync(Vol, TimeSpan.FromSeconds(30));
        var replica = Secondary.ReadRaw(Vol);
        foreach (var (offset, data) in writes) Assert.True(Holds(replica, offset, data), $"the write at {offset} never reached the replica");
        AssertSame();
    }

    [Fact]
    public async Task Evicting_extents_of_an_in_sync_replica_does_not_rewrite_its_bitmap()
    {
        var device = await ReplicatedAsync(32 * MiB, ReplicaMode.Sync);
        await Task.Delay(100);
        var before = File.GetLastWriteTimeUtc(BitmapFile);
        long transactions = A.ActivityLogTransactions(Vol);
        for (int i = 0; i < 24; i++) await device.WriteAsync(i * MiB, Random(4096, i), false, default);
        Assert.True(A.ActivityLogTransactions(Vol) - transactions >= 20, "the writes did not cycle the activity log");
        Assert.Equal(before, File.GetLastWriteTimeUtc(BitmapFile));
        Assert.Equal(ReplicaState.InSync, Primary.Replica(Vol).State);
    }
}
