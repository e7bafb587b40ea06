using Roam.Storage.Devices;
using Roam.Storage.Layers;
using Roam.Storage.Tracking;

namespace Roam.Storage.Tests.Layers;

public sealed class LayerTests : IDisposable
{
    private const int Extent = 1 << 20;
    private readonly string _dir = Directory.CreateTempSubdirectory("roam-layers-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    /// <summary>A layer that overrides nothing: what it does must be exactly what the device under it does.</summary>
    private sealed class Transparent(IBlockDevice inner) : BlockDeviceLayer(inner);

    [Fact]
    public async Task A_layer_that_overrides_nothing_forwards_every_call()
    {
        var memory = new MemoryDevice(4 * Extent);
        IBlockDevice layer = new Transparent(new Transparent(memory));
        Assert.Equal(memory.Size, layer.Size);
        Assert.Same(memory.Capabilities, layer.Capabilities);
        await layer.WriteAsync(100, new byte[] { 1, 2, 3 }, fua: true, default);
        await layer.ZeroAsync(101, 1, mayDeallocate: false, fastOnly: false, fua: false, default);
        await layer.TrimAsync(Extent, 10, fua: false, default);
        await layer.CacheAsync(0, 10, default);
        await layer.FlushAsync(default);
        var read = new byte[3];
        await layer.ReadAsync(100, read, default);
        Assert.Equal(new byte[] { 1, 0, 3 }, read);
        Assert.Equal(["write 100+3 fua", "zero 101+1", "trim 1048576+10", "cache 0+10", "flush", "read 100+3"], memory.Calls);
        Assert.Equal(memory.Extents, await layer.GetExtentsAsync(0, 10, default));
    }

    [Fact]
    public async Task A_frozen_fence_holds_changes_until_thawed_and_a_closed_one_refuses_them_while_reads_go_on()
    {
        var memory = new MemoryDevice(Extent);
        var fence = new WriteFence();
        var layer = new WriteFenceLayer(memory, fence);
        fence.Freeze();
        var held = layer.WriteAsync(0, new byte[] { 7 }, fua: false, default).AsTask();
        await Task.Delay(100);
        Assert.False(held.IsCompleted);
        Assert.Empty(memory.Calls);
        Assert.True(fence.DrainAsync().IsCompleted); // the held write was not admitted: nothing to drain
        fence.Thaw();
        await held;
        Assert.Equal(["write 0+1"], memory.Calls);

        fence.Close("handed over to beta");
        foreach (var change in new Func<Task>[]
                 {
                     () => layer.WriteAsync(0, new byte[] { 1 }, false, default).AsTask(),
                     () => layer.ZeroAsync(0, 1, true, false, false, default).AsTask(),
                     () => layer.TrimAsync(0, 1, false, default).AsTask(),
                 })
        {
            var refused = await Assert.ThrowsAsync<BlockDeviceException>(change);
            Assert.Equal(BlockDeviceError.ReadOnly, refused.Error);
            Assert.Contains("handed over to beta", refused.Message);
        }
        var read = new byte[1];
        await layer.ReadAsync(0, read, default);
        Assert.Equal(7, read[0]);
        Assert.Equal(["write 0+1", "read 0+1"], memory.Calls);
    }

    [Fact]
    public async Task Draining_the_fence_waits_for_a_change_in_flight()
    {
        var slow = new MemoryDevice(Extent) { WriteDelay = new TaskCompletionSource() };
        var fence = new WriteFence();
        var layer = new WriteFenceLayer(slow, fence);
        var inFlight = layer.WriteAsync(0, new byte[] { 1 }, false, default).AsTask();
        fence.Freeze();
        var drained = fence.DrainAsync();
        await Task.Delay(50);
        Assert.False(drained.IsCompleted);
        slow.WriteDelay.SetResult();
        await inFlight;
        await drained.WaitAsync(TimeSpan.FromSeconds(5));
    }

    [Fact]
    public async Task The_activity_log_names_a_change_durably_before_it_goes_down()
    {
        string path = Path.Combine(_dir, "al");
        var memory = new MemoryDevice(8 * Extent);
        using (var log = ActivityLog.Open(path, out _, Extent, capacity: 4))
        {
            var layer = new ActivityLogLayer(memory, log);
            // The device below copies the log's file at the moment the write reaches it: what a crash then would leave.
            // (cp, not File.Copy: the open log holds .NET's exclusive lock on its file.)
            memory.BeforeWrite = () =>
            {
                using var cp = System.Diagnostics.Process.Start("cp", [path, path + ".copy"]);
                cp.WaitForExit();
                Assert.Equal(0, cp.ExitCode);
            };
            await layer.WriteAsync(3L * Extent + 5, new byte[10], fua: false, default);
        }
        using var crashed = ActivityLog.Open(path + ".copy", out var hot, Extent, capacity: 4);
        Assert.Equal([(3L * Extent, (long)Extent)], hot);
    }

    [Fact]
    public async Task Zeroing_and_trimming_go_down_in_aligned_pieces_the_log_can_hold()
    {
        var memory = new MemoryDevice(16 * Extent);
        using var log = ActivityLog.Open(Path.Combine(_dir, "al"), out _, Extent, capacity: 4);
        var layer = new ActivityLogLayer(memory, log);
        await layer.ZeroAsync(Extent / 2, 10L * Extent, mayDeallocate: true, fastOnly: false, fua: false, default);
        await layer.TrimAsync(0, 16L * Extent, fua: false, default);
        long zeroAt = Extent / 2, trimAt = 0;
        foreach (var (kind, offset, length) in memory.Ranges)
        {
            // Capacity 4: pieces of at most one extent (4 / 2 - 1), never straddling one, in order and without gaps.
            Assert.True(length <= Extent && offset / Extent == (offset + length - 1) / Extent, $"{kind} {offset}+{length}");
            if (kind == "zero") { Assert.Equal(zeroAt, offset); zeroAt += length; }
            else { Assert.Equal(trimAt, offset); trimAt += length; }
        }
        Assert.Equal(Extent / 2 + 10L * Extent, zeroAt);
        Assert.Equal(16L * Extent, trimAt);
    }

    /// <summary>An in-memory device that records what reached it.</summary>
    private sealed class MemoryDevice(long size) : IBlockDevice
    {
        private readonly byte[] _data = new byte[size];

        public List<string> Calls { get; } = [];
        public List<(string Kind, long Offset, long Length)> Ranges { get; } = [];
        public TaskCompletionSource? WriteDelay { get; init; }
        public Action? BeforeWrite { get; set; }
        public IReadOnlyList<Extent> Extents { get; } = [new Extent(0, size, false, false)];

        public long Size => _data.Length;
        public BlockDeviceCapabilities Capabilities { get; } = new(true, true, true, true, true);

        public ValueTask ReadAsync(long offset, Memory<byte> destination, CancellationToken cancellationToken)
        {
            Record($"read {offset}+{destination.Length}");
            _data.AsMemory((int)offset, destination.Length).CopyTo(destination);
            return ValueTask.CompletedTask;
        }

        public async ValueTask WriteAsync(long offset, ReadOnlyMemory<byte> data, bool fua, CancellationToken cancellationToken)
        {
            BeforeWrite?.Invoke();
            if (WriteDelay is not null) await WriteDelay.Task;
            Record($"write {offset}+{data.Length}{(fua ? " fua" : "")}");
            data.CopyTo(_data.AsMemory((int)offset));
        }

        public ValueTask FlushAsync(CancellationToken cancellationToken) { Record("flush"); return ValueTask.CompletedTask; }

        public ValueTask TrimAsync(long offset, long length, bool fua, CancellationToken cancellationToken)
        {
            Record($"trim {offset}+{length}");
            lock (Ranges) Ranges.Add(("trim", offset, length));
            return ValueTask.CompletedTask;
        }

        public ValueTask ZeroAsync(long offset, long length, bool mayDeallocate, bool fastOnly, bool fua, CancellationToken cancellationToken)
        {
            Record($"zero {offset}+{length}");
            lock (Ranges) Ranges.Add(("zero", offset, length));
            _data.AsSpan((int)offset, (int)length).Clear();
            return ValueTask.CompletedTask;
        }

        public ValueTask CacheAsync(long offset, long length, CancellationToken cancellationToken) { Record($"cache {offset}+{length}"); return ValueTask.CompletedTask; }

        public ValueTask<IReadOnlyList<Extent>> GetExtentsAsync(long offset, long length, CancellationToken cancellationToken) => ValueTask.FromResult(Extents);

        private void Record(string call)
        {
            lock (Calls) Calls.Add(call);
        }
    }
}
