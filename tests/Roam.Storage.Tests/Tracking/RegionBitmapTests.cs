using CsCheck;
using Roam.Storage.Tracking;

namespace Roam.Storage.Tests.Tracking;

public sealed class RegionBitmapTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("roam-bitmap-").FullName;

    [Fact]
    public void Marks_cover_every_region_a_write_touches_and_nothing_else()
    {
        var bitmap = new RegionBitmap(1 << 20, regionSize: 4096);
        bitmap.MarkDirty(4095, 2);          // straddles regions 0 and 1
        bitmap.MarkDirty(10 * 4096, 4096);  // exactly region 10
        Assert.Equal([0L, 1L, 10L], DirtyRegions(bitmap));
        Assert.Equal(3 * 4096, bitmap.DirtyBytes);
        bitmap.MarkClean(1);
        Assert.Equal([0L, 10L], DirtyRegions(bitmap));
    }

    [Fact]
    public void Short_last_region_counts_only_its_real_bytes()
    {
        var bitmap = new RegionBitmap(4096 * 3 + 512, regionSize: 4096);
        bitmap.MarkAllDirty();
        Assert.Equal(4096 * 3 + 512, bitmap.DirtyBytes);
        Assert.Equal((4096L * 3, 512), bitmap.RegionRange(3));
    }

    [Fact]
    public void Save_and_load_round_trip_the_bits()
    {
        Gen.Int[0, 4095].Array[0, 50].Sample(regions =>
        {
            var bitmap = new RegionBitmap(4096L * 4096, regionSize: 4096);
            foreach (var r in regions) bitmap.MarkDirty(r * 4096L, 1);
            // CsCheck runs samples on several threads at once: one file each.
            var path = Path.Combine(_dir, "bm-" + Guid.NewGuid().ToString("N"));
            bitmap.Save(path);
            var loaded = RegionBitmap.LoadOrAllDirty(path, 4096L * 4096, 4096);
            Assert.Equal(regions.Distinct().Order().Select(r => (long)r), DirtyRegions(loaded));
        }, iter: 50);
    }

    [Fact]
    public void Unsaved_dirty_bits_are_told_apart_from_ones_already_in_the_file()
    {
        var path = Path.Combine(_dir, "unsaved");
        var bitmap = new RegionBitmap(64 * 4096, regionSize: 4096);
        Assert.False(bitmap.HasUnsavedDirty(0, 64 * 4096));
        bitmap.MarkDirty(5 * 4096, 1);
        Assert.True(bitmap.HasUnsavedDirty(4 * 4096, 2 * 4096));
        Assert.False(bitmap.HasUnsavedDirty(6 * 4096, 10 * 4096));   // a range without region 5
        bitmap.Save(path);
        Assert.False(bitmap.HasUnsavedDirty(0, 64 * 4096));          // now in the file
        bitmap.MarkClean(5);
        Assert.False(bitmap.HasUnsavedDirty(0, 64 * 4096));          // clean in memory: nothing the file must learn
        bitmap.MarkDirty(5 * 4096, 1);
        Assert.False(bitmap.HasUnsavedDirty(0, 64 * 4096));          // the file still has it set
        bitmap.MarkDirty(40 * 4096, 1);
        Assert.True(bitmap.HasUnsavedDirty(40 * 4096, 4096));

        var loaded = RegionBitmap.LoadOrAllDirty(path, 64 * 4096, 4096);
        Assert.False(loaded.HasUnsavedDirty(0, 64 * 4096));          // loaded bits are the file's
        var missing = RegionBitmap.LoadOrAllDirty(Path.Combine(_dir, "none"), 64 * 4096, 4096);
        Assert.True(missing.HasUnsavedDirty(0, 4096));               // all dirty, none of it saved
    }

    [Fact]
    public void A_save_can_leave_out_ranges_the_activity_log_names_and_then_knows_the_file_lacks_them()
    {
        var path = Path.Combine(_dir, "leave-out");
        var bitmap = new RegionBitmap(64 * 4096, regionSize: 4096);
        bitmap.MarkDirty(2 * 4096, 1);
        bitmap.MarkDirty(20 * 4096, 1);
        bitmap.Save(path, leaveOut: [(16 * 4096, 8 * 4096)]);
        Assert.Equal([2L], DirtyRegions(RegionBitmap.LoadOrAllDirty(path, 64 * 4096, 4096)));
        Assert.Equal([2L, 20L], DirtyRegions(bitmap));                       // memory keeps both
        Assert.True(bitmap.HasUnsavedDirty(16 * 4096, 8 * 4096));            // an eviction of that range must save
        Assert.False(bitmap.HasUnsavedDirty(0, 8 * 4096));
    }

    [Fact]
    public void Damaged_or_missing_file_means_everything_may_differ()
    {
        var path = Path.Combine(_dir, "bm");
        Assert.Equal(16, RegionBitmap.LoadOrAllDirty(path, 16 * 4096, 4096).DirtyRegions);

        var bitmap = new RegionBitmap(16 * 4096, 4096);
        bitmap.MarkDirty(0, 1);
        bitmap.Save(path);
        var bytes = File.ReadAllBytes(path);
        bytes[^1] ^= 0x40; // flip a bit in the stored bits: the checksum must catch it
        File.WriteAllBytes(path, bytes);
        Assert.Equal(16, RegionBitmap.LoadOrAllDirty(path, 16 * 4096, 4096).DirtyRegions);
    }

    [Fact]
    public void An_unsynced_save_reads_back_and_one_the_disk_lost_reads_as_everything_dirty()
    {
        var path = Path.Combine(_dir, "bm");
        var bitmap = new RegionBitmap(16 * 4096, 4096);
        bitmap.MarkDirty(5 * 4096, 1);
        bitmap.Save(path, synced: false);
        var loaded = RegionBitmap.LoadOrAllDirty(path, 16 * 4096, 4096);
        Assert.Equal(1, loaded.DirtyRegions);
        Assert.Equal(5, loaded.NextDirty(0));
        Assert.False(File.Exists(path + ".tmp"));

        // What a crash may leave of a rename whose data never reached the disk: an empty or cut file.
        foreach (int length in new[] { 0, 20, (int)new FileInfo(path).Length - 1 })
        {
            var bytes = File.ReadAllBytes(path);
            File.WriteAllBytes(path, bytes[..length]);
            Assert.Equal(16, RegionBitmap.LoadOrAllDirty(path, 16 * 4096, 4096).DirtyRegions);
            File.WriteAllBytes(path, bytes);
        }
    }

    [Fact]
    public void Grow_keeps_old_marks_and_adds_clean_regions()
    {
        var bitmap = new RegionBitmap(8 * 4096, 4096);
        bitmap.MarkDirty(7 * 4096, 1);
        bitmap.Grow(200 * 4096);
        Assert.Equal([7L], DirtyRegions(bitmap));
        bitmap.MarkDirty(199 * 4096, 1);
        Assert.Equal([7L, 199L], DirtyRegions(bitmap));
    }

    [Fact]
    public async Task Concurrent_saves_to_one_path_take_turns()
    {
        // A timer save and an activity-log eviction save used to collide on the shared temp file:
        // one failed ("being used by another process") or published a file the other was rewriting.
        var bitmap = new RegionBitmap(1L << 32, 4096); // 128 KiB of bits: saves take long enough to overlap
        var path = Path.Combine(_dir, "bm");
        bitmap.Save(path);
        using var stop = new CancellationTokenSource();
        var reader = Task.Run(() =>
        {
            int damaged = 0;
            while (!stop.IsCancellationRequested)
                if (RegionBitmap.LoadOrAllDirty(path, 1L << 32, 4096).DirtyRegions > 1600) damaged++;
            return damaged;
        });
        var savers = Enumerable.Range(0, 8).Select(i => Task.Run(() =>
        {
            for (int n = 0; n < 200; n++)
            {
                bitmap.MarkDirty((i * 200 + n) * 4096L, 1);
                bitmap.Save(path);
            }
        })).ToArray();
        await Task.WhenAll(savers);
        stop.Cancel();
        Assert.Equal(0, await reader);
        Assert.Equal(1600, RegionBitmap.LoadOrAllDirty(path, 1L << 32, 4096).DirtyRegions);
    }

    private static List<long> DirtyRegions(RegionBitmap bitmap)
    {
        var list = new List<long>();
        for (long r = bitmap.NextDirty(0); r >= 0; r = bitmap.NextDirty(r + 1)) list.Add(r);
        return list;
    }

    public void Dispose() => Directory.Delete(_dir, recursive: true);
    [Fact]
    public void Dirty_ranges_are_the_runs_of_set_bits_clipped_to_the_volume()
    {
        const int region = 4096;
        var bitmap = new RegionBitmap(100 * region + 100, region);   // a short last region
        Assert.Empty(bitmap.DirtyRanges(10));
        bitmap.MarkDirty(3 * region, 2 * region);
        bitmap.MarkDirty(63 * region, 3 * region);                   // across a word boundary
        bitmap.MarkDirty(100 * region, 1);
        Assert.Equal([(3L * region, 2L * region), (63L * region, 3L * region), (100L * region, 100L)], bitmap.DirtyRanges(10));
        bitmap.MarkAllDirty();
        Assert.Equal([(0L, 100L * region + 100)], bitmap.DirtyRanges(1));
    }

    [Fact]
    public void Too_many_dirty_ranges_are_merged_into_a_covering_few() =>
        Gen.Select(Gen.Int[0, 2999].Array[0, 400], Gen.Int[1, 20]).Sample((dirty, max) =>
        {
            var bitmap = new RegionBitmap(3000L * 512, 512);
            foreach (int r in dirty) bitmap.MarkDirty(r * 512L, 512);
            var ranges = bitmap.DirtyRanges(max);
            Assert.True(ranges.Count <= max, $"{ranges.Count} ranges, at most {max} asked");
            for (int i = 1; i < ranges.Count; i++) Assert.True(ranges[i].Offset > ranges[i - 1].Offset + ranges[i - 1].Length, "not ascending and apart");
            // Never finer than the bitmap: every dirty region is covered.
            foreach (int r in dirty) Assert.Contains(ranges, x => x.Offset <= r * 512L && r * 512L + 512 <= x.Offset + x.Length);
        }, iter: 200);
}
