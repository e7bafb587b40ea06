using Roam.Storage.Devices;

namespace Roam.Testing.Replication;

/// <summary>Writes through a device in a loop until it is refused (the hand-over) or stopped; remembers what was acknowledged.</summary>
public sealed class LoopWriter
{
    public const int Slot = 64 * 1024;
    private readonly Dictionary<long, byte[]> _acked = [];
    private readonly CancellationTokenSource _stop = new();

    private LoopWriter(IBlockDevice device, long start, int slots, int seed) => Task = Task.Run(() => RunAsync(device, start, slots, seed));

    public Task Task { get; }
    public int Count { get; private set; }
    public BlockDeviceException? Refused { get; private set; }

    public static LoopWriter Start(IBlockDevice device, long start, int slots, int seed) => new(device, start, slots, seed);

    public IReadOnlyDictionary<long, byte[]> Acked
    {
        get { lock (_acked) return new Dictionary<long, byte[]>(_acked); }
    }

    public Task StopAsync()
    {
        _stop.Cancel();
        return Task;
    }

    private async Task RunAsync(IBlockDevice device, long start, int slots, int seed)
    {
        var rng = new Random(seed);
        while (!_stop.IsCancellationRequested)
        {
            long offset = start + (long)rng.Next(slots) * Slot;
            var data = new byte[Slot / 2];
            rng.NextBytes(data);
            try { await device.WriteAsync(offset, data, fua: false, default); }
            catch (BlockDeviceException ex) when (ex.Error == BlockDeviceError.ReadOnly)
            {
                Refused = ex;
                return;
            }
            lock (_acked) _acked[offset] = data;
            Count++;
        }
    }

    public void AssertOn(byte[] raw)
    {
        foreach (var (offset, data) in Acked)
            Xunit.Assert.True(raw.AsSpan((int)offset, data.Length).SequenceEqual(data), $"acknowledged write at {offset} is not on the new primary");
    }
}
