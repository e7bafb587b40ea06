using System.Diagnostics;
using Roam.Replication.Engine;
using Roam.Replication.Tests.Support;
using Roam.Storage.Devices;

namespace Roam.Replication.Tests;

/// <summary>
/// The replication tests run on their own, after the parallel ones: they move hundreds of MiB over
/// TLS, and the allocation-counting frame reader test must not run beside them.
/// </summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class ReplicationCollection
{
    public const string Name = "replication";
}

/// <summary>Two ReplicationService instances on 127.0.0.1 with real TLS, each with its own data dir and volume store.</summary>
[Collection(ReplicationCollection.Name)]
public abstract class ReplicationTestBase : IAsyncLifetime
{
    protected const string Vol = "disk";
    protected const long MiB = 1024 * 1024;
    protected ReplNode Primary = null!;
    protected ReplNode Secondary = null!;

    protected virtual ReplicationOptions Options => ReplNode.TestOptions;

    public async Task InitializeAsync() => (Primary, Secondary) = await ReplNode.PairAsync(Options);

    public async Task DisposeAsync()
    {
        await Primary.DisposeAsync();
        await Secondary.DisposeAsync();
    }

    protected static byte[] Random(int length, int seed) => TestData.RandomBytes(length, seed);

    protected void AssertSame()
    {
        var a = Primary.ReadRaw(Vol);
        var b = Secondary.ReadRaw(Vol);
        Assert.Equal(a.Length, b.Length);
        Assert.True(a.AsSpan().SequenceEqual(b), "the replica's file differs from the primary's");
    }

    protected async Task<IBlockDevice> ReplicatedAsync(long size, ReplicaMode mode)
    {
        Primary.Store.Create(Vol, size);
        await Primary.Service.AddReplicaAsync(Vol, "beta", mode);
        await Primary.WaitInSyncAsync(Vol);
        var device = Primary.Open(Vol, out bool readOnly);
        Assert.False(readOnly);
        return device;
    }
}

public sealed class SyncReplicationTests : ReplicationTestBase
{
    [Fact]
    public async Task Sync_writes_are_on_the_replica_when_they_complete()
    {
        var device = await ReplicatedAsync(16 * MiB, ReplicaMode.Sync);
        for (int i = 0; i < 20; i++)
            await device.WriteAsync(i * 700 * 1024 + 512 * i, Random(100 * 1024 + i, i), fua: i % 3 == 0, default);
        await device.WriteAsync(10 * MiB, Random(5 * (int)MiB, 99), fua: false, default);   // larger than one frame
        await device.FlushAsync(default);
        // Sync mode: every write was acknowledged by the replica before it completed.
        AssertSame();
        Assert.Equal(ReplicaState.InSync, Primary.Replica(Vol).State);
        Secondary.Open(Vol, out bool replicaReadOnly);
        Assert.True(replicaReadOnly);
        Assert.Equal(VolumeRole.Replica, Secondary.Service.GetStatus(Vol).Role);
        Assert.Equal(Primary.Service.GetStatus(Vol).Generations.Current, Secondary.Service.GetStatus(Vol).Generations.Current);
    }

    [Fact]
    public async Task A_connection_opened_before_the_replica_was_added_has_its_writes_mirrored()
    {
        // The export was opened while the volume was plain, and keeps writing while the replica is added
        // and the initial copy runs: every change must take the mirrored path once the volume is replicated.
        Primary.Store.Create(Vol, 16 * MiB);
        var device = Primary.Open(Vol, out _);
        using var stop = new CancellationTokenSource();
        var writer = Task.Run(async () =>
        {
            int i = 0;
            while (!stop.IsCancellationRequested)
            {
                await device.WriteAsync(i % 256 * 64 * 1024, Random(64 * 1024, i), fua: false, default);
                i++;
            }
            return i;
        });
        await Task.Delay(50);
        await Primary.Service.AddReplicaAsync(Vol, "beta", ReplicaMode.Sync);
        await Primary.WaitInSyncAsync(Vol);
        await Task.Delay(100);
        stop.Cancel();
        Assert.True(await writer > 0);
        await device.FlushAsync(default);
        AssertSame();
    }

    [Fact]
    public async Task Existing_data_is_copied_by_a_full_initial_sync()
    {
        Primary.Store.Create(Vol, 8 * MiB);
        using (var lease = Primary.Store.Open(Vol))
        {
            await lease.Device.WriteAsync(0, Random(300 * 1024, 1), false, default);
            await lease.Device.WriteAsync(7 * MiB + 4096, Random(200 * 1024, 2), false, default);
        }
        await Primary.Service.AddReplicaAsync(Vol, "beta", ReplicaMode.Sync);
        await Primary.WaitInSyncAsync(Vol);
        AssertSame();
        var status = Primary.Replica(Vol);
        Assert.Equal(8 * MiB, status.BytesResynced);
        // Zero regions cross as Zero frames: far fewer bytes on the wire than the volume.
        Assert.InRange(status.BytesSent, 500 * 1024, 2 * MiB);
    }

    [Fact]
    public async Task Zeroed_ranges_cross_as_small_zero_frames()
    {
        var device = await ReplicatedAsync(64 * MiB, ReplicaMode.Sync);
        Assert.True(Primary.Replica(Vol).BytesSent < 256 * 1024, "an empty volume's initial sync is Zero frames");
        await device.WriteAsync(MiB, Random(2 * (int)MiB, 3), false, default);
        long before = Primary.Replica(Vol).BytesSent;
        await device.ZeroAsync(0, 48 * MiB, mayDeallocate: true, fastOnly: false, fua: false, default);
        await device.TrimAsync(48 * MiB, 16 * MiB, fua: false, default);
        long sent = Primary.Replica(Vol).BytesSent - before;
        Assert.InRange(sent, 1, 4096);
        AssertSame();
        Assert.All(Secondary.ReadRaw(Vol), b => Assert.Equal(0, b));
    }

    [Fact]
    public async Task A_stalled_sync_replica_times_out_then_catches_up()
    {
        Primary.Store.Create(Vol, 8 * MiB);
        await Primary.Service.AddReplicaAsync(Vol, "beta", ReplicaMode.Sync);
        await Primary.WaitInSyncAsync(Vol);
        var device = Primary.Open(Vol, out _);
        Secondary.Service.Hooks.StallTargets();

        var watch = Stopwatch.StartNew();
        await device.WriteAsync(0, Random(64 * 1024, 4), false, default);
        var first = watch.Elapsed;
        Assert.InRange(first, TimeSpan.FromSeconds(0.9), TimeSpan.FromSeconds(3));
        Assert.Equal(ReplicaState.OutOfSync, Primary.Replica(Vol).State);
        Assert.Contains(Primary.Log.Entries, e => e.EventId.Id == 3105);

        watch.Restart();
        await device.WriteAsync(MiB, Random(64 * 1024, 5), false, default);
        Assert.True(watch.Elapsed < Options.SyncTimeout, $"once OutOfSync, writes complete locally: this one took {watch.Elapsed}, as if it waited for the replica");
        Assert.True(Primary.Replica(Vol).BytesOutOfSync >= 128 * 1024);

        Secondary.Service.Hooks.Resume();
        await Primary.WaitInSyncAsync(Vol);
        AssertSame();
    }

    protected override ReplicationOptions Options => ReplNode.TestOptions with { SyncTimeout = TimeSpan.FromSeconds(1) };
}

public sealed class CatchUpTests : ReplicationTestBase
{
    [Fact]
    public async Task A_restarted_replica_resyncs_only_what_was_written_while_it_was_away()
    {
        const long size = 64 * MiB;
        var device = await ReplicatedAsync(size, ReplicaMode.Sync);
        await device.WriteAsync(0, Random(256 * 1024, 1), false, default);
        var generation = Primary.Service.GetStatus(Vol).Generations.Current;
        long resyncedBefore = Primary.Replica(Vol).BytesResynced;

        await Secondary.StopAsync();
        var watch = Stopwatch.StartNew();
        long written = 0;
        for (int i = 0; i < 8; i++)
        {
            await device.WriteAsync(i * 7 * MiB + 65536, Random(128 * 1024, 10 + i), false, default);
            written += 128 * 1024;
        }
        Assert.True(watch.Elapsed < TimeSpan.FromSeconds(3), $"writes go on without the replica ({watch.Elapsed}); {string.Join(" | ", Primary.Log.Entries.TakeLast(10).Select(e => e.Message))}");
        Assert.NotEqual(ReplicaState.InSync, Primary.Replica(Vol).State);
        Assert.Equal(written, Primary.Replica(Vol).BytesOutOfSync);
        var newGeneration = Primary.Service.GetStatus(Vol).Generations;
        Assert.NotEqual(generation, newGeneration.Current);
        Assert.Contains(generation, newGeneration.History);

        await Secondary.StartAsync();
        await Primary.WaitInSyncAsync(Vol);
        AssertSame();
        long resynced = Primary.Replica(Vol).BytesResynced - resyncedBefore;
        Assert.Equal(written, resynced);
        Assert.True(resynced < size / 32, "far below the volume size");
        Assert.Equal(newGeneration.Current, Secondary.Service.GetStatus(Vol).Generations.Current);
    }

    [Fact]
    public async Task Async_mode_ships_writes_in_order_and_catches_up()
    {
        var device = await ReplicatedAsync(16 * MiB, ReplicaMode.Async);
        for (int i = 0; i < 200; i++)
            await device.WriteAsync((i * 37 % 250) * 64 * 1024, Random(64 * 1024, i), false, default);   // overlapping rewrites
        await device.FlushAsync(default);
        await Primary.WaitInSyncAsync(Vol);
        AssertSame();
    }

    [Fact]
    public async Task Async_queue_overflow_goes_to_the_bitmap_and_is_resynced()
    {
        var device = await ReplicatedAsync(16 * MiB, ReplicaMode.Async);
        for (int i = 0; i < 100; i++)
            await device.WriteAsync(i * 128 * 1024, Random(128 * 1024, i), false, default);
        await Primary.WaitInSyncAsync(Vol);
        AssertSame();
    }

    protected override ReplicationOptions Options => ReplNode.TestOptions with { AsyncQueueBytes = 512 * 1024 };
}

public sealed class CrashTests : ReplicationTestBase
{
    [Fact]
    public async Task After_a_primary_crash_only_the_activity_log_extents_are_resynced()
    {
        const long size = 128 * MiB;
        var device = await ReplicatedAsync(size, ReplicaMode.Sync);
        long[] offsets = [4096, 10 * MiB, 40 * MiB + 100 * 1024, 41 * MiB];   // three 4 MiB extents
        foreach (var offset in offsets) await device.WriteAsync(offset, Random(64 * 1024, (int)(offset % 1000)), false, default);
        AssertSame();
        await Task.Delay(300);   // a periodic bitmap save

        await Primary.RestartAsync(crash: true);
        await Primary.WaitInSyncAsync(Vol);
        AssertSame();
        Assert.Equal(3 * 4 * MiB, Primary.Replica(Vol).BytesResynced);
        Assert.Contains(Primary.Log.Entries, e => e.EventId.Id == 3108);
    }

    [Fact]
    public async Task A_write_during_the_first_sweep_after_a_crash_starts_a_new_generation()
    {
        // Three hot extents (12 MiB) to resync after the crash: the session starts with a first sweep, during which
        // writes only mark the bitmap, so the replica's generation no longer says what the primary acknowledged.
        var device = await ReplicatedAsync(64 * MiB, ReplicaMode.Sync);
        foreach (long offset in new long[] { 0, 20 * MiB, 40 * MiB }) await device.WriteAsync(offset, Random(4096, 1), false, default);
        await Primary.RestartAsync(crash: true);
        Primary.Service.Hooks.ResyncPause = TimeSpan.FromMilliseconds(20);
        var deadline = Stopwatch.StartNew();
        while (Primary.Replica(Vol) is var r && !(r.State == ReplicaState.Syncing && r.BytesResynced > 0))
        {
            Assert.True(deadline.Elapsed < TimeSpan.FromSeconds(10), $"no resync started: {r}");
            await Task.Delay(5);
        }
        var before = Primary.Service.GetStatus(Vol).Generations.Current;
        device = Primary.Open(Vol, out _);
        await device.WriteAsync(43 * MiB, Random(4096, 2), false, default);   // ahead of the sweep: only marked
        Assert.NotEqual(before, Primary.Service.GetStatus(Vol).Generations.Current);
        Primary.Service.Hooks.ResyncPause = TimeSpan.Zero;
        await Primary.WaitInSyncAsync(Vol, TimeSpan.FromSeconds(30));
        AssertSame();
        Assert.Equal(Primary.Service.GetStatus(Vol).Generations.Current, Secondary.Service.GetStatus(Vol).Generations.Current);
    }

    [Fact]
    public async Task After_a_clean_restart_nothing_is_resynced()
    {
        var device = await ReplicatedAsync(32 * MiB, ReplicaMode.Sync);
        await device.WriteAsync(MiB, Random(64 * 1024, 7), false, default);
        await Primary.RestartAsync();
        await Primary.WaitInSyncAsync(Vol);
        Assert.Equal(0, Primary.Replica(Vol).BytesResynced);
        AssertSame();
    }
}

public sealed class PromoteTests : ReplicationTestBase
{
    [Fact]
    public async Task Promote_is_refused_while_attached_and_both_writing_apart_is_a_split_brain()
    {
        var device = await ReplicatedAsync(8 * MiB, ReplicaMode.Sync);
        await device.WriteAsync(0, Random(64 * 1024, 1), false, default);
        Assert.Equal(ReplicationError.AttachedToPrimary,
            (await Assert.ThrowsAsync<ReplicationException>(() => Secondary.Service.PromoteAsync(Vol, force: false))).Error);

        var promoted = await Secondary.Service.PromoteAsync(Vol, force: true);
        Assert.Equal(VolumeRole.Primary, promoted.Role);
        Secondary.Open(Vol, out bool readOnly);
        Assert.False(readOnly);

        // The old primary writes too, under its own new generation: when it reconnects, neither descends from the other.
        await device.WriteAsync(MiB, Random(64 * 1024, 2), false, default);
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(10);
        while (Primary.Replica(Vol).State != ReplicaState.SplitBrain && DateTime.UtcNow < deadline) await Task.Delay(20);
        Assert.Equal(ReplicaState.SplitBrain, Primary.Replica(Vol).State);
        Assert.Contains(Primary.Log.Entries, e => e.EventId.Id == 3102);
    }
}
