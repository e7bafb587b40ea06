using Roam.Storage.Devices;

namespace Roam.Storage.Tests.Devices;

/// <summary>The sparse-file device: holes from trim and zeroing, and the allocation map from SEEK_DATA/SEEK_HOLE.</summary>
public sealed class FileBlockDeviceTests : IDisposable
{
    private const int KiB = 1024;
    private const long Size = 1024 * KiB;
    private static readonly CancellationToken None = CancellationToken.None;
    private readonly string _dir = Directory.CreateTempSubdirectory("roam-device-test-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private FileBlockDevice Create(long fileLength = Size, long size = Size, bool readOnly = false)
    {
        var path = Path.Combine(_dir, $"{Guid.NewGuid():n}.raw");
        using (var file = new FileStream(path, FileMode.CreateNew)) file.SetLength(fileLength);
        return new FileBlockDevice(path, size, readOnly);
    }

    private static byte[] Filled(int length, byte value) => Enumerable.Repeat(value, length).ToArray();

    private static async Task<byte[]> ReadAsync(FileBlockDevice device, long offset, int length)
    {
        var buffer = new byte[length];
        await device.ReadAsync(offset, buffer, None);
        return buffer;
    }

    private static Extent Hole(long offset, long length) => new(offset, length, IsHole: true, IsZero: true);

    private static Extent Data(long offset, long length) => new(offset, length, IsHole: false, IsZero: false);

    [Fact]
    public async Task A_new_volume_is_one_hole_that_reads_as_zeros()
    {
        using var device = Create();

        Assert.Equal([Hole(0, Size)], await device.GetExtentsAsync(0, Size, None));
        Assert.Equal(new byte[Size], await ReadAsync(device, 0, (int)Size));
    }

    [Fact]
    public async Task Written_blocks_are_data_and_the_map_is_clipped_to_the_query()
    {
        using var device = Create();

        await device.WriteAsync(64 * KiB, Filled(64 * KiB, 0xaa), fua: true, None);

        Assert.Equal([Hole(0, 64 * KiB), Data(64 * KiB, 64 * KiB), Hole(128 * KiB, Size - 128 * KiB)], await device.GetExtentsAsync(0, Size, None));
        Assert.Equal([Data(96 * KiB, 32 * KiB), Hole(128 * KiB, 4 * KiB)], await device.GetExtentsAsync(96 * KiB, 36 * KiB, None));
        Assert.Equal(Filled(64 * KiB, 0xaa), await ReadAsync(device, 64 * KiB, 64 * KiB));
    }

    [Fact]
    public async Task Trim_punches_a_hole_that_reads_as_zeros()
    {
        using var device = Create();
        await device.WriteAsync(0, Filled(256 * KiB, 0x11), fua: false, None);

        await device.TrimAsync(64 * KiB, 128 * KiB, fua: true, None);

        Assert.Equal([Data(0, 64 * KiB), Hole(64 * KiB, 128 * KiB), Data(192 * KiB, 64 * KiB)], await device.GetExtentsAsync(0, 256 * KiB, None));
        Assert.Equal(new byte[128 * KiB], await ReadAsync(device, 64 * KiB, 128 * KiB));
        Assert.Equal(Filled(64 * KiB, 0x11), await ReadAsync(device, 192 * KiB, 64 * KiB));
    }

    [Fact]
    public async Task Unaligned_trim_zeros_exactly_its_bytes()
    {
        using var device = Create();
        await device.WriteAsync(0, Filled(16 * KiB, 0x22), fua: false, None);

        await device.TrimAsync(1000, 9000, fua: false, None);

        var data = await ReadAsync(device, 0, 16 * KiB);
        Assert.All(data[..1000], b => Assert.Equal(0x22, b));
        Assert.All(data[1000..10000], b => Assert.Equal(0, b));
        Assert.All(data[10000..], b => Assert.Equal(0x22, b));
    }

    [Fact]
    public async Task Zero_that_may_deallocate_makes_a_hole()
    {
        using var device = Create();
        await device.WriteAsync(0, Filled(128 * KiB, 0x33), fua: false, None);

        await device.ZeroAsync(0, 64 * KiB, mayDeallocate: true, fastOnly: false, fua: false, None);

        Assert.Equal([Hole(0, 64 * KiB), Data(64 * KiB, 64 * KiB)], await device.GetExtentsAsync(0, 128 * KiB, None));
        Assert.Equal(new byte[64 * KiB], await ReadAsync(device, 0, 64 * KiB));
    }

    [Fact]
    public async Task Zero_without_deallocation_reads_as_zeros_and_stays_allocated()
    {
        // NBD_CMD_FLAG_NO_HOLE: later writes to the range must not fail for space.
        using var device = Create();
        await device.WriteAsync(0, Filled(128 * KiB, 0x44), fua: false, None);

        await device.ZeroAsync(0, 64 * KiB, mayDeallocate: false, fastOnly: false, fua: true, None);

        Assert.Equal(new byte[64 * KiB], await ReadAsync(device, 0, 64 * KiB));
        Assert.Equal([Data(0, 128 * KiB)], await device.GetExtentsAsync(0, 128 * KiB, None));
    }

    [Fact]
    public async Task Fast_zero_succeeds_where_the_file_system_can_punch_holes()
    {
        using var device = Create();
        await device.WriteAsync(0, Filled(64 * KiB, 0x55), fua: false, None);

        await device.ZeroAsync(0, 64 * KiB, mayDeallocate: true, fastOnly: true, fua: false, None);

        Assert.Equal(new byte[64 * KiB], await ReadAsync(device, 0, 64 * KiB));
    }

    [Fact]
    public async Task A_file_shorter_than_the_volume_reads_as_zeros_past_its_end()
    {
        // An interrupted grow leaves the file short; the part beyond it was never written.
        using var device = Create(fileLength: 64 * KiB, size: 128 * KiB);
        await device.WriteAsync(0, Filled(64 * KiB, 0x66), fua: false, None);

        var data = await ReadAsync(device, 32 * KiB, 64 * KiB);

        Assert.All(data[..(32 * KiB)], b => Assert.Equal(0x66, b));
        Assert.All(data[(32 * KiB)..], b => Assert.Equal(0, b));
        Assert.Equal([Data(0, 64 * KiB), Hole(64 * KiB, 64 * KiB)], await device.GetExtentsAsync(0, 128 * KiB, None));
    }

    [Fact]
    public async Task A_read_only_device_says_so_and_refuses_writes()
    {
        using var device = Create(readOnly: true);

        Assert.Equal(new BlockDeviceCapabilities(CanWrite: false, CanTrim: false, CanZero: false, CanFastZero: false, CanExtents: true), device.Capabilities);
        var write = await Assert.ThrowsAsync<BlockDeviceException>(() => device.WriteAsync(0, new byte[1], fua: false, None).AsTask());
        var zero = await Assert.ThrowsAsync<BlockDeviceException>(() => device.ZeroAsync(0, 4096, true, false, false, None).AsTask());
        Assert.Equal((BlockDeviceError.ReadOnly, BlockDeviceError.ReadOnly), (write.Error, zero.Error));
        await device.FlushAsync(None);
        Assert.Equal(new byte[4096], await ReadAsync(device, 0, 4096));
    }
}
