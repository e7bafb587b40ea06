using System.Diagnostics;
using System.Text;
using Roam.Replication.Engine;

namespace Roam.Replication.Tests;

/// <summary>What crosses the wire: LZ4 where it pays, and a link's bandwidth limit.</summary>
public abstract class WireTestBase : ReplicationTestBase
{
    /// <summary>Text-like data: compresses several times over.</summary>
    protected static byte[] Compressible(int length, int seed)
    {
        var words = new[] { "office ", "car ", "record ", "volume ", "\n", "12345 " };
        var random = new Random(seed);
        var text = new StringBuilder();
        while (text.Length < length) text.Append(words[random.Next(words.Length)]);
        return Encoding.ASCII.GetBytes(text.ToString(0, length));
    }

    protected async Task WriteAllAsync(Storage.Devices.IBlockDevice device, Func<int, byte[]> data, int writes, int size)
    {
        for (int i = 0; i < writes; i++) await device.WriteAsync((long)i * size, data(i), false, default);
    }
}

public sealed class CompressionTests : WireTestBase
{
    [Fact]
    public async Task Compressible_writes_cross_the_wire_in_far_fewer_bytes_and_land_intact()
    {
        var device = await ReplicatedAsync(16 * MiB, ReplicaMode.Sync);
        var before = Primary.Replica(Vol);
        await WriteAllAsync(device, i => Compressible(256 * 1024, i), 32, 256 * 1024);   // 8 MiB
        var after = Primary.Replica(Vol);
        long sent = after.BytesSent - before.BytesSent;
        Assert.True(sent < 4 * MiB, $"8 MiB of text took {sent} bytes on the wire");
        Assert.True(after.BytesSavedByCompression - before.BytesSavedByCompression > 4 * MiB);
        Assert.Equal(ReplicaState.InSync, after.State);
        AssertSame();
    }

    [Fact]
    public async Task Random_writes_are_sent_as_they_are()
    {
        var device = await ReplicatedAsync(16 * MiB, ReplicaMode.Async);
        var before = Primary.Replica(Vol);
        await WriteAllAsync(device, i => Random(256 * 1024, i), 32, 256 * 1024);
        await Primary.WaitInSyncAsync(Vol);
        var after = Primary.Replica(Vol);
        Assert.Equal(before.BytesSavedByCompression, after.BytesSavedByCompression);
        Assert.True(after.BytesSent - before.BytesSent >= 8 * MiB);
        AssertSame();
    }

    [Fact]
    public async Task A_resync_of_compressible_data_is_compressed_too()
    {
        Primary.Store.Create(Vol, 8 * MiB);
        using (var lease = Primary.Store.Open(Vol))
            for (int i = 0; i < 8; i++) await lease.Device.WriteAsync(i * MiB, Compressible((int)MiB, i), false, default);
        await Primary.Service.AddReplicaAsync(Vol, "beta", ReplicaMode.Sync);
        await Primary.WaitInSyncAsync(Vol);
        var replica = Primary.Replica(Vol);
        Assert.True(replica.BytesSent < 4 * MiB, $"an 8 MiB text volume took {replica.BytesSent} bytes to copy");
        AssertSame();
    }
}

public sealed class CompressionOffTests : WireTestBase
{
    protected override ReplicationOptions Options => ReplNode.TestOptions with { Compression = WireCompression.Off };

    [Fact]
    public async Task With_compression_off_every_byte_crosses_as_it_is()
    {
        var device = await ReplicatedAsync(16 * MiB, ReplicaMode.Sync);
        var before = Primary.Replica(Vol);
        await WriteAllAsync(device, i => Compressible(256 * 1024, i), 16, 256 * 1024);
        var after = Primary.Replica(Vol);
        Assert.Equal(0, after.BytesSavedByCompression);
        Assert.True(after.BytesSent - before.BytesSent >= 4 * MiB);
        AssertSame();
    }
}

public sealed class BandwidthTests : WireTestBase
{
    [Fact]
    public async Task A_limited_link_copies_at_most_at_its_rate_while_mirrored_writes_go_through_at_once()
    {
        // 6 MiB to copy: little enough that the session mirrors writes from its start (no first pass).
        const long rate = 1 * MiB;
        Primary.Store.Create(Vol, 6 * MiB);
        using (var lease = Primary.Store.Open(Vol))
            await lease.Device.WriteAsync(0, Random((int)(6 * MiB), 1), false, default);
        await Primary.Service.AddReplicaAsync(Vol, "beta", ReplicaMode.Sync, bandwidth: rate);
        Assert.Equal(rate, Primary.Replica(Vol).Bandwidth);

        await Task.Delay(500);
        long sent0 = Primary.Replica(Vol).BytesSent;
        var window = Stopwatch.StartNew();
        // A guest write meanwhile is mirrored without waiting for the budget (it would stall the guest).
        var device = Primary.Open(Vol, out _);
        var write = Random(512 * 1024, 2);
        await device.WriteAsync(5 * MiB, write, false, default);
        await Task.Delay(2000);
        long sent = Primary.Replica(Vol).BytesSent - sent0;
        double seconds = window.Elapsed.TotalSeconds;
        // The rate over the window, plus what one burst (a tenth of a second), the resync window (16 regions
        // of 64 KiB) and the mirrored write may add; the copy of 6 MiB at 1 MiB/s is far from done.
        double allowed = rate * seconds + rate / 10.0 + 16 * 64 * 1024 + write.Length;
        Assert.True(sent <= allowed, $"{sent} bytes in {seconds:0.00} s over a {rate} B/s limit (allowed {allowed:0})");
        Assert.True(sent > 0, "nothing was copied");
        Assert.NotEqual(ReplicaState.InSync, Primary.Replica(Vol).State);
        Assert.True(Holds(Secondary.ReadRaw(Vol), 5 * MiB, write), "the mirrored write is not on the replica yet");

        // Lifting the limit lets the copy finish.
        await Primary.Service.PrepareMigrationAsync(Vol, "beta", bandwidth: 0);
        Assert.Equal(0, Primary.Replica(Vol).Bandwidth);
        await Primary.WaitInSyncAsync(Vol, TimeSpan.FromSeconds(60));
        await Primary.Service.AbortMigrationAsync(Vol);
        AssertSame();
    }

    private static bool Holds(byte[] raw, long offset, byte[] data) => raw.AsSpan((int)offset, data.Length).SequenceEqual(data);
}

public sealed class FirstPassTests : WireTestBase
{
    [Fact]
    public async Task During_the_first_sweep_writes_only_mark_their_regions_and_the_copy_still_converges_under_a_busy_writer()
    {
        Primary.Store.Create(Vol, 32 * MiB);
        using (var lease = Primary.Store.Open(Vol))
            await lease.Device.WriteAsync(0, Random((int)(32 * MiB), 1), false, default);
        Primary.Service.Hooks.ResyncPause = TimeSpan.FromMilliseconds(5);   // 512 regions: a sweep of a few seconds
        await Primary.Service.AddReplicaAsync(Vol, "beta", ReplicaMode.Sync);
        var device = Primary.Open(Vol, out _);

        // Ahead of the sweep: completes at once, and the replica gets it only when the sweep reaches it.
        var ahead = Random(64 * 1024, 2);
        await device.WriteAsync(31 * MiB, ahead, false, default);
        await Task.Delay(200);
        Assert.False(Holds(Secondary.ReadRaw(Vol), 31 * MiB, ahead), "a write during the first sweep was mirrored");

        // A writer that never stops, all over the volume, while the copy runs: the copy still ends.
        using var stop = new CancellationTokenSource();
        var writer = Task.Run(async () =>
        {
            var random = new Random(3);
            while (!stop.IsCancellationRequested)
            {
                await device.WriteAsync(random.Next(0, 512) * 64L * 1024, Random(4096, random.Next()), false, default);
                await Task.Delay(1);
            }
        });
        Primary.Service.Hooks.ResyncPause = TimeSpan.Zero;
        await Wait.UntilAsync(() => Primary.Replica(Vol).State == ReplicaState.InSync, TimeSpan.FromSeconds(60), () => $"{Primary.Replica(Vol)}");
        stop.Cancel();
        await writer;
        await Primary.WaitInSyncAsync(Vol);
        Assert.True(Holds(Secondary.ReadRaw(Vol), 31 * MiB, ahead));
        AssertSame();
    }

    /// <summary>A guest's flush during the first sweep does not wait for the replica: nothing was mirrored for it to make
    /// durable, and on a link full of copy data it would stall the guest (here: a replica that stopped reading).</summary>
    [Fact]
    public async Task During_the_first_sweep_a_flush_does_not_wait_for_the_replica()
    {
        Primary.Store.Create(Vol, 32 * MiB);
        using (var lease = Primary.Store.Open(Vol))
            await lease.Device.WriteAsync(0, Random((int)(32 * MiB), 1), false, default);
        Primary.Service.Hooks.ResyncPause = TimeSpan.FromMilliseconds(20);   // a first sweep of about ten seconds
        await Primary.Service.AddReplicaAsync(Vol, "beta", ReplicaMode.Sync);
        var device = Primary.Open(Vol, out _);
        await Wait.UntilAsync(() => Primary.Replica(Vol).State == ReplicaState.Syncing, TimeSpan.FromSeconds(10), () => $"{Primary.Replica(Vol)}");

        Secondary.Service.Hooks.StallTargets();
        await Task.Delay(300); // the replica's reader takes in the copy's next region (one per 20 ms), then stops at the stall
        try
        {
            await device.WriteAsync(30 * MiB, Random(4096, 2), false, default);
            var flush = device.FlushAsync(default).AsTask();
            // Before: the flush waited the whole sync timeout (5 s here) and then cut the replica off as out of sync.
            await flush.WaitAsync(TimeSpan.FromSeconds(2));
            Assert.Equal(ReplicaState.Syncing, Primary.Replica(Vol).State);
        }
        finally { Secondary.Service.Hooks.Resume(); }
        Primary.Service.Hooks.ResyncPause = TimeSpan.Zero;
        await Primary.WaitInSyncAsync(Vol, TimeSpan.FromSeconds(60));
        AssertSame();
    }

    private static bool Holds(byte[] raw, long offset, byte[] data) => raw.AsSpan((int)offset, data.Length).SequenceEqual(data);
}
