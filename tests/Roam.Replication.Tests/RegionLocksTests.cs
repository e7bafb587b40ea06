using CsCheck;
using Roam.Replication.Engine;

namespace Roam.Replication.Tests;

public sealed class RegionLocksTests
{
    [Fact]
    public void A_range_takes_exactly_the_stripes_of_its_regions_in_ascending_order()
    {
        const int RegionSize = 4096, Stripes = 16;
        var locks = new RegionLocks(RegionSize, Stripes);
        Gen.Select(Gen.Long[0, 100L * RegionSize], Gen.Long[0, 40L * RegionSize]).Sample((offset, length) =>
        {
            var span = locks.Span(offset, length);
            var taken = Enumerable.Range(0, span.Count).Select(span.StripeAt).ToArray();
            long first = offset / RegionSize, last = (offset + Math.Max(length, 1) - 1) / RegionSize;
            var expected = new SortedSet<int>();
            for (long r = first; r <= last; r++) expected.Add((int)(r % Stripes));
            Assert.Equal(expected, taken);
        });
    }

    [Fact]
    public async Task Two_writers_to_one_region_take_turns_and_wrapping_ranges_do_not_deadlock()
    {
        var locks = new RegionLocks(4096, 4);
        var first = await locks.LockAsync(3 * 4096, 2 * 4096); // regions 3 and 4: stripes 3 and 0 (wraps)
        var second = locks.LockAsync(0, 1).AsTask();            // stripe 0
        await Task.Delay(50);
        Assert.False(second.IsCompleted);
        first.Dispose();
        (await second.WaitAsync(TimeSpan.FromSeconds(5))).Dispose();
        var writers = Enumerable.Range(0, 8).Select(i => Task.Run(async () =>
        {
            for (int n = 0; n < 200; n++) (await locks.LockAsync((i + n) % 7 * 4096L, (1 + n % 5) * 4096L)).Dispose();
        }));
        await Task.WhenAll(writers).WaitAsync(TimeSpan.FromSeconds(30));
    }
}
