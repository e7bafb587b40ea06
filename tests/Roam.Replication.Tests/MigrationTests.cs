using Roam.Replication.Engine;
using Roam.Peers.Protocol;
using Roam.Replication.HandOver;
using Roam.Replication.Protocol;
using Roam.Replication.Source;
using Roam.Replication.Tests.Support;
using Roam.Storage.Devices;
using Roam.Storage.Tracking;

namespace Roam.Replication.Tests;

public sealed class MigrationTests : ReplicationTestBase
{
    private ReplicationService A => Primary.Service;
    private ReplicationService B => Secondary.Service;

    /// <summary>A plain (unreplicated) volume on alpha with <paramref name="filled"/> bytes of random data at the start.</summary>
    private async Task CreateFilledAsync(long size, long filled, int seed = 1)
    {
        Primary.Store.Create(Vol, size);
        using var lease = Primary.Store.Open(Vol);
        for (long at = 0; at < filled; at += 4 * MiB)
            await lease.Device.WriteAsync(at, Random((int)Math.Min(4 * MiB, filled - at), seed + (int)(at / MiB)), false, default);
        await lease.Device.FlushAsync(default);
    }

    private void AssertRoles(VolumeRole alpha, VolumeRole beta)
    {
        Assert.Equal(alpha, A.GetStatus(Vol).Role);
        Assert.Equal(beta, B.GetStatus(Vol).Role);
    }

    private static async Task AssertRefusedAsync(IBlockDevice device)
    {
        var ex = await Assert.ThrowsAsync<BlockDeviceException>(() => device.WriteAsync(0, new byte[4096], false, default).AsTask());
        Assert.Equal(BlockDeviceError.ReadOnly, ex.Error);
        Assert.Contains("handed over", ex.Message);
    }

    [Fact]
    public async Task Migrates_under_a_concurrent_writer_there_and_back()
    {
        await CreateFilledAsync(32 * MiB, 16 * MiB);
        var prepared = await A.PrepareMigrationAsync(Vol, "beta");
        Assert.Equal("beta", prepared.Peer);
        var device = Primary.Open(Vol, out bool readOnly);
        Assert.False(readOnly);
        var writer = LoopWriter.Start(device, 0, 256, seed: 7);   // [0, 16 MiB)
        await A.WaitInSyncAsync(Vol);
        var inSync = A.GetMigration(Vol);
        Assert.Equal(VolumeMigrationPhase.InSync, inSync.Phase);
        Assert.Equal(0, inSync.BytesLeft);
        Assert.True(inSync.BytesDone >= 32 * MiB, $"copied {inSync.BytesDone}");   // regions the writer dirtied again are copied again
        await Task.Delay(200);   // in sync mode, the writer goes on and the copy stays converged

        var result = await A.HandOverAsync(Vol, keepReplica: true);
        await writer.Task.WaitAsync(TimeSpan.FromSeconds(5));
        Assert.NotNull(writer.Refused);
        Assert.True(writer.Count > 20, $"only {writer.Count} writes");
        Assert.True(result.WritePause >= TimeSpan.Zero, $"write pause {result.WritePause}");   // measured by roam-bench write-pause, not asserted
        Assert.Equal("beta", result.NewPrimary);
        AssertRoles(VolumeRole.Replica, VolumeRole.Primary);
        Assert.Equal(result.Generations.Current, B.GetStatus(Vol).Generations.Current);
        Assert.Equal(result.Generations.Current, A.GetStatus(Vol).Generations.Current);
        Assert.Equal(VolumeMigrationPhase.Completed, A.GetMigration(Vol).Phase);
        AssertSame();
        writer.AssertOn(Secondary.ReadRaw(Vol));
        await AssertRefusedAsync(device);
        Primary.Open(Vol, out readOnly);
        Assert.True(readOnly, "the old primary exports the volume read-only");

        // The new primary replicates back to the old one (kept warm, nothing to resync); then back again.
        await Secondary.WaitInSyncAsync(Vol);
        Assert.Equal(0, Secondary.Replica(Vol).BytesResynced);
        var back = Secondary.Open(Vol, out readOnly);
        Assert.False(readOnly);
        await B.PrepareMigrationAsync(Vol, "alpha");
        var writer2 = LoopWriter.Start(back, 16 * MiB, 256, seed: 8);   // [16, 32 MiB)
        await B.WaitInSyncAsync(Vol);
        await Task.Delay(200);
        var result2 = await B.HandOverAsync(Vol, keepReplica: true);
        await writer2.Task.WaitAsync(TimeSpan.FromSeconds(5));
        Assert.NotNull(writer2.Refused);
        Assert.True(writer2.Count > 20);
        Assert.True(result2.WritePause >= TimeSpan.Zero, $"write pause {result2.WritePause}");   // measured by roam-bench write-pause, not asserted
        AssertRoles(VolumeRole.Primary, VolumeRole.Replica);
        AssertSame();
        writer.AssertOn(Primary.ReadRaw(Vol));
        writer2.AssertOn(Primary.ReadRaw(Vol));
        // Only the writes made during it crossed: the old primary already held everything else.
        Assert.True(B.GetMigration(Vol).BytesDone == 0, $"resynced {B.GetMigration(Vol).BytesDone}");
        await Primary.WaitInSyncAsync(Vol);
        var again = Primary.Open(Vol, out _);
        await again.WriteAsync(MiB, Random(4096, 3), false, default);
    }

    [Fact]
    public async Task Migrating_back_to_a_host_with_an_old_replica_moves_only_the_delta()
    {
        await CreateFilledAsync(64 * MiB, 48 * MiB);
        var progress = new List<MigrationStatus>();
        var first = await A.MigrateAsync(Vol, "beta", keepReplica: true, new SyncProgress(progress));
        Assert.True(first.Status.BytesOnWire > 48 * MiB, "the first migration is a full copy");
        Assert.Contains(progress, p => p.Phase == VolumeMigrationPhase.Completed);
        await Secondary.WaitInSyncAsync(Vol);

        // alpha (now the replica) goes away; beta writes 1 MiB meanwhile.
        await Primary.StopAsync();
        var device = Secondary.Open(Vol, out _);
        const int delta = 256 * 1024;
        for (int i = 0; i < 4; i++) await device.WriteAsync(i * 15 * MiB + 4096 * 16, Random(delta, 20 + i), false, default);
        await Primary.StartAsync();

        var back = await B.MigrateAsync(Vol, "alpha", keepReplica: true, null);
        AssertRoles(VolumeRole.Primary, VolumeRole.Replica);
        AssertSame();
        Assert.True(back.Status.BytesOnWire < 4 * MiB, $"{back.Status.BytesOnWire} bytes on the wire");
        Assert.True(back.HandOver.WritePause >= TimeSpan.Zero, $"write pause {back.HandOver.WritePause}");   // measured by roam-bench write-pause, not asserted
    }

    [Fact]
    public async Task Abort_keeps_the_source_primary_and_a_retry_resumes_the_copy()
    {
        await CreateFilledAsync(32 * MiB, 32 * MiB);
        A.Hooks.ResyncPause = TimeSpan.FromMilliseconds(3);
        await A.PrepareMigrationAsync(Vol, "beta");
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(20);
        while (A.GetMigration(Vol).BytesDone < 20 * MiB && DateTime.UtcNow < deadline) await Task.Delay(10);
        var copying = A.GetMigration(Vol);
        Assert.Equal(VolumeMigrationPhase.Copying, copying.Phase);
        Assert.True(copying.BytesPerSecond > 0 && copying.Eta is not null && copying.BytesLeft > 0, copying.ToString());
        await A.AbortMigrationAsync(Vol);
        A.Hooks.ResyncPause = TimeSpan.Zero;

        Assert.Equal(VolumeMigrationPhase.Aborted, A.GetMigration(Vol).Phase);
        AssertRoles(VolumeRole.Primary, VolumeRole.Replica);
        var device = Primary.Open(Vol, out bool readOnly);
        Assert.False(readOnly);
        var write = Random(64 * 1024, 42);
        // Writes flow, the paused replica is only marked: a write that waited for the replica would take the sync timeout.
        var watch = System.Diagnostics.Stopwatch.StartNew();
        await device.WriteAsync(30 * MiB, write, false, default);
        Assert.True(watch.Elapsed < Options.SyncTimeout, $"the write took {watch.Elapsed}, the replica's sync timeout is {Options.SyncTimeout}");
        Assert.NotEqual(ReplicaState.InSync, Primary.Replica(Vol).State);

        var retry = await A.PrepareMigrationAsync(Vol, "beta");
        await A.WaitInSyncAsync(Vol);
        var done = A.GetMigration(Vol);
        Assert.True(done.BytesOnWire < 16 * MiB, $"the retry sent {done.BytesOnWire} bytes, a full copy is 32 MiB");
        Assert.True(done.BytesDone < 16 * MiB);
        await A.HandOverAsync(Vol);
        AssertRoles(VolumeRole.Replica, VolumeRole.Primary);
        AssertSame();
        Assert.True(Secondary.ReadRaw(Vol).AsSpan((int)(30 * MiB), write.Length).SequenceEqual(write));
        _ = retry;
    }

    [Fact]
    public async Task Cancelling_a_migration_before_the_hand_over_aborts_it()
    {
        await CreateFilledAsync(32 * MiB, 32 * MiB);
        A.Hooks.ResyncPause = TimeSpan.FromMilliseconds(5);
        using var cts = new CancellationTokenSource(TimeSpan.FromMilliseconds(400));
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => A.MigrateAsync(Vol, "beta", true, null, cts.Token));
        Assert.Equal(VolumeMigrationPhase.Aborted, A.GetMigration(Vol).Phase);
        AssertRoles(VolumeRole.Primary, VolumeRole.Replica);
        A.Hooks.ResyncPause = TimeSpan.Zero;
        var result = await A.MigrateAsync(Vol, "beta", true, null);
        Assert.Equal(VolumeMigrationPhase.Completed, result.Status.Phase);
        AssertSame();
    }

    [Fact]
    public async Task Without_keep_replica_the_old_primary_drops_the_volume()
    {
        await CreateFilledAsync(16 * MiB, 8 * MiB);
        var expected = Primary.ReadRaw(Vol);
        var result = await A.MigrateAsync(Vol, "beta", keepReplica: false, null);
        Assert.True(result.HandOver.VolumeDeleted);
        Assert.False(Primary.Store.TryGet(Vol, out _));
        Assert.Equal(VolumeRole.Primary, B.GetStatus(Vol).Role);
        Assert.Empty(B.GetStatus(Vol).Replicas);
        Assert.True(Secondary.ReadRaw(Vol).AsSpan().SequenceEqual(expected));
        var device = Secondary.Open(Vol, out bool readOnly);
        Assert.False(readOnly);
        await device.WriteAsync(0, Random(4096, 5), false, default);
    }

    public static TheoryData<string, bool> Steps() => new()
    {
        { "StopWrites", false },
        { "DrainInFlight", false },
        { "CatchUp", false },
        { "SendPromote", true },
        { "AwaitConfirm", true },
        { "Demote", true },
    };

    /// <summary>A hand-over failing after any step leaves one primary holding every acknowledged write.</summary>
    [Theory]
    [MemberData(nameof(Steps))]
    public async Task A_hand_over_failing_after_a_step_leaves_exactly_one_primary(string step, bool destinationPromoted)
    {
        await CreateFilledAsync(8 * MiB, 4 * MiB);
        await A.PrepareMigrationAsync(Vol, "beta");
        var device = Primary.Open(Vol, out _);
        var acked = Random(256 * 1024, 9);
        await device.WriteAsync(5 * MiB, acked, fua: false, default);
        await A.WaitInSyncAsync(Vol);

        A.Hooks.FailAfter = Enum.Parse<VolumeHandOverStep>(step);
        var ex = await Assert.ThrowsAsync<ReplicationException>(() => A.HandOverAsync(Vol));
        A.Hooks.FailAfter = null;
        Assert.Equal(destinationPromoted ? ReplicationError.HandOverFailedAfterConfirm : ReplicationError.HandOverFailed, ex.Error);
        Assert.Contains(step, ex.Message);   // it says where the hand-over failed

        if (destinationPromoted)
        {
            AssertRoles(VolumeRole.Replica, VolumeRole.Primary);
            await AssertRefusedAsync(device);
            AssertSame();
            Assert.True(Secondary.ReadRaw(Vol).AsSpan((int)(5 * MiB), acked.Length).SequenceEqual(acked));
            Assert.Equal(VolumeMigrationPhase.Completed, A.GetMigration(Vol).Phase);
        }
        else
        {
            AssertRoles(VolumeRole.Primary, VolumeRole.Replica);
            Assert.Equal(VolumeMigrationPhase.Failed, A.GetMigration(Vol).Phase);
            await device.WriteAsync(6 * MiB, Random(4096, 10), false, default);   // writes resumed
            // The migration can be retried.
            await A.HandOverAsync(Vol);
            AssertRoles(VolumeRole.Replica, VolumeRole.Primary);
            AssertSame();
            Assert.True(Secondary.ReadRaw(Vol).AsSpan((int)(5 * MiB), acked.Length).SequenceEqual(acked));
        }
    }

    [Fact]
    public async Task A_destination_that_never_confirms_leaves_the_source_primary()
    {
        await CreateFilledAsync(8 * MiB, 4 * MiB);
        await A.PrepareMigrationAsync(Vol, "beta");
        var device = Primary.Open(Vol, out _);
        await A.WaitInSyncAsync(Vol);
        B.Hooks.RefuseHandOver = true;
        Assert.Equal(ReplicationError.HandOverFailed, (await Assert.ThrowsAsync<ReplicationException>(() => A.HandOverAsync(Vol))).Error);
        B.Hooks.RefuseHandOver = false;
        AssertRoles(VolumeRole.Primary, VolumeRole.Replica);
        await device.WriteAsync(MiB, Random(8192, 1), false, default);
        await Primary.WaitInSyncAsync(Vol);
        AssertSame();
    }

    [Fact]
    public async Task A_promotion_whose_confirmation_is_lost_is_found_out_and_the_source_steps_down()
    {
        await CreateFilledAsync(8 * MiB, 4 * MiB);
        await A.PrepareMigrationAsync(Vol, "beta");
        var device = Primary.Open(Vol, out _);
        await A.WaitInSyncAsync(Vol);
        B.Hooks.DropBeforeHandOverAck = true;
        var ex = await Assert.ThrowsAsync<ReplicationException>(() => A.HandOverAsync(Vol));
        Assert.Equal(ReplicationError.HandOverFailedAfterConfirm, ex.Error);
        AssertRoles(VolumeRole.Replica, VolumeRole.Primary);
        await AssertRefusedAsync(device);
        AssertSame();
    }

    [Fact]
    public void HandOver_frames_round_trip()
    {
        var handOver = new PeerHandOver(Guid.NewGuid(), DataGenerations.New().Next().Next(), PeerHandOverFlags.KeepOldPrimary | PeerHandOverFlags.AsyncLink);
        var bytes = Frames.Of(w => ReplicationFrameWriter.WriteHandOver(w, 77, handOver));
        var (header, payload) = Frames.ReadOne(Sequences.Whole(bytes));
        Assert.Equal((PeerFrameType.HandOver, 77UL), (header.Type, header.Sequence));
        var read = PeerHandOver.Read(new System.Buffers.ReadOnlySequence<byte>(payload));
        Assert.Equal(handOver.VolumeId, read.VolumeId);
        Assert.Equal(handOver.Flags, read.Flags);
        Assert.Equal(handOver.Generations.Current, read.Generations.Current);
        Assert.Equal(handOver.Generations.History, read.Generations.History);
    }

    private sealed class SyncProgress(List<MigrationStatus> into) : IProgress<MigrationStatus>
    {
        public void Report(MigrationStatus value)
        {
            lock (into) into.Add(value);
        }
    }
}
