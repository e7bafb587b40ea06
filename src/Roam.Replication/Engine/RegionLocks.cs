namespace Roam.Replication.Engine;

/// <summary>
/// Striped async locks over a volume's regions: a live write and a resync of the same region take
/// the same stripe, so their frames are queued in the order their local reads/writes happened.
/// Stripes are always taken in ascending order, so two ranges never deadlock.
/// </summary>
internal sealed class RegionLocks(int regionSize, int stripes = 256)
{
    private readonly SemaphoreSlim[] _stripes = [.. Enumerable.Range(0, stripes).Select(_ => new SemaphoreSlim(1, 1))];

    public async ValueTask<Releaser> LockAsync(long offset, long length)
    {
        long first = offset / regionSize, last = (offset + Math.Max(length, 1) - 1) / regionSize;
        int[] taken;
        if (last - first + 1 >= _stripes.Length) taken = [.. Enumerable.Range(0, _stripes.Length)];
        else
        {
            var set = new SortedSet<int>();
            for (long r = first; r <= last; r++) set.Add((int)(r % _stripes.Length));
            taken = [.. set];
        }
        int got = 0;
        try
        {
            for (; got < taken.Length; got++) await _stripes[taken[got]].WaitAsync().ConfigureAwait(false);
        }
        catch
        {
            for (int i = 0; i < got; i++) _stripes[taken[i]].Release();
            throw;
        }
        return new Releaser(this, taken);
    }

    public readonly struct Releaser(RegionLocks locks, int[] taken) : IDisposable
    {
        public void Dispose()
        {
            if (locks is null) return;
            foreach (var s in taken) locks._stripes[s].Release();
        }
    }
}
