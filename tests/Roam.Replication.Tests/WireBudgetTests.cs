using Microsoft.Extensions.Time.Testing;
using Roam.Replication.Source;

namespace Roam.Replication.Tests;

/// <summary>
/// The link's bandwidth limit on a fake clock: mirrored writes are charged without waiting, the copy waits for a
/// non-negative balance, debt is capped at one second, and an idle link banks at most a tenth of a second.
/// </summary>
public sealed class WireBudgetTests
{
    private const long Rate = 1_000_000; // bytes per second
    private static readonly TimeSpan Soon = TimeSpan.FromSeconds(10); // real time, only against a hang

    [Fact]
    public async Task Without_a_limit_nothing_waits()
    {
        var clock = new FakeTimeProvider();
        var budget = new WireBudget(0, clock);
        budget.Charge(100 * Rate);
        Assert.True(budget.WaitAsync(default).IsCompleted);
        await budget.WaitAsync(default);
    }

    [Fact]
    public async Task The_copy_waits_for_what_was_charged_and_goes_on_once_it_is_paid()
    {
        var clock = new FakeTimeProvider();
        var budget = new WireBudget(Rate, clock);
        budget.Charge(Rate / 10);          // the bucket starts empty: a tenth of a second of debt
        var waiting = budget.WaitAsync(default).AsTask();
        await Task.Delay(50);
        Assert.False(waiting.IsCompleted);
        clock.Advance(TimeSpan.FromMilliseconds(60));
        await Task.Delay(50);
        Assert.False(waiting.IsCompleted);  // 60 of the 100 ms paid
        clock.Advance(TimeSpan.FromMilliseconds(40));
        await waiting.WaitAsync(Soon);
    }

    [Fact]
    public async Task A_burst_of_mirrored_writes_delays_the_copy_by_at_most_one_second()
    {
        var clock = new FakeTimeProvider();
        var budget = new WireBudget(Rate, clock);
        for (int i = 0; i < 100; i++) budget.Charge(Rate / 2);  // 50 s worth of guest writes, none of them waited
        var waiting = budget.WaitAsync(default).AsTask();
        for (int ms = 0; ms < 950; ms += 50)
        {
            clock.Advance(TimeSpan.FromMilliseconds(50));
            await Task.Delay(5);
        }
        Assert.False(waiting.IsCompleted); // 950 ms paid of the capped second
        clock.Advance(TimeSpan.FromMilliseconds(50));
        await waiting.WaitAsync(Soon);      // not after 50 s: the debt was capped
    }

    [Fact]
    public async Task An_idle_link_banks_a_tenth_of_a_second_not_more()
    {
        var clock = new FakeTimeProvider();
        var budget = new WireBudget(Rate, clock);
        clock.Advance(TimeSpan.FromMinutes(5));
        budget.Charge(Rate / 10);
        await budget.WaitAsync(default).AsTask().WaitAsync(Soon); // the banked tenth pays for it
        budget.Charge(Rate / 10);
        var waiting = budget.WaitAsync(default).AsTask();
        await Task.Delay(50);
        Assert.False(waiting.IsCompleted); // five idle minutes did not buy more than that
        clock.Advance(TimeSpan.FromMilliseconds(100));
        await waiting.WaitAsync(Soon);
    }

    [Fact]
    public async Task Lifting_the_limit_releases_a_waiting_copy()
    {
        var clock = new FakeTimeProvider();
        var budget = new WireBudget(Rate, clock);
        budget.Charge(Rate);
        var waiting = budget.WaitAsync(default).AsTask();
        await Task.Delay(50);
        Assert.False(waiting.IsCompleted);
        budget.BytesPerSecond = 0;
        clock.Advance(TimeSpan.FromMilliseconds(200)); // a waiter looks again at least every 200 ms
        await waiting.WaitAsync(Soon);
    }

    [Fact]
    public async Task A_cancelled_wait_ends_at_once()
    {
        var clock = new FakeTimeProvider();
        var budget = new WireBudget(Rate, clock);
        budget.Charge(Rate);
        using var cancel = new CancellationTokenSource();
        var waiting = budget.WaitAsync(cancel.Token).AsTask();
        await cancel.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => waiting.WaitAsync(Soon));
    }
}
