using Roam.Storage.Tracking;

namespace Roam.Storage.Tests.Tracking;

public sealed class ActivityLogTests : IDisposable
{
    private const int Extent = 1 << 20;
    private readonly string _dir = Directory.CreateTempSubdirectory("roam-al-").FullName;

    private string LogPath => Path.Combine(_dir, "al");

    [Fact]
    public async Task Extents_written_before_a_crash_are_reported_hot_on_reopen()
    {
        using (var log = ActivityLog.Open(LogPath, out var hot, Extent, capacity: 4))
        {
            Assert.Empty(hot);
            using (await log.EnterAsync(5L * Extent + 10, 100)) { }
            using (await log.EnterAsync(9L * Extent - 1, 2)) { } // straddles extents 8 and 9
            // No MarkClean: as if the process died here.
        }
        using var reopened = ActivityLog.Open(LogPath, out var hotAfterCrash, Extent, capacity: 4);
        Assert.Equal([5L * Extent, 8L * Extent, 9L * Extent], hotAfterCrash.Select(h => h.Offset).Order());
    }

    [Fact]
    public async Task Clean_close_leaves_nothing_hot()
    {
        using (var log = ActivityLog.Open(LogPath, out _, Extent, capacity: 4))
        {
            using (await log.EnterAsync(0, 4096)) { }
            log.MarkClean();
        }
        using var reopened = ActivityLog.Open(LogPath, out var hot, Extent, capacity: 4);
        Assert.Empty(hot);
    }

    [Fact]
    public async Task Hot_set_stays_within_capacity_and_evicts_least_recently_used_after_saving_bitmaps()
    {
        List<long> evicted = [];
        ValueTask BeforeEvict(Eviction eviction)
        {
            Assert.All(eviction.Evicted, r => Assert.Equal(Extent, r.Length));
            evicted.AddRange(eviction.Evicted.Select(r => r.Offset / Extent));
            // The two others stay in the log (written before, named again after).
            Assert.Equal(2, eviction.StaysLogged.Count);
            return ValueTask.CompletedTask;
        }
        using (var log = ActivityLog.Open(LogPath, out _, Extent, capacity: 3, beforeEvict: BeforeEvict))
        {
            for (long e = 0; e < 10; e++)
                using (await log.EnterAsync(e * Extent, 4096)) { }
            using (await log.EnterAsync(9 * Extent, 4096)) { } // already hot: no transaction
            Assert.Equal(10, log.Transactions);
            // Every admission past the third evicted the least recently used extent, named to the hook.
            Assert.Equal([0L, 1, 2, 3, 4, 5, 6], evicted);
        }
        using var reopened = ActivityLog.Open(LogPath, out var hot, Extent, capacity: 3);
        Assert.Equal([7L * Extent, 8L * Extent, 9L * Extent], hot.Select(h => h.Offset).Order());
    }

    [Fact]
    public async Task Pinned_extents_are_never_evicted_while_their_write_is_in_flight()
    {
        using var log = ActivityLog.Open(LogPath, out _, Extent, capacity: 2);
        var a = await log.EnterAsync(0, 1);
        var b = await log.EnterAsync(Extent, 1);
        var third = log.EnterAsync(2L * Extent, 1).AsTask();
        await Task.Delay(50);
        Assert.False(third.IsCompleted, "a third extent got in while both slots were pinned");
        a.Dispose();
        using (await third.WaitAsync(TimeSpan.FromSeconds(5))) { }
        b.Dispose();
    }

    [Fact]
    public async Task A_clean_shutdown_wakes_a_writer_waiting_for_a_slot()
    {
        using var log = ActivityLog.Open(LogPath, out _, Extent, capacity: 2);
        var a = await log.EnterAsync(0, 1);
        var b = await log.EnterAsync(Extent, 1);
        var third = log.EnterAsync(2L * Extent, 1).AsTask();
        await Task.Delay(50);
        Assert.False(third.IsCompleted);
        log.MarkClean(); // the slots are free now: the waiter must not sleep until a pin it does not need goes
        using (await third.WaitAsync(TimeSpan.FromSeconds(5))) { }
        a.Dispose();
        b.Dispose();
    }

    [Fact]
    public async Task A_failed_commit_is_retried_by_the_next_write_and_keeps_other_writers_pins()
    {
        int failures = 1;
        ValueTask BeforeEvict(Eviction eviction) =>
            Interlocked.Decrement(ref failures) >= 0 ? throw new IOException("bitmap save failed (test)") : ValueTask.CompletedTask;
        using (var log = ActivityLog.Open(LogPath, out _, Extent, capacity: 2, beforeEvict: BeforeEvict))
        {
            using (await log.EnterAsync(0, 1)) { }
            var inFlight = await log.EnterAsync(Extent, 1);           // pinned across the failure below
            await Assert.ThrowsAsync<IOException>(async () => { using (await log.EnterAsync(2L * Extent, 1)) { } });
            using (await log.EnterAsync(2L * Extent, 1)) { }         // evicts extent 0 this time

            // Extents 1 and 3 pinned by writes in flight: a write to a fifth waits, the failure released no pin.
            var crowding = await log.EnterAsync(3L * Extent, 1).AsTask().WaitAsync(TimeSpan.FromSeconds(5)); // evicts 2
            var squeezed = log.EnterAsync(4L * Extent, 1).AsTask();
            await Task.Delay(50);
            Assert.False(squeezed.IsCompleted, "a pinned extent was evicted");
            inFlight.Dispose();
            using (await squeezed.WaitAsync(TimeSpan.FromSeconds(5))) { }
            crowding.Dispose();
        }
        using var reopened = ActivityLog.Open(LogPath, out var hot, Extent, capacity: 2);
        Assert.Equal([3L * Extent, 4L * Extent], hot.Select(h => h.Offset).Order());
    }

    [Fact]
    public async Task A_torn_newest_slot_falls_back_to_the_previous_one()
    {
        using (var log = ActivityLog.Open(LogPath, out _, Extent, capacity: 4))
        {
            using (await log.EnterAsync(0, 1)) { }          // transaction 1 -> slot 1: {0}
            using (await log.EnterAsync(3L * Extent, 1)) { } // transaction 2 -> slot 0: {0, 3}
        }
        var bytes = File.ReadAllBytes(LogPath);
        bytes[20] ^= 0xff; // damage slot 0 (the newest)
        File.WriteAllBytes(LogPath, bytes);
        using var reopened = ActivityLog.Open(LogPath, out var hot, Extent, capacity: 4);
        Assert.Equal([0L], hot.Select(h => h.Offset));
    }

    [Fact]
    public async Task Writes_opening_extents_while_a_transaction_is_written_share_the_next_one()
    {
        var firstEviction = new TaskCompletionSource();
        int evictions = 0;
        async ValueTask BeforeEvict(Eviction eviction)
        {
            if (Interlocked.Increment(ref evictions) == 1) await firstEviction.Task; // hold the first committer
        }
        using (var log = ActivityLog.Open(LogPath, out _, Extent, capacity: 4, beforeEvict: BeforeEvict))
        {
            for (long e = 0; e < 4; e++)
                using (await log.EnterAsync(e * Extent, 1)) { }
            Assert.Equal(4, log.Transactions);

            var a = log.EnterAsync(10L * Extent, 1).AsTask();            // commits, held in its eviction hook
            while (Volatile.Read(ref evictions) == 0) await Task.Delay(1);
            var others = new[] { 11L, 12L, 13L }.Select(e => log.EnterAsync(e * Extent, 1).AsTask()).ToArray();
            await Task.Delay(50);
            Assert.False(others.Any(t => t.IsCompleted), "a write went on before its extent was durable");
            firstEviction.SetResult();
            foreach (var scope in await Task.WhenAll([a, .. others])) scope.Dispose();

            Assert.Equal(6, log.Transactions); // a's own, then one for the three that waited (not three)
        }
        using var reopened = ActivityLog.Open(LogPath, out var hot, Extent, capacity: 4);
        Assert.Equal([10L * Extent, 11L * Extent, 12L * Extent, 13L * Extent], hot.Select(h => h.Offset).Order());
    }

    public void Dispose() => Directory.Delete(_dir, recursive: true);
}
