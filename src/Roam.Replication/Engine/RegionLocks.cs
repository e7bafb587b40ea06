using System.Runtime.CompilerServices;
namespace Roam.Replication.Engine;

/// <summary>
/// Striped async locks over a volume's regions: a live write and a resync of the same region take
/// the same stripe, so their frames are queued in the order their local reads/writes happened.
/// Stripes are always taken in ascending order, so two ranges never deadlock. A range's stripes are
/// one run of indices, or two when it wraps past the last stripe: taking them needs no allocation.
/// </summary>
internal sealed class RegionLocks(int regionSize, int stripes = 256)
{
    private readonly SemaphoreSlim[] _stripes = [.. Enumerable.Range(0, stripes).Select(_ => new SemaphoreSlim(1, 1))];

    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    public async ValueTask<Releaser> LockAsync(long offset, long length)
    {
        var held = Span(offset, length);
        int got = 0;
        try
        {
            for (; got < held.Count; got++) await _stripes[held.StripeAt(got)].WaitAsync().ConfigureAwait(false);
        }
        catch
        {
            for (int i = 0; i < got; i++) _stripes[held.StripeAt(i)].Release();
            throw;
        }
        return new Releaser(this, held);
    }

    /// <summary>The stripes of [offset, offset+length), in ascending order.</summary>
    internal StripeSpan Span(long offset, long length)
    {
        long first = offset / regionSize, last = (offset + Math.Max(length, 1) - 1) / regionSize;
        int n = _stripes.Length;
        if (last - first + 1 >= n) return new StripeSpan(0, n, 0, n);
        int from = (int)(first % n), to = (int)(last % n);
        // No wrap: from..to. A wrap: 0..to, then from..n-1 (ascending either way).
        return from <= to ? new StripeSpan(from, to - from + 1, 0, n) : new StripeSpan(0, to + 1, from, n);
    }

    /// <summary>Stripes [Start, Start+FirstCount), then [SecondStart, n) when the range wrapped (SecondStart &lt; n).</summary>
    internal readonly record struct StripeSpan(int Start, int FirstCount, int SecondStart, int Stripes)
    {
        public int Count => FirstCount + (SecondStart == 0 ? 0 : Stripes - SecondStart);

        public int StripeAt(int i) => i < FirstCount ? Start + i : SecondStart + (i - FirstCount);
    }

    public readonly struct Releaser(RegionLocks locks, StripeSpan held) : IDisposable
    {
        public void Dispose()
        {
            if (locks is null) return;
            for (int i = 0; i < held.Count; i++) locks._stripes[held.StripeAt(i)].Release();
        }
    }
}
