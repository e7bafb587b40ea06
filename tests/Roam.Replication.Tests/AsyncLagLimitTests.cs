using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using Roam.Replication.Engine;
using Roam.Replication.Source;
using Roam.Replication.Tests.Support;
using Roam.Storage.Devices;
using Xunit.Abstractions;

namespace Roam.Replication.Tests;

/// <summary>
/// A TCP relay between the primary and its replica (TLS passes through it untouched: trust is by fingerprint, not by
/// address) that can hold back, or delay, what the replica sends back: its acknowledgements (and its heartbeats). The
/// replica itself keeps applying what it gets, so from the primary's side this is a replica that is slow to answer or
/// silent, with no reset. Nothing in Support can do this: the target stall hook stops the replica from reading
/// altogether and lets the batch it is already reading through, a relay cuts exactly where it is told to.
/// </summary>
internal sealed class AckRelay : IAsyncDisposable
{
    private readonly TcpListener _listener = new(IPAddress.Loopback, 0);
    private readonly int _target;
    private readonly CancellationTokenSource _stop = new();
    private readonly ConcurrentBag<TcpClient> _sockets = [];
    private readonly ConcurrentBag<Task> _pumps = [];
    private readonly Task _accepting;
    private volatile TaskCompletionSource? _hold;
    private long _delayTicks;

    public AckRelay(int targetPort)
    {
        _target = targetPort;
        _listener.Start();
        _accepting = Task.Run(AcceptLoopAsync);
    }

    public int Port => ((IPEndPoint)_listener.LocalEndpoint).Port;

    /// <summary>Each chunk the replica sends waits this long before it goes on to the primary (one chunk at a time).</summary>
    public TimeSpan AckDelay
    {
        get => TimeSpan.FromTicks(Interlocked.Read(ref _delayTicks));
        set => Interlocked.Exchange(ref _delayTicks, value.Ticks);
    }

    /// <summary>Bytes per second from the primary to the replica (0: as fast as it goes).</summary>
    public long UpBytesPerSecond { get; set; }

    /// <summary>From now on nothing the replica sends reaches the primary, until <see cref="Release"/>.</summary>
    public void Hold() => Interlocked.CompareExchange(ref _hold, new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously), null);

    /// <summary>What was held goes through, in order, and so does everything after.</summary>
    public void Release() => Interlocked.Exchange(ref _hold, null)?.TrySetResult();

    private async Task AcceptLoopAsync()
    {
        try
        {
            while (true)
            {
                var client = await _listener.AcceptTcpClientAsync(_stop.Token);
                var server = new TcpClient();
                try { await server.ConnectAsync(IPAddress.Loopback, _target, _stop.Token); }
                catch (SocketException)
                {
                    client.Dispose();
                    server.Dispose();
                    continue;
                }
                client.NoDelay = server.NoDelay = true;
                _sockets.Add(client);
                _sockets.Add(server);
                _pumps.Add(Task.Run(() => PumpPairAsync(client, server)));
            }
        }
        catch (Exception ex) when (ex is OperationCanceledException or ObjectDisposedException or SocketException) { }
    }

    private async Task PumpPairAsync(TcpClient primary, TcpClient replica)
    {
        using var cut = CancellationTokenSource.CreateLinkedTokenSource(_stop.Token);
        var up = PumpAsync(primary.GetStream(), replica.GetStream(), acks: false, cut.Token);
        var down = PumpAsync(replica.GetStream(), primary.GetStream(), acks: true, cut.Token);
        await Task.WhenAny(up, down);
        // One side closed: close both, as a plain TCP path would.
        await cut.CancelAsync();
        primary.Dispose();
        replica.Dispose();
        try { await Task.WhenAll(up, down); }
        catch (Exception) { /* torn down */ }
    }

    private async Task PumpAsync(NetworkStream from, NetworkStream to, bool acks, CancellationToken ct)
    {
        var buffer = new byte[acks ? 64 * 1024 : 8 * 1024];
        try
        {
            while (true)
            {
                int n = await from.ReadAsync(buffer, ct);
                if (n == 0) return;
                if (!acks && UpBytesPerSecond > 0) await Task.Delay(TimeSpan.FromSeconds((double)n / UpBytesPerSecond), ct);
                if (acks)
                {
                    if (_hold is { } hold) await hold.Task.WaitAsync(ct);
                    var delay = AckDelay;
                    if (delay > TimeSpan.Zero) await Task.Delay(delay, ct);
                }
                await to.WriteAsync(buffer.AsMemory(0, n), ct);
            }
        }
        catch (Exception ex) when (ex is OperationCanceledException or IOException or ObjectDisposedException or SocketException) { }
    }

    public async ValueTask DisposeAsync()
    {
        Release();
        await _stop.CancelAsync();
        _listener.Stop();
        foreach (var socket in _sockets) socket.Dispose();
        try { await _accepting; }
        catch (Exception) { /* stopped */ }
        try { await Task.WhenAll(_pumps); }
        catch (Exception) { /* torn down */ }
    }
}

/// <summary>
/// A prepared migration whose link is switched to asynchronous mirroring with a lag limit (as a VM migration's memory
/// phase does), with the replica's acknowledgements held back or slowed by an <see cref="AckRelay"/>.
/// </summary>
public abstract class AsyncLagTestBase : ReplicationTestBase
{
    protected const int Block = 64 * 1024;
    protected static readonly TimeSpan Limit = TimeSpan.FromMilliseconds(50);
    protected static readonly TimeSpan Soon = TimeSpan.FromSeconds(10);   // only against a hang
    private AckRelay? _relay;

    protected ReplicationService A => Primary.Service;
    private protected AckRelay Relay => _relay!;

    /// <summary>The primary reaches beta through the relay from here on.</summary>
    protected void ThroughRelay()
    {
        _relay = new AckRelay(Secondary.Port);
        Assert.True(Primary.Trust.Remove("beta"));
        Primary.Trust.Add("beta", $"127.0.0.1:{_relay.Port}", Secondary.Identity.Fingerprint.ToString());
    }

    /// <summary>An empty volume on alpha, migrated to beta through the relay up to InSync (a sync replica the migration made).</summary>
    protected async Task<IBlockDevice> PreparedAsync(long size = 16 * MiB)
    {
        ThroughRelay();
        Primary.Store.Create(Vol, size);
        await A.PrepareMigrationAsync(Vol, "beta");
        await A.WaitInSyncAsync(Vol).WaitAsync(TimeSpan.FromSeconds(30));
        await Primary.WaitInSyncAsync(Vol, "beta");
        var device = Primary.Open(Vol, out bool readOnly);
        Assert.False(readOnly);
        return device;
    }

    /// <summary>The primary's link to beta (the thing under test), for what its status does not show.</summary>
    internal PeerLink Link => A.Lookup(Vol).Primary!.Links.Single(l => l.Peer == "beta");

    protected ReplicaStatus Beta => Primary.Replica(Vol, "beta");

    protected Task WriteAsync(IBlockDevice device, long slot, int seed) =>
        device.WriteAsync(slot * Block, Random(Block, seed), fua: false, default).AsTask();

    /// <summary>Everything acknowledged and nothing left to copy, then both files compared byte for byte: no write was lost.</summary>
    protected async Task AssertConvergedAsync()
    {
        Relay.Release();
        Relay.AckDelay = TimeSpan.Zero;
        await Primary.WaitInSyncAsync(Vol, "beta", TimeSpan.FromSeconds(30));
        Assert.Equal(TimeSpan.Zero, Beta.Lag);
        Assert.Equal(0, Beta.PendingBytes);
        AssertSame();
    }

    /// <summary>The relay goes before the nodes, released, so nothing is left waiting on it.</summary>
    protected async Task DisposeRelayAsync()
    {
        if (_relay is not null) await _relay.DisposeAsync();
    }

    protected string Logs() => string.Join(" | ", Primary.Log.Entries.TakeLast(15).Select(e => e.Message));
}

/// <summary>Sync timeout far away (30 s): a write that waits here waits for an acknowledgement, not for the clock.</summary>
public sealed class AsyncLagLimitTests(ITestOutputHelper output) : AsyncLagTestBase
{
    protected override ReplicationOptions Options => ReplNode.TestOptions with
    {
        SyncTimeout = TimeSpan.FromSeconds(30),
        HeartbeatTimeout = TimeSpan.FromSeconds(60),   // held acknowledgements are not a dead peer here
    };

    [Fact]
    public async Task Without_a_lag_limit_async_writes_complete_while_the_acknowledgements_are_held_back()
    {
        try
        {
            var device = await PreparedAsync();
            A.SetMigrationMirroring(Vol, ReplicaMode.Async);
            Assert.Equal(ReplicaMode.Async, Beta.Mode);
            Assert.Equal(TimeSpan.Zero, Link.AsyncLagLimit);

            Relay.Hold();
            for (int i = 0; i < 20; i++) await WriteAsync(device, i, seed: i).WaitAsync(Soon);
            var lag1 = Beta.Lag;
            Assert.Equal(20L * Block, Beta.PendingBytes);
            await Task.Delay(400);
            // The oldest change is now 400 ms old and unacknowledged: still nobody waits for it.
            var watch = Stopwatch.StartNew();
            for (int i = 20; i < 40; i++) await WriteAsync(device, i, seed: i).WaitAsync(Soon);
            var lag2 = Beta.Lag;
            Assert.Equal(40L * Block, Beta.PendingBytes);
            Assert.True(lag2 >= TimeSpan.FromMilliseconds(400), $"lag {lag2}");
            Assert.True(lag2 > lag1, $"lag went from {lag1} to {lag2}");
            Assert.False(Link.IsLagging, "no limit, no lagging");
            Assert.Equal(ReplicaState.InSync, Beta.State);
            Assert.Equal(ReplicaMode.Async, Beta.Mode);
            // The first write's acknowledgement never came, so a write that waited for any would still be waiting.
            Assert.True(watch.Elapsed < TimeSpan.FromSeconds(10));

            await AssertConvergedAsync();
        }
        finally { await DisposeRelayAsync(); }
    }

    [Fact]
    public async Task With_a_lag_limit_a_write_made_while_the_replica_lags_waits_until_the_acknowledgements_resume()
    {
        try
        {
            var device = await PreparedAsync();
            A.SetMigrationMirroring(Vol, ReplicaMode.Async, Limit);
            Assert.Equal(ReplicaMode.Async, Beta.Mode);
            Assert.InRange(Link.AsyncLagLimit, Limit - TimeSpan.FromMilliseconds(1), Limit + TimeSpan.FromMilliseconds(1));

            Relay.Hold();
            // The backlog is young and small (a block; more than the link was seen to drain in the limit's time counts
            // as lagging too, see the slow-link test below): it does not wait.
            await WriteAsync(device, 0, seed: 1).WaitAsync(Soon);
            Assert.False(Link.IsLagging);
            await Wait.UntilAsync(() => Beta.Lag > Limit * 2, Soon, () => $"{Beta}");
            Assert.True(Link.IsLagging, $"{Beta}");

            // Older than the limit: a new write waits for its own acknowledgement, so for the whole backlog before it.
            var lagging = WriteAsync(device, 2, seed: 3);
            var concurrent = WriteAsync(device, 100, seed: 4);   // another writer, elsewhere on the disk: it waits too
            await Task.Delay(600);
            Assert.False(lagging.IsCompleted, "a write made while the replica lags completed before its acknowledgement");
            Assert.False(concurrent.IsCompleted, "a second writer did not wait either");
            Assert.Equal(3L * Block, Beta.PendingBytes);
            Assert.Equal(ReplicaState.InSync, Beta.State);

            Relay.Release();
            await Task.WhenAll(lagging, concurrent).WaitAsync(Soon);
            await Wait.UntilAsync(() => Beta.PendingBytes == 0, Soon, () => $"{Beta}");
            Assert.False(Link.IsLagging);
            // Drained: the next write does not wait (held again, it still completes).
            Relay.Hold();
            await WriteAsync(device, 3, seed: 5).WaitAsync(Soon);

            await AssertConvergedAsync();
        }
        finally { await DisposeRelayAsync(); }
    }

    /// <summary>Async with the limit, acknowledgements held, a first write aged past the limit: returns a second write,
    /// which waits (checked) for its own acknowledgement.</summary>
    private async Task<Task> LaggingWriteAsync(IBlockDevice device)
    {
        A.SetMigrationMirroring(Vol, ReplicaMode.Async, Limit);
        Relay.Hold();
        await WriteAsync(device, 0, seed: 1).WaitAsync(Soon);
        await Wait.UntilAsync(() => Beta.Lag > Limit * 2, Soon, () => $"{Beta}");
        var lagging = WriteAsync(device, 1, seed: 2);
        await Task.Delay(300);
        Assert.False(lagging.IsCompleted, "a write made while the replica lags completed before its acknowledgement");
        return lagging;
    }

    /// <summary>What a writer saw while a sampler on its own thread (not the pool's) watched the link's backlog.</summary>
    private sealed record Run(int Writes, int Waited, TimeSpan MaxLag, long MaxPending, ReplicaStatus After)
    {
        public override string ToString() =>
            $"{Writes} writes, {Waited} waited; oldest pending at most {MaxLag.TotalMilliseconds:0} ms, backlog at most {MaxPending / 1024} KiB";
    }

    /// <summary>
    /// One writer, a 64 KiB block at a time at random places in the first 16 MiB, for <paramref name="duration"/> (and
    /// the write under way then); <paramref name="pace"/> between writes. A write that took <paramref name="waitedAt"/>
    /// or longer counts as one that waited for its acknowledgement.
    /// </summary>
    private async Task<Run> WriteForAsync(IBlockDevice device, TimeSpan duration, TimeSpan? pace, TimeSpan waitedAt, int seed)
    {
        TimeSpan maxLag = TimeSpan.Zero;
        long maxPending = 0;
        bool stop = false;
        var sampler = new Thread(() =>
        {
            while (!Volatile.Read(ref stop))
            {
                var r = Beta;
                if (r.Lag > maxLag) maxLag = r.Lag;
                if (r.PendingBytes > maxPending) maxPending = r.PendingBytes;
                Thread.Sleep(5);
            }
        }) { IsBackground = true, Name = "lag sampler" };
        sampler.Start();
        var rng = new Random(seed);
        int writes = 0, waited = 0;
        var run = Stopwatch.StartNew();
        try
        {
            while (run.Elapsed < duration)
            {
                var one = Stopwatch.StartNew();
                await WriteAsync(device, rng.Next(256), seed: seed + writes).WaitAsync(TimeSpan.FromSeconds(60));
                if (one.Elapsed >= waitedAt) waited++;
                writes++;
                if (pace is { } p) await Task.Delay(p);
            }
        }
        finally
        {
            Volatile.Write(ref stop, true);
            sampler.Join();
        }
        var result = new Run(writes, waited, maxLag, maxPending, Beta);
        output.WriteLine(result.ToString());
        return result;
    }

    [Fact]
    public async Task With_a_lag_limit_and_slow_acknowledgements_the_backlog_stays_young_and_writers_wait()
    {
        try
        {
            var device = await PreparedAsync();
            // Every acknowledgement comes back at least 100 ms late (at most 200: the relay holds one chunk at a time),
            // two limits and more: the writer below is faster than its acknowledgements, the link itself is not slow.
            var delay = TimeSpan.FromMilliseconds(100);
            var round = 2 * delay;
            Relay.AckDelay = delay;
            A.SetMigrationMirroring(Vol, ReplicaMode.Async, Limit);
            await WriteForAsync(device, TimeSpan.FromMilliseconds(500), TimeSpan.FromMilliseconds(1), delay, seed: 500);   // warm-up

            var run = await WriteForAsync(device, TimeSpan.FromSeconds(2), TimeSpan.FromMilliseconds(1), delay, seed: 1000);
            // An acknowledgement cannot come back sooner than the relay's delay: a write that took that long waited for
            // one, which only the lag limit makes an async write do.
            Assert.True(run.Waited >= 3, $"too few writes waited for their acknowledgement: {run}");
            Assert.True(run.MaxPending > 0, "nothing was ever pending");
            // The oldest change: the limit, then the round trip of the write that waits; a second of slack (2 shared cores).
            Assert.True(run.MaxLag < Limit + round + TimeSpan.FromSeconds(1), $"the backlog got too old: {run}");
            Assert.True(run.After.Lag < Limit + round + TimeSpan.FromSeconds(1), $"{run.After}");
            Assert.Equal(ReplicaState.InSync, run.After.State);

            await AssertConvergedAsync();
        }
        finally { await DisposeRelayAsync(); }
    }

    /// <summary>
    /// What the lag limit is for (PeerLink.AsyncLagLimit: "it bounds the backlog in time, whatever the link's speed";
    /// VmService: "the pause never holds more than that"), on a link slower than the writer. A limit acting only on the
    /// age of the oldest change let the writer queue far more than the link carries in a limit's time (1 MiB/s, an
    /// unpaced writer, 50 ms: 4 to 6 MiB went into the first 50 ms, the oldest change got 4 to 6 s old); the backlog's
    /// size against the acknowledgement rate counts too now.
    /// </summary>
    [Fact]
    public async Task With_a_lag_limit_on_a_link_slower_than_the_writer_the_backlog_stays_young()
    {
        try
        {
            var device = await PreparedAsync();
            Relay.UpBytesPerSecond = 1024 * 1024;
            A.SetMigrationMirroring(Vol, ReplicaMode.Async, Limit);
            var run = await WriteForAsync(device, TimeSpan.FromSeconds(2), pace: null, TimeSpan.FromMilliseconds(100), seed: 2000);
            Assert.True(run.MaxLag < Limit + TimeSpan.FromSeconds(1), $"the backlog got too old: {run}");

            Relay.UpBytesPerSecond = 0;
            await AssertConvergedAsync();
        }
        finally { await DisposeRelayAsync(); }
    }

    [Fact]
    public async Task Switching_back_to_sync_mirroring_clears_the_lag_limit_and_writes_wait_as_a_sync_replica_does()
    {
        try
        {
            var device = await PreparedAsync();
            var lagging = await LaggingWriteAsync(device);

            A.SetMigrationMirroring(Vol, ReplicaMode.Sync);
            Assert.Equal(ReplicaMode.Sync, Beta.Mode);
            Assert.Equal(TimeSpan.Zero, Link.AsyncLagLimit);
            Assert.False(Link.IsLagging, "a sync link is never 'lagging'");
            // Sync as before: a write waits for its acknowledgement, lag or not, and the replica is not given up on.
            var sync = WriteAsync(device, 2, seed: 3);
            await Task.Delay(300);
            Assert.False(sync.IsCompleted, "a sync write completed without its acknowledgement");
            Relay.Release();
            await Task.WhenAll(lagging, sync).WaitAsync(Soon);
            Assert.Equal(ReplicaState.InSync, Beta.State);
            await Wait.UntilAsync(() => Beta.PendingBytes == 0, Soon, () => $"{Beta}");

            // Async again, but without a limit this time: an old backlog no longer makes anybody wait.
            A.SetMigrationMirroring(Vol, ReplicaMode.Async);
            Relay.Hold();
            await WriteAsync(device, 3, seed: 4).WaitAsync(Soon);
            await Wait.UntilAsync(() => Beta.Lag > Limit * 3, Soon, () => $"{Beta}");
            await WriteAsync(device, 4, seed: 5).WaitAsync(Soon);
            await WriteAsync(device, 5, seed: 6).WaitAsync(Soon);
            Assert.Equal(3L * Block, Beta.PendingBytes);

            await AssertConvergedAsync();
        }
        finally { await DisposeRelayAsync(); }
    }

    [Fact]
    public async Task Setting_async_mirroring_again_without_a_limit_releases_new_writes_from_the_lag()
    {
        try
        {
            var device = await PreparedAsync();
            var lagging = await LaggingWriteAsync(device);

            A.SetMigrationMirroring(Vol, ReplicaMode.Async);
            Assert.False(Link.IsLagging);
            // The backlog is as old as ever, but the limit is gone.
            await WriteAsync(device, 2, seed: 3).WaitAsync(Soon);
            await WriteAsync(device, 3, seed: 4).WaitAsync(Soon);
            Assert.False(lagging.IsCompleted, "the write that was already waiting waits for its own acknowledgement");

            Relay.Release();
            await lagging.WaitAsync(Soon);
            await AssertConvergedAsync();
        }
        finally { await DisposeRelayAsync(); }
    }

    [Fact]
    public async Task After_an_abort_a_reused_async_replica_gets_its_mode_back_and_nothing_waits_for_its_lag()
    {
        try
        {
            ThroughRelay();
            Primary.Store.Create(Vol, 16 * MiB);
            await A.AddReplicaAsync(Vol, "beta", ReplicaMode.Async);
            await Primary.WaitInSyncAsync(Vol, "beta");
            await A.PrepareMigrationAsync(Vol, "beta");   // reuses the async replica, as a sync one for now
            Assert.Equal(ReplicaMode.Sync, Beta.Mode);
            await A.WaitInSyncAsync(Vol).WaitAsync(TimeSpan.FromSeconds(30));
            var device = Primary.Open(Vol, out _);

            var lagging = await LaggingWriteAsync(device);

            await A.AbortMigrationAsync(Vol).WaitAsync(Soon);
            Assert.Equal(VolumeMigrationPhase.Aborted, A.GetMigration(Vol).Phase);
            Assert.Equal(ReplicaMode.Async, Beta.Mode);
            Assert.Equal(ReplicaState.InSync, Beta.State);   // a reused replica is not paused: it stays attached
            Assert.Equal(TimeSpan.Zero, Link.AsyncLagLimit);
            Assert.False(Link.IsLagging);
            await WriteAsync(device, 2, seed: 3).WaitAsync(Soon);
            await WriteAsync(device, 3, seed: 4).WaitAsync(Soon);
            Assert.True(Beta.Lag > Limit * 2, $"{Beta}");

            Relay.Release();
            await lagging.WaitAsync(Soon);
            await AssertConvergedAsync();
        }
        finally { await DisposeRelayAsync(); }
    }

    [Fact]
    public async Task An_abort_releases_a_write_waiting_for_a_lagging_replica_and_a_retry_resumes()
    {
        try
        {
            var device = await PreparedAsync();
            var lagging = await LaggingWriteAsync(device);

            // The replica the migration made is paused: its connection goes, and with it what the writer waited for
            // (far sooner than the 30 s sync timeout).
            await A.AbortMigrationAsync(Vol).WaitAsync(Soon);
            await lagging.WaitAsync(Soon);
            Assert.Equal(ReplicaState.Paused, Beta.State);
            Assert.Equal(TimeSpan.Zero, Link.AsyncLagLimit);
            Assert.Equal(0, Beta.PendingBytes);
            Assert.True(Beta.BytesOutOfSync >= 2 * Block, $"{Beta}");   // what was never acknowledged is marked
            await WriteAsync(device, 2, seed: 3).WaitAsync(Soon);

            Relay.Release();
            await A.PrepareMigrationAsync(Vol, "beta");
            await A.WaitInSyncAsync(Vol).WaitAsync(TimeSpan.FromSeconds(30));
            await AssertConvergedAsync();
        }
        finally { await DisposeRelayAsync(); }
    }
}

/// <summary>A short sync timeout (1 s): what a replica that stays silent past it gets, lagging async or sync.</summary>
public sealed class AsyncLagTimeoutTests : AsyncLagTestBase
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(1);

    protected override ReplicationOptions Options => ReplNode.TestOptions with
    {
        SyncTimeout = Timeout,
        HeartbeatTimeout = TimeSpan.FromSeconds(60),
    };

    [Fact]
    public async Task A_lagging_async_replica_silent_past_the_sync_timeout_is_not_marked_out_of_sync_and_the_write_goes_on()
    {
        try
        {
            var device = await PreparedAsync();
            long resynced = Beta.BytesResynced;
            A.SetMigrationMirroring(Vol, ReplicaMode.Async, Limit);
            Relay.Hold();
            await WriteAsync(device, 0, seed: 1).WaitAsync(Soon);
            await Wait.UntilAsync(() => Beta.Lag > Limit * 2, Soon, () => $"{Beta}");

            for (int i = 1; i <= 2; i++)
            {
                var watch = Stopwatch.StartNew();
                await WriteAsync(device, i, seed: 1 + i).WaitAsync(Soon);
                // Its acknowledgement is held: only the timeout let it go on, and nothing sooner did.
                Assert.True(watch.Elapsed >= Timeout - TimeSpan.FromMilliseconds(50), $"write {i} took {watch.Elapsed}");
                Assert.True(Link.IsLagging);
                var r = Beta;
                Assert.True(r.State == ReplicaState.InSync, $"{r}: {Logs()}");
                Assert.Equal(ReplicaMode.Async, r.Mode);
                Assert.Equal((i + 1L) * Block, r.PendingBytes);   // still attached, still queued, nothing dropped
            }
            Assert.DoesNotContain(Primary.Log.Entries, e => e.EventId.Id == 3105);   // "no acknowledgement ... marked OutOfSync"

            await AssertConvergedAsync();
            Assert.Equal(resynced, Beta.BytesResynced);   // nothing was given up on: no resync afterwards
        }
        finally { await DisposeRelayAsync(); }
    }

    [Fact]
    public async Task A_sync_replica_silent_past_the_sync_timeout_is_still_marked_out_of_sync_after_a_lag_limit()
    {
        try
        {
            var device = await PreparedAsync();
            A.SetMigrationMirroring(Vol, ReplicaMode.Async, Limit);
            A.SetMigrationMirroring(Vol, ReplicaMode.Sync);
            Relay.Hold();
            var watch = Stopwatch.StartNew();
            await WriteAsync(device, 0, seed: 1).WaitAsync(Soon);
            Assert.True(watch.Elapsed >= Timeout - TimeSpan.FromMilliseconds(50), $"took {watch.Elapsed}");
            Assert.Equal(ReplicaState.OutOfSync, Beta.State);
            Assert.Contains(Primary.Log.Entries, e => e.EventId.Id == 3105);

            await AssertConvergedAsync();
        }
        finally { await DisposeRelayAsync(); }
    }
}
