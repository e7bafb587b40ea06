using System.Buffers.Binary;
using System.IO.Hashing;
using System.Numerics;
using Roam.Storage.Volumes;

namespace Roam.Storage.Tracking;

/// <summary>
/// Which regions of a volume may differ from one peer's copy (DRBD's bitmap): one bit per region,
/// set when a write cannot be shown to have reached the peer, cleared when a resync has copied the
/// region. Kept in memory and saved whole and atomically (<see cref="DurableFile"/>); the activity
/// log covers the writes a crash catches between two saves.
///
/// File: "RBMP" (u32) | version (u32) | region size (u32) | volume size (u64) | crc32 of the bits (u32) | bits (u64 LE words)
/// </summary>
public sealed class RegionBitmap
{
    public const int DefaultRegionSize = 64 * 1024;
    private const uint Magic = 0x504d4252; // "RBMP" read as little-endian
    private const int HeaderSize = 4 + 4 + 4 + 8 + 4;
    private readonly Lock _gate = new();
    // Saves come from a timer, from activity-log evictions and from state changes at once; they share
    // one temporary file, so they take turns (the bits themselves are snapshot under _gate).
    private readonly Lock _saveGate = new();
    private ulong[] _words;
    // What the file on disk holds (as far as this instance knows): lets an activity-log eviction skip the
    // save when every bit it depends on is already durable, which is the common case.
    private ulong[] _saved;

    public RegionBitmap(long volumeSize, int regionSize = DefaultRegionSize)
    {
        if (regionSize <= 0 || !BitOperations.IsPow2(regionSize)) throw new ArgumentOutOfRangeException(nameof(regionSize));
        RegionSize = regionSize;
        VolumeSize = volumeSize;
        _words = new ulong[(RegionCount + 63) / 64];
        _saved = new ulong[_words.Length];
    }

    public int RegionSize { get; }

    public long VolumeSize { get; private set; }

    public long RegionCount => (VolumeSize + RegionSize - 1) / RegionSize;

    /// <summary>Bumped on every change, so a saver can tell whether there is anything new to save.</summary>
    public long Version { get; private set; }

    public long DirtyRegions
    {
        get { lock (_gate) return _words.Sum(w => (long)BitOperations.PopCount(w)); }
    }

    /// <summary>Upper bound of the bytes a resync would copy.</summary>
    public long DirtyBytes
    {
        get
        {
            lock (_gate)
            {
                long regions = _words.Sum(w => (long)BitOperations.PopCount(w));
                long bytes = regions * RegionSize;
                // The last region may be short.
                long last = RegionCount - 1;
                if (last >= 0 && IsSetUnlocked(last)) bytes -= RegionCount * RegionSize - VolumeSize;
                return bytes;
            }
        }
    }

    public void MarkDirty(long offset, long length)
    {
        if (length <= 0) return;
        long first = offset / RegionSize, last = (offset + length - 1) / RegionSize;
        lock (_gate)
        {
            for (long r = first; r <= last && r < RegionCount; r++) _words[r >> 6] |= 1UL << (int)(r & 63);
            Version++;
        }
    }

    public void MarkAllDirty()
    {
        lock (_gate)
        {
            for (long r = 0; r < RegionCount; r++) _words[r >> 6] |= 1UL << (int)(r & 63);
            Version++;
        }
    }

    /// <summary>Clears one region after a resync copied it; the caller guarantees no write to it raced the copy.</summary>
    public void MarkClean(long region)
    {
        lock (_gate)
        {
            _words[region >> 6] &= ~(1UL << (int)(region & 63));
            Version++;
        }
    }

    public bool IsDirty(long region)
    {
        lock (_gate) return IsSetUnlocked(region);
    }

    /// <summary>The next dirty region at or after <paramref name="fromRegion"/>, or -1.</summary>
    public long NextDirty(long fromRegion)
    {
        lock (_gate)
        {
            for (long w = fromRegion >> 6; w < _words.Length; w++)
            {
                ulong word = _words[w];
                if (w == fromRegion >> 6) word &= ~0UL << (int)(fromRegion & 63);
                if (word != 0)
                {
                    long r = (w << 6) + BitOperations.TrailingZeroCount(word);
                    return r < RegionCount ? r : -1;
                }
            }
            return -1;
        }
    }

    /// <summary>
    /// The dirty bits as byte ranges (ascending, apart, clipped to the volume), at most <paramref name="maxRanges"/>
    /// of them: a more scattered bitmap is described coarser, ranges merged across their smallest gaps, which
    /// only ever adds bytes. One pass over the words, so a large mostly clean bitmap costs microseconds.
    /// </summary>
    public List<(long Offset, long Length)> DirtyRanges(int maxRanges)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(maxRanges, 1);
        var runs = new List<(long First, long Count)>();
        long volumeSize;
        lock (_gate)
        {
            volumeSize = VolumeSize;
            long region = 0;
            while (region < RegionCount)
            {
                long first = NextWithBit(region, set: true);
                if (first < 0) break;
                long end = NextWithBit(first, set: false);
                if (end < 0) end = RegionCount;
                runs.Add((first, end - first));
                region = end;
            }
        }
        // Too many: merge across every gap up to a width that doubles until they fit.
        for (long gap = 1; runs.Count > maxRanges; gap *= 2)
        {
            var merged = new List<(long First, long Count)>(runs.Count);
            foreach (var run in runs)
            {
                if (merged.Count > 0 && run.First - (merged[^1].First + merged[^1].Count) <= gap)
                    merged[^1] = (merged[^1].First, run.First + run.Count - merged[^1].First);
                else merged.Add(run);
            }
            runs = merged;
        }
        return runs.ConvertAll(r =>
        {
            long offset = r.First * RegionSize;
            return (offset, Math.Min(r.Count * RegionSize, volumeSize - offset));
        });
    }

    /// <summary>The first region at or after <paramref name="from"/> whose bit is <paramref name="set"/>, or -1; under _gate.</summary>
    private long NextWithBit(long from, bool set)
    {
        for (long w = from >> 6; w < _words.Length; w++)
        {
            ulong word = set ? _words[w] : ~_words[w];
            if (w == from >> 6) word &= ~0UL << (int)(from & 63);
            if (word != 0)
            {
                long r = (w << 6) + BitOperations.TrailingZeroCount(word);
                return r < RegionCount ? r : -1;
            }
        }
        return -1;
    }

    /// <summary>Byte range of a region, clipped to the volume.</summary>
    public (long Offset, int Length) RegionRange(long region)
    {
        long offset = region * RegionSize;
        return (offset, (int)Math.Min(RegionSize, VolumeSize - offset));
    }

    /// <summary>Follows a volume grow: new regions start clean (the peer grows with zeros too).</summary>
    public void Grow(long newSize)
    {
        lock (_gate)
        {
            if (newSize <= VolumeSize) return;
            VolumeSize = newSize;
            Array.Resize(ref _words, (int)((RegionCount + 63) / 64));
            Array.Resize(ref _saved, _words.Length);
            Version++;
        }
    }

    /// <summary>
    /// Whether a region of [offset, offset+length) is dirty in memory but not in the last saved file: only
    /// then must the bitmap be saved before the activity log forgets that range.
    /// </summary>
    public bool HasUnsavedDirty(long offset, long length)
    {
        if (length <= 0) return false;
        long first = offset / RegionSize, last = Math.Min((offset + length - 1) / RegionSize, RegionCount - 1);
        lock (_gate)
        {
            for (long r = first; r <= last; r++)
            {
                ulong bit = 1UL << (int)(r & 63);
                if ((_words[r >> 6] & bit) != 0 && (_saved[r >> 6] & bit) == 0) return true;
            }
            return false;
        }
    }

    /// <summary>
    /// Saves the bits, but for the regions of <paramref name="leaveOut"/>: ranges the activity log names
    /// durably (see ActivityLog.WhileLogged), which a crash resyncs anyway. Left out, the writes in flight
    /// there do not linger in the file as stale bits that a crash would resync on top of the log's extents.
    /// </summary>
    /// <param name="synced">False: not waiting for the disk (see DurableFile.WriteUnsynced), where a crash may lose the
    /// file and a load then finds everything dirty, which only costs a longer resync.</param>
    public void Save(string path, IReadOnlyList<(long Offset, long Length)>? leaveOut = null, bool synced = true)
    {
        lock (_saveGate) SaveUnlocked(path, leaveOut, synced);
    }

    private void SaveUnlocked(string path, IReadOnlyList<(long Offset, long Length)>? leaveOut, bool synced = true)
    {
        byte[] file;
        ulong[] snapshot;
        lock (_gate)
        {
            snapshot = (ulong[])_words.Clone();
            foreach (var (offset, length) in leaveOut ?? [])
                for (long r = offset / RegionSize; r <= (offset + length - 1) / RegionSize && r < RegionCount; r++)
                    snapshot[r >> 6] &= ~(1UL << (int)(r & 63));
            // From here until the write is known to be done, the file may hold the new bits or the old: only
            // bits in both are sure to be in it.
            for (int i = 0; i < _saved.Length && i < snapshot.Length; i++) _saved[i] &= snapshot[i];
            file = new byte[HeaderSize + _words.Length * 8];
            var bits = file.AsSpan(HeaderSize);
            for (int i = 0; i < snapshot.Length; i++) BinaryPrimitives.WriteUInt64LittleEndian(bits[(i * 8)..], snapshot[i]);
            BinaryPrimitives.WriteUInt32LittleEndian(file, Magic);
            BinaryPrimitives.WriteUInt32LittleEndian(file.AsSpan(4), 1);
            BinaryPrimitives.WriteUInt32LittleEndian(file.AsSpan(8), (uint)RegionSize);
            BinaryPrimitives.WriteInt64LittleEndian(file.AsSpan(12), VolumeSize);
            BinaryPrimitives.WriteUInt32LittleEndian(file.AsSpan(20), Checksum(bits));
        }
        if (synced) DurableFile.Write(path, file);
        else DurableFile.WriteUnsynced(path, file);
        lock (_gate)
        {
            // A grow meanwhile added words: the file has none of them.
            Array.Resize(ref snapshot, _words.Length);
            _saved = snapshot;
        }
    }

    /// <summary>
    /// Loads a saved bitmap. A missing, damaged or mismatched file cannot say what is clean, so the
    /// answer is "everything may differ" (a full resync, never a silent skip).
    /// </summary>
    public static RegionBitmap LoadOrAllDirty(string path, long volumeSize, int regionSize = DefaultRegionSize)
    {
        var bitmap = new RegionBitmap(volumeSize, regionSize);
        if (!TryLoadInto(path, bitmap)) bitmap.MarkAllDirty();
        return bitmap;
    }

    private static bool TryLoadInto(string path, RegionBitmap bitmap)
    {
        byte[] file;
        try { file = File.ReadAllBytes(path); }
        catch (IOException) { return false; }
        if (file.Length < HeaderSize
            || BinaryPrimitives.ReadUInt32LittleEndian(file) != Magic
            || BinaryPrimitives.ReadUInt32LittleEndian(file.AsSpan(4)) != 1
            || BinaryPrimitives.ReadUInt32LittleEndian(file.AsSpan(8)) != bitmap.RegionSize)
            return false;
        long savedSize = BinaryPrimitives.ReadInt64LittleEndian(file.AsSpan(12));
        var bits = file.AsSpan(HeaderSize);
        if (savedSize > bitmap.VolumeSize || bits.Length != ((savedSize + bitmap.RegionSize - 1) / bitmap.RegionSize + 63) / 64 * 8
            || BinaryPrimitives.ReadUInt32LittleEndian(file.AsSpan(20)) != Checksum(bits))
            return false;
        for (int i = 0; i < bits.Length / 8; i++) bitmap._words[i] = bitmap._saved[i] = BinaryPrimitives.ReadUInt64LittleEndian(bits[(i * 8)..]);
        return true;
    }

    private bool IsSetUnlocked(long region) => (_words[region >> 6] & (1UL << (int)(region & 63))) != 0;

    private static uint Checksum(ReadOnlySpan<byte> data)
    {
        // System.IO.Hashing has CRC-32 (IEEE) and CRC-64; the IEEE polynomial is enough to catch a torn or damaged file.
        return Crc32.HashToUInt32(data);
    }
}
