using System.Runtime.CompilerServices;
using System.Buffers.Binary;
using System.IO.Hashing;
using Microsoft.Win32.SafeHandles;
using Roam.Storage.Devices;

namespace Roam.Storage.Tracking;

/// <summary>
/// The volume's hot set (DRBD's activity log): the extents that writes may currently be touching.
/// An extent is recorded durably *before* the first write to it, so after a crash of the primary
/// only the extents in the log can differ between it and its peers, and those get resynced, instead
/// of the whole volume. Its size bounds that resync: 16 extents of 4 MiB is at most 64 MiB.
///
/// The file holds two 4 KiB slots written alternately with one fdatasync each, so a torn write
/// leaves the other slot intact: magic (u32) | sequence (u64) | count (u32) | extents (u64 x count) | crc32 (u32).
/// </summary>
public sealed class ActivityLog : IDisposable
{
    public const int DefaultExtentSize = 4 * 1024 * 1024;
    public const int DefaultCapacity = 16;
    private const int SlotSize = 4096;
    private const uint Magic = 0x474c4341; // "ACLG"
    private readonly SafeFileHandle _file;
    private readonly SemaphoreSlim _update = new(1, 1);
    private readonly Lock _gate = new();
    private readonly Dictionary<long, Entry> _active = [];
    private readonly Func<Eviction, ValueTask>? _beforeEvict;
    private long _sequence;
    private long _clock;
    private TaskCompletionSource? _pending;   // the next transaction's completion, shared by the writers it admits
    private TaskCompletionSource? _unpinned;
    private long[] _logged = [];               // the extents of the last transaction written: what a crash now would resync  // writers waiting for any extent to become evictable
    private List<long> _evicted = [];   // extents removed from the table, still in the durable log until the next transaction

    private ActivityLog(SafeFileHandle file, int extentSize, int capacity, Func<Eviction, ValueTask>? beforeEvict, long sequence)
    {
        _file = file;
        ExtentSize = extentSize;
        Capacity = capacity;
        _beforeEvict = beforeEvict;
        _sequence = sequence;
    }

    public int ExtentSize { get; }

    public int Capacity { get; }

    /// <summary>Log transactions written so far (each one fdatasync).</summary>
    public long Transactions { get; private set; }

    /// <summary>
    /// Opens the log. <paramref name="hotAtCrash"/> lists the byte ranges that were hot when the log was
    /// last written: empty after a clean close, the regions to resync after a crash.
    /// <paramref name="beforeEvict"/> runs with the byte ranges of the extents about to leave the log,
    /// so the bitmaps that remember writes to them are saved first (DRBD's rule), and of those that stay
    /// in it whatever happens (a save may leave their bits out: the log names them after a crash).
    /// </summary>
    public static ActivityLog Open(string path, out IReadOnlyList<(long Offset, long Length)> hotAtCrash,
        int extentSize = DefaultExtentSize, int capacity = DefaultCapacity,
        Func<Eviction, ValueTask>? beforeEvict = null)
    {
        if (capacity < 1 || capacity > (SlotSize - 20) / 8) throw new ArgumentOutOfRangeException(nameof(capacity));
        var file = File.OpenHandle(path, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
        var (sequence, extents) = ReadNewestSlot(file);
        hotAtCrash = [.. extents.Select(e => (e * extentSize, (long)extentSize))];
        return new ActivityLog(file, extentSize, capacity, beforeEvict, sequence);
    }

    /// <summary>
    /// Makes the extents of [offset, offset+length) active before a write to them, and pins them until
    /// the returned scope is disposed (when the write has completed everywhere it goes). Writes that
    /// open extents at the same time share one log transaction (group commit): with random writes
    /// nearly every write opens an extent, and one fdatasync each would bound the volume's write rate.
    /// </summary>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    public async ValueTask<Scope> EnterAsync(long offset, long length)
    {
        long first = offset / ExtentSize, last = (offset + Math.Max(length, 1) - 1) / ExtentSize;
        if (last - first + 1 > Capacity) throw new ArgumentOutOfRangeException(nameof(length), "a single write spans more extents than the log holds");
        while (true)
        {
            Task? durable = null;
            Task? full = null;
            Scope pinned = default;
            lock (_gate)
            {
                int missing = 0;
                for (long e = first; e <= last; e++) if (!_active.ContainsKey(e)) missing++;
                int overflow = _active.Count + missing - Capacity;
                List<long>? victims = null; // allocated only when an extent must make room: the hot path allocates nothing
                if (overflow > 0)
                {
                    // Least recently used extents with no write in flight make room. An extent admitted
                    // but not yet durable is pinned by its writer, so it is never a victim.
                    victims = _active.Where(kv => kv.Value.Pins == 0 && (kv.Key < first || kv.Key > last))
                        .OrderBy(kv => kv.Value.LastUse).Take(overflow).Select(kv => kv.Key).ToList();
                }
                if (overflow <= 0 || victims!.Count == overflow)
                {
                    if (victims is not null)
                    {
                        foreach (var v in victims) _active.Remove(v);
                        _evicted.AddRange(victims);
                    }
                    for (long e = first; e <= last; e++)
                    {
                        if (!_active.TryGetValue(e, out var entry))
                        {
                            _pending ??= new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
                            _active[e] = entry = new Entry { Durable = _pending.Task };
                        }
                        entry.Pins++;
                        entry.LastUse = ++_clock;
                        if (!entry.Durable.IsCompletedSuccessfully) durable = durable is null ? entry.Durable : Task.WhenAll(durable, entry.Durable);
                    }
                    pinned = Pinned(first, last);
                    if (durable is null) return pinned;
                }
                else
                {
                    // Every extent is pinned by a write in flight: wait until one finishes.
                    _unpinned ??= new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
                    full = _unpinned.Task;
                }
            }
            if (full is not null)
            {
                await full.ConfigureAwait(false);
                continue;
            }
            try
            {
                await CommitAsync().ConfigureAwait(false);
                await durable!.ConfigureAwait(false);
            }
            catch
            {
                pinned.Dispose();
                throw;
            }
            return pinned;
        }
    }

    /// <summary>
    /// Writes one transaction for every extent admitted since the last one. One committer at a time;
    /// a writer whose extents a previous committer already covered finds nothing pending and goes on.
    /// </summary>
    private async Task CommitAsync()
    {
        await _update.WaitAsync().ConfigureAwait(false);
        try
        {
            TaskCompletionSource? batch;
            List<long> evicted;
            long[] extents;
            lock (_gate)
            {
                // Batch, evictions and the extents written are taken together: an extent evicted after
                // this point stays in this transaction and leaves the log only with the next one, after
                // the next committer has saved the bitmaps for it.
                batch = _pending;
                _pending = null;
                evicted = _evicted;
                _evicted = [];
                extents = [.. _active.Keys.Order()];
            }
            if (batch is null) return;
            try
            {
                // The victims are still in the durable log until the transaction below, so saving the
                // bitmaps first means no write to them is ever forgotten by both.
                if (evicted.Count > 0 && _beforeEvict is not null)
                {
                    // Until the transaction below is written the old one is in force, so only an extent in both
                    // stays named by the durable log through a crash at any point.
                    var stays = _logged.Where(extents.Contains);
                    await _beforeEvict(new Eviction(Ranges(evicted.Where(e => !extents.Contains(e))), Ranges(stays))).ConfigureAwait(false);
                }
                WriteTransaction(extents);
                batch.SetResult();
            }
            catch (Exception ex)
            {
                lock (_gate)
                {
                    // Not durable: forget these extents so the next write to them tries again.
                    foreach (var e in _active.Where(kv => kv.Value.Durable == batch.Task).Select(kv => kv.Key).ToList()) _active.Remove(e);
                    _evicted.AddRange(evicted);
                    // Slots were freed: writers waiting for one may go on (and try again).
                    if (_unpinned is { } waiting) { _unpinned = null; waiting.SetResult(); }
                }
                batch.SetException(ex);
            }
        }
        finally { _update.Release(); }
    }

    /// <summary>A clean shutdown: nothing is hot any more, so a restart resyncs nothing on the log's account.</summary>
    public void MarkClean()
    {
        _update.Wait();
        try
        {
            lock (_gate)
            {
                _active.Clear();
                if (_unpinned is { } waiting) { _unpinned = null; waiting.SetResult(); }
            }
            WriteTransaction([]);
        }
        finally { _update.Release(); }
    }

    public void Dispose() => _file.Dispose();

    /// <summary>The entries a writer pinned (under _gate), held by its scope: a failed commit may replace an entry
    /// under the same key for another writer, whose pin must not be the one released.</summary>
    private Scope Pinned(long first, long last)
    {
        // Most writes touch one extent: their scope holds the entry itself, no array.
        if (first == last) return new Scope(this, _active[first], null);
        var entries = new Entry[last - first + 1];
        for (long e = first; e <= last; e++) entries[e - first] = _active[e];
        return new Scope(this, null, entries);
    }

    /// <summary>
    /// Runs <paramref name="action"/> while no transaction can be written, with the byte ranges of the extents the
    /// durable log names now: a bitmap saved meanwhile may leave their bits out (a crash resyncs them on the log's
    /// account), and before one of them leaves the log the eviction hook saves what the file then lacks.
    /// </summary>
    public void WhileLogged(Action<IReadOnlyList<(long Offset, long Length)>> action)
    {
        _update.Wait();
        try { action(Ranges(_logged)); }
        finally { _update.Release(); }
    }

    private (long Offset, long Length)[] Ranges(IEnumerable<long> extents) => [.. extents.Select(e => (e * ExtentSize, (long)ExtentSize))];

    private void Unpin(Entry? one, Entry[]? many)
    {
        lock (_gate)
        {
            bool freed = one is not null && --one.Pins == 0;
            if (many is not null)
                foreach (var entry in many)
                    if (--entry.Pins == 0) freed = true;
            if (freed && _unpinned is { } waiting)
            {
                _unpinned = null;
                waiting.SetResult();
            }
        }
    }

    private void WriteTransaction(long[] extents)
    {
        long sequence = ++_sequence;
        var slot = new byte[SlotSize];
        BinaryPrimitives.WriteUInt32LittleEndian(slot, Magic);
        BinaryPrimitives.WriteInt64LittleEndian(slot.AsSpan(4), sequence);
        BinaryPrimitives.WriteInt32LittleEndian(slot.AsSpan(12), extents.Length);
        for (int i = 0; i < extents.Length; i++) BinaryPrimitives.WriteInt64LittleEndian(slot.AsSpan(16 + 8 * i), extents[i]);
        int end = 16 + 8 * extents.Length;
        BinaryPrimitives.WriteUInt32LittleEndian(slot.AsSpan(end), Crc32.HashToUInt32(slot.AsSpan(0, end)));
        RandomAccess.Write(_file, slot, (sequence & 1) * SlotSize);
        NativeFile.DataSync(_file);
        _logged = extents;
        Transactions++;
    }

    private static (long Sequence, long[] Extents) ReadNewestSlot(SafeFileHandle file)
    {
        long bestSequence = 0;
        long[] best = [];
        var slot = new byte[SlotSize];
        for (int s = 0; s < 2; s++)
        {
            if (RandomAccess.Read(file, slot, s * SlotSize) != SlotSize) continue;
            if (BinaryPrimitives.ReadUInt32LittleEndian(slot) != Magic) continue;
            long sequence = BinaryPrimitives.ReadInt64LittleEndian(slot.AsSpan(4));
            int count = BinaryPrimitives.ReadInt32LittleEndian(slot.AsSpan(12));
            if (count < 0 || 16 + 8 * count + 4 > SlotSize) continue;
            int end = 16 + 8 * count;
            if (BinaryPrimitives.ReadUInt32LittleEndian(slot.AsSpan(end)) != Crc32.HashToUInt32(slot.AsSpan(0, end))) continue;
            if (sequence <= bestSequence) continue;
            bestSequence = sequence;
            best = new long[count];
            for (int i = 0; i < count; i++) best[i] = BinaryPrimitives.ReadInt64LittleEndian(slot.AsSpan(16 + 8 * i));
        }
        return (bestSequence, best);
    }

    public sealed class Entry
    {
        internal int Pins;
        internal long LastUse;

        /// <summary>Completes when a transaction naming this extent is on stable storage.</summary>
        internal Task Durable = Task.CompletedTask;
    }

    /// <summary>Pins extents while a write is in flight: one entry, or several for a write across extents.</summary>
    public readonly struct Scope(ActivityLog log, Entry? one, Entry[]? many) : IDisposable
    {
        public void Dispose() => log?.Unpin(one, many);
    }
}

/// <summary>What an activity-log transaction is about to forget, and what it keeps naming through a crash at any point.</summary>
public readonly record struct Eviction(IReadOnlyList<(long Offset, long Length)> Evicted, IReadOnlyList<(long Offset, long Length)> StaysLogged);
