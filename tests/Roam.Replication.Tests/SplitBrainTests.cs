using Roam.Replication.Engine;
using Roam.Replication.Tests.Support;
using Roam.Storage.Devices;

namespace Roam.Replication.Tests;

public sealed class SplitBrainTests : ReplicationTestBase
{
    /// <summary>Both sides write apart after a forced promote; returns the old primary's device.</summary>
    private async Task<(IBlockDevice Alpha, IBlockDevice Beta, byte[] AlphaWrite, byte[] BetaWrite)> SplitAsync()
    {
        var device = await ReplicatedAsync(8 * MiB, ReplicaMode.Sync);
        await device.WriteAsync(0, Random(256 * 1024, 1), false, default);
        await Secondary.Service.PromoteAsync(Vol, force: true);
        var beta = Secondary.Open(Vol, out _);
        var betaWrite = Random(64 * 1024, 2);
        await beta.WriteAsync(2 * MiB, betaWrite, false, default);
        var alphaWrite = Random(64 * 1024, 3);
        await device.WriteAsync(4 * MiB, alphaWrite, false, default);
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(10);
        while (Primary.Replica(Vol).State != ReplicaState.SplitBrain && DateTime.UtcNow < deadline) await Task.Delay(20);
        Assert.Equal(ReplicaState.SplitBrain, Primary.Replica(Vol).State);
        return (device, beta, alphaWrite, betaWrite);
    }

    private static bool Holds(byte[] raw, long offset, byte[] data) => raw.AsSpan((int)offset, data.Length).SequenceEqual(data);

    [Fact]
    public async Task Resolving_for_the_old_primary_overwrites_the_promoted_replica()
    {
        var (alpha, _, alphaWrite, betaWrite) = await SplitAsync();
        Assert.False(Holds(Secondary.ReadRaw(Vol), 4 * MiB, alphaWrite));
        // The promoted side sees it too, by itself, from alpha's attach: it says so and how to settle it.
        Assert.Contains("split brain with alpha", Secondary.Service.GetStatus(Vol).Notice);
        Assert.Contains("roam volume resolve disk --keep HOST", Secondary.Service.GetStatus(Vol).Notice);
        await Secondary.Service.ResolveAsync(Vol, "alpha");
        await Primary.Service.ResolveAsync(Vol, "alpha");
        await Primary.WaitInSyncAsync(Vol);
        AssertSame();
        Assert.True(Holds(Secondary.ReadRaw(Vol), 4 * MiB, alphaWrite));
        Assert.False(Holds(Secondary.ReadRaw(Vol), 2 * MiB, betaWrite));
        Assert.Equal(VolumeRole.Replica, Secondary.Service.GetStatus(Vol).Role);
        await alpha.WriteAsync(MiB, Random(4096, 4), false, default);
    }

    [Fact]
    public async Task Resolving_for_the_promoted_replica_overwrites_the_old_primary()
    {
        var (alpha, _, alphaWrite, betaWrite) = await SplitAsync();
        await Primary.Service.ResolveAsync(Vol, "beta");
        var ex = await Assert.ThrowsAsync<BlockDeviceException>(() => alpha.WriteAsync(0, new byte[512], false, default).AsTask());
        Assert.Equal(BlockDeviceError.ReadOnly, ex.Error);
        Assert.True(Holds(Primary.ReadRaw(Vol), 4 * MiB, alphaWrite), "nothing is overwritten before the winner syncs");
        await Secondary.Service.ResolveAsync(Vol, "beta");
        await Secondary.WaitInSyncAsync(Vol);
        AssertSame();
        Assert.Null(Secondary.Service.GetStatus(Vol).Notice);
        Assert.True(Holds(Primary.ReadRaw(Vol), 2 * MiB, betaWrite));
        Assert.False(Holds(Primary.ReadRaw(Vol), 4 * MiB, alphaWrite));
        Assert.Equal(VolumeRole.Replica, Primary.Service.GetStatus(Vol).Role);
        Assert.Equal(VolumeRole.Primary, Secondary.Service.GetStatus(Vol).Role);
    }
}

/// <summary>
/// A split brain resolved with bitmaps, as DRBD does: the copy over the losing side is the union of what both
/// sides wrote apart, not the whole volume. alpha is the primary, beta is promoted while alpha is away, and both
/// write a few small pieces before they meet again.
/// </summary>
public sealed class BitmapResolveTests : ReplicationTestBase
{
    private const long Size = 128 * MiB;
    private const int Region = 64 * 1024;   // ReplicationOptions.RegionSize

    private ReplicationService A => Primary.Service;
    private ReplicationService B => Secondary.Service;

    // beta's pieces touch 3 regions (the first straddles two), alpha's 2: 5 regions in all.
    private static readonly (long Offset, int Length)[] BetaWrites = [(8 * MiB + 4096, 64 * 1024), (30 * MiB, 4096)];
    private static readonly (long Offset, int Length)[] AlphaWrites = [(16 * MiB, 64 * 1024), (40 * MiB + 100, 4096)];
    private const long UnionBytes = 5 * Region;

    /// <summary>
    /// In sync, then alpha stops (cleanly) and beta is promoted and writes; beta goes away (stopped, or crashed right
    /// after its writes) while alpha comes back and writes; then beta is back, and alpha's link sees the split brain.
    /// </summary>
    private async Task SplitAsync(bool crashBeta = false)
    {
        var alpha = await ReplicatedAsync(Size, ReplicaMode.Sync);
        for (long at = 0; at < 8 * MiB; at += MiB) await alpha.WriteAsync(at * 5, Random((int)MiB, (int)(at / MiB)), false, default);
        await Primary.WaitInSyncAsync(Vol);
        AssertSame();

        await Primary.StopAsync();
        await B.PromoteAsync(Vol, force: true);
        Assert.Equal(ReplicaState.Parted, Secondary.Replica(Vol).State);
        Assert.Contains("promoted while alpha", Secondary.Replica(Vol).Detail);
        var beta = Secondary.Open(Vol, out bool readOnly);
        Assert.False(readOnly);
        foreach (var (offset, length) in BetaWrites) await beta.WriteAsync(offset, Random(length, (int)(offset % 977)), false, default);
        // A crash straight after the writes: their bits are in no saved bitmap yet (a save leaves out what the
        // activity log names), only in the log's extents.
        await Secondary.StopAsync(crash: crashBeta);

        await Primary.StartAgainAsync();
        alpha = Primary.Open(Vol, out readOnly);
        Assert.False(readOnly);
        foreach (var (offset, length) in AlphaWrites) await alpha.WriteAsync(offset, Random(length, (int)(offset % 983)), false, default);

        await Secondary.StartAgainAsync();
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(10);
        while (Primary.Replica(Vol).State != ReplicaState.SplitBrain && DateTime.UtcNow < deadline) await Task.Delay(20);
        Assert.Equal(ReplicaState.SplitBrain, Primary.Replica(Vol).State);
        Assert.Equal(ReplicaState.Parted, Secondary.Replica(Vol).State);
        Assert.NotEqual(Primary.ReadRaw(Vol), Secondary.ReadRaw(Vol));
    }

    [Fact]
    public async Task Keeping_the_promoted_side_copies_only_both_sides_diverged_regions()
    {
        await SplitAsync();
        var kept = Secondary.ReadRaw(Vol);
        await A.ResolveAsync(Vol, "beta");   // the loser first: it keeps its regions for beta
        Assert.True(File.Exists(Path.Combine(Primary.DataDir, "replication", "disk.beta.diverged")));
        await B.ResolveAsync(Vol, "beta");
        await Secondary.WaitInSyncAsync(Vol);
        AssertSame();
        Assert.True(kept.AsSpan().SequenceEqual(Secondary.ReadRaw(Vol)), "the kept side's data changed");
        long copied = Secondary.Replica(Vol).BytesResynced;
        Assert.InRange(copied, UnionBytes, 2 * UnionBytes);
        Assert.Contains(Secondary.Log.Entries, e => e.Message.Contains("union of both sides' diverged regions"));

        // In sync: the loser has a generation, its regions file is gone, and a second resolve there changes nothing.
        Assert.NotEqual(Guid.Empty, A.GetStatus(Vol).Generations.Current);
        Assert.False(File.Exists(Path.Combine(Primary.DataDir, "replication", "disk.beta.diverged")));
        await A.ResolveAsync(Vol, "beta");
        await Secondary.Open(Vol, out _).WriteAsync(MiB, Random(4096, 11), false, default);
        await Secondary.WaitInSyncAsync(Vol);
        AssertSame();
        Assert.Equal(copied, Secondary.Replica(Vol).BytesResynced);
    }

    [Fact]
    public async Task Keeping_the_old_primary_copies_only_both_sides_diverged_regions()
    {
        await SplitAsync();
        var kept = Primary.ReadRaw(Vol);
        long before = Primary.Replica(Vol).BytesResynced;
        await A.ResolveAsync(Vol, "alpha");   // the keeper first: its link waits for beta to step down
        await A.ResolveAsync(Vol, "alpha");   // twice: the same
        await Task.Delay(300);
        Assert.Equal(before, Primary.Replica(Vol).BytesResynced);
        await B.ResolveAsync(Vol, "alpha");
        await Primary.WaitInSyncAsync(Vol);
        AssertSame();
        Assert.True(kept.AsSpan().SequenceEqual(Primary.ReadRaw(Vol)), "the kept side's data changed");
        Assert.InRange(Primary.Replica(Vol).BytesResynced - before, UnionBytes, 2 * UnionBytes);
        Assert.Equal(VolumeRole.Replica, B.GetStatus(Vol).Role);
        Assert.Empty(B.GetStatus(Vol).Replicas);
        long copied = Primary.Replica(Vol).BytesResynced;
        await A.ResolveAsync(Vol, "alpha");   // once more, in sync: nothing to do, nothing copied again
        await Primary.Open(Vol, out _).WriteAsync(MiB, Random(4096, 12), false, default);
        await Primary.WaitInSyncAsync(Vol);
        AssertSame();
        Assert.Equal(copied, Primary.Replica(Vol).BytesResynced);
    }

    [Fact]
    public async Task A_promoted_side_that_crashed_after_writing_still_hands_its_writes_to_the_union()
    {
        await SplitAsync(crashBeta: true);
        Assert.Contains(Secondary.Log.Entries, e => e.EventId.Id == 3108);   // its activity log was replayed
        var kept = Secondary.ReadRaw(Vol);
        await B.ResolveAsync(Vol, "beta");   // the keeper first this time
        await A.ResolveAsync(Vol, "beta");
        await Secondary.WaitInSyncAsync(Vol);
        AssertSame();
        Assert.True(kept.AsSpan().SequenceEqual(Secondary.ReadRaw(Vol)), "the kept side's data changed");
        // The crash costs the activity log's extents (4 MiB each, two of them here), still far from the whole volume.
        long copied = Secondary.Replica(Vol).BytesResynced;
        Assert.InRange(copied, UnionBytes, 16 * MiB);
    }

    [Fact]
    public async Task A_copy_cut_by_the_losers_restart_resumes_from_the_union_and_ends_equal()
    {
        await SplitAsync();
        var kept = Secondary.ReadRaw(Vol);
        B.Hooks.ResyncPause = TimeSpan.FromMilliseconds(150);
        await B.ResolveAsync(Vol, "beta");   // the keeper first, the loser last
        await A.ResolveAsync(Vol, "beta");
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(10);
        while (Secondary.Replica(Vol).BytesResynced == 0 && DateTime.UtcNow < deadline) await Task.Delay(5);
        Assert.InRange(Secondary.Replica(Vol).BytesResynced, 1, UnionBytes - 1);
        await Primary.RestartAsync(crash: true);   // the loser, mid-copy: still no generation, it hands its regions over again
        Assert.True(File.Exists(Path.Combine(Primary.DataDir, "replication", "disk.beta.diverged")));
        B.Hooks.ResyncPause = TimeSpan.Zero;
        await Secondary.WaitInSyncAsync(Vol);
        AssertSame();
        Assert.True(kept.AsSpan().SequenceEqual(Secondary.ReadRaw(Vol)), "the kept side's data changed");
        Assert.InRange(Secondary.Replica(Vol).BytesResynced, UnionBytes, 3 * UnionBytes);
        Assert.False(File.Exists(Path.Combine(Primary.DataDir, "replication", "disk.beta.diverged")));
    }

    [Fact]
    public async Task A_loser_promoted_again_before_the_copy_keeps_its_earlier_regions_as_written_apart()
    {
        await SplitAsync();
        await Primary.StopAsync();           // alpha away again before it could copy anything over beta
        await B.ResolveAsync(Vol, "alpha");  // beta loses: its regions wait in a file for alpha
        Assert.Equal(VolumeRole.Replica, B.GetStatus(Vol).Role);
        await B.PromoteAsync(Vol, force: true);
        // The parted link starts with what beta wrote in the first split brain: still beta's own data.
        Assert.Equal(3 * Region, Secondary.Replica(Vol).BytesOutOfSync);
        Assert.Empty(Directory.EnumerateFiles(Path.Combine(Secondary.DataDir, "replication"), "*.diverged"));

        await Primary.StartAgainAsync();
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(10);
        while (Primary.Replica(Vol).State != ReplicaState.SplitBrain && DateTime.UtcNow < deadline) await Task.Delay(20);
        Assert.Equal(ReplicaState.SplitBrain, Primary.Replica(Vol).State);
        var kept = Primary.ReadRaw(Vol);
        await B.ResolveAsync(Vol, "alpha");
        await A.ResolveAsync(Vol, "alpha");
        await Primary.WaitInSyncAsync(Vol);
        AssertSame();
        Assert.True(kept.AsSpan().SequenceEqual(Primary.ReadRaw(Vol)), "the kept side's data changed");
        Assert.InRange(Primary.Replica(Vol).BytesResynced, UnionBytes, 2 * UnionBytes);
    }

    [Fact]
    public async Task A_parted_link_is_dropped_without_telling_the_old_primary()
    {
        await ReplicatedAsync(8 * MiB, ReplicaMode.Sync);
        await Primary.StopAsync();   // alpha unreachable: a Detach attempt would fail
        await B.PromoteAsync(Vol, force: true);
        var refused = await Assert.ThrowsAsync<ReplicationException>(() => B.AddReplicaAsync(Vol, "alpha", ReplicaMode.Sync));
        Assert.Equal(ReplicationError.Parted, refused.Error);
        Assert.Contains("roam volume resolve", refused.Message);   // it names the command that settles it
        var removal = await B.RemoveReplicaAsync(Vol, "alpha");
        Assert.True(removal.PeerDetached, removal.PeerError);
        Assert.Empty(B.GetStatus(Vol).Replicas);
        Assert.Empty(Directory.EnumerateFiles(Path.Combine(Secondary.DataDir, "replication"), "*.bitmap"));
    }

    [Fact]
    public async Task A_promoted_volume_with_its_parted_link_can_be_deleted()
    {
        await ReplicatedAsync(8 * MiB, ReplicaMode.Sync);
        await Primary.StopAsync();
        await B.PromoteAsync(Vol, force: true);
        await B.ForgetVolumeAsync(Vol);
        Secondary.Store.Delete(Vol);
        Assert.Empty(Directory.EnumerateFiles(Path.Combine(Secondary.DataDir, "replication"), "disk.*"));
    }

    [Fact]
    public async Task A_loser_without_its_diverged_regions_gets_the_whole_volume()
    {
        await SplitAsync();
        await A.ResolveAsync(Vol, "beta");
        // As if alpha had lost the file (or were an older version): nothing says what it wrote apart.
        var diverged = Path.Combine(Primary.DataDir, "replication", "disk.beta.diverged");
        Assert.True(File.Exists(diverged));
        File.Delete(diverged);
        await B.ResolveAsync(Vol, "beta");
        await Secondary.WaitInSyncAsync(Vol, TimeSpan.FromSeconds(60));
        AssertSame();
        Assert.Equal(Size, Secondary.Replica(Vol).BytesResynced);
        Assert.Contains(Secondary.Log.Entries, e => e.Message.Contains("sent no record of the regions it wrote apart"));
    }
}

/// <summary>A promoted volume migrated on: its parted link stays behind (it is no replica to hand over).</summary>
[Collection(ReplicationCollection.Name)]
public sealed class PartedLinkMigrationTests : ThreeHostsTest
{
    [Fact]
    public async Task A_promoted_volume_migrated_on_does_not_hand_its_parted_link_to_the_new_primary()
    {
        Alpha.Store.Create(Vol, 8 * MiB);
        await Alpha.Service.AddReplicaAsync(Vol, "beta", ReplicaMode.Sync);
        await Alpha.WaitInSyncAsync(Vol, "beta");
        await Alpha.StopAsync();
        await Beta.Service.PromoteAsync(Vol, force: true);
        Assert.Equal(ReplicaState.Parted, Beta.Service.GetStatus(Vol).Replicas.Single().State);

        await Beta.Service.MigrateAsync(Vol, "gamma");
        var gamma = Gamma.Service.GetStatus(Vol);
        Assert.Equal(VolumeRole.Primary, gamma.Role);
        Assert.Equal(["beta"], gamma.Replicas.Select(r => r.Peer));
    }
}
