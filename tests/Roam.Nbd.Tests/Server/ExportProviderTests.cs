using Roam.Nbd.Protocol;
using Roam.Nbd.Server;
using Roam.Storage.Devices;
using Roam.Testing;
using Roam.Testing.Nbd;

namespace Roam.Nbd.Tests.Server;

/// <summary>Exports that are not ordinary volumes: read-only ones, and devices that fail.</summary>
public sealed class ExportProviderTests : IAsyncLifetime
{
    private readonly string _dir = Directory.CreateTempSubdirectory("roam-test-").FullName;
    private readonly List<NbdServer> _servers = [];

    public Task InitializeAsync() => Task.CompletedTask;

    public async Task DisposeAsync()
    {
        foreach (var server in _servers) await server.DisposeAsync();
        Directory.Delete(_dir, recursive: true);
    }

    private sealed class SingleExport(Func<NbdExport> open) : INbdExportProvider
    {
        public IReadOnlyList<string> ListExports() => ["x"];

        public NbdExport? Open(string name) => name == "x" ? open() : null;
    }

    private async Task<RawNbdClient> GoAsync(INbdExportProvider exports)
    {
        var server = new NbdServer(exports, new NbdServerOptions(), new TestLog());
        _servers.Add(server);
        var client = PipeConnection.Start(server).CreateClient();
        await client.StartAsync();
        await client.GoAsync("x");
        return client;
    }

    [Fact]
    public async Task Read_only_export_advertises_it_and_refuses_writes_trims_and_zeroes_with_EPERM()
    {
        var path = Path.Combine(_dir, "ro.raw");
        await File.WriteAllBytesAsync(path, Enumerable.Repeat((byte)0x5a, 65536).ToArray());
        using var device = new FileBlockDevice(path, 65536, readOnly: true);
        await using var client = await GoAsync(new SingleExport(() => new NbdExport("x", device, readOnly: true)));

        Assert.True(client.TransmissionFlags.HasFlag(NbdTransmissionFlags.ReadOnly));
        Assert.Equal(0, (ushort)(client.TransmissionFlags & (NbdTransmissionFlags.SendTrim | NbdTransmissionFlags.SendWriteZeroes | NbdTransmissionFlags.SendFastZero)));
        Assert.Equal(NbdError.EPERM, (await client.WriteAsync(0, new byte[512])).Error);
        Assert.Equal(NbdError.EPERM, (await client.TrimAsync(0, 4096)).Error);
        Assert.Equal(NbdError.EPERM, (await client.WriteZeroesAsync(0, 4096)).Error);
        Assert.Equal(NbdError.None, (await client.FlushAsync()).Error);
        Assert.Equal(Enumerable.Repeat((byte)0x5a, 65536), (await client.ReadAsync(0, 65536)).Data);
    }

    [Fact]
    public async Task Storage_failures_become_error_replies_and_the_session_continues()
    {
        // A bare IOException (a failed pread or lseek that the device did not classify) is a request
        // failure like any other: the client must get a reply, not a connection that hangs or drops.
        var device = new FailingDevice();
        await using var client = await GoAsync(new SingleExport(() => new NbdExport("x", device, readOnly: false)));

        Assert.Equal(NbdError.EIO, (await client.ReadAsync(0, 4096)).Error);
        Assert.Equal(NbdError.EIO, (await client.BlockStatusAsync(0, 4096)).Error);
        Assert.Equal(NbdError.ENOSPC, (await client.WriteAsync(0, new byte[4096])).Error);
        Assert.Equal(NbdError.ENOTSUP, (await client.WriteZeroesAsync(0, 4096, NbdCommandFlags.FastZero)).Error);
        Assert.Equal(NbdError.EPERM, (await client.TrimAsync(0, 4096)).Error);
        Assert.Equal(NbdError.None, (await client.WriteZeroesAsync(0, 4096)).Error);
        Assert.Equal(NbdError.None, (await client.FlushAsync()).Error);
    }

    [Fact]
    public async Task Fast_zero_is_not_advertised_without_write_zeroes()
    {
        var device = new FailingDevice { Capabilities = new BlockDeviceCapabilities(CanWrite: true, CanTrim: true, CanZero: false, CanFastZero: true, CanExtents: true) };
        await using var client = await GoAsync(new SingleExport(() => new NbdExport("x", device, readOnly: false)));

        Assert.False(client.TransmissionFlags.HasFlag(NbdTransmissionFlags.SendWriteZeroes));
        Assert.False(client.TransmissionFlags.HasFlag(NbdTransmissionFlags.SendFastZero));
    }

    private sealed class FailingDevice : IBlockDevice
    {
        public long Size => 1024 * 1024;

        public BlockDeviceCapabilities Capabilities { get; init; } = new(CanWrite: true, CanTrim: true, CanZero: true, CanFastZero: true, CanExtents: true);

        public ValueTask ReadAsync(long offset, Memory<byte> destination, CancellationToken cancellationToken) =>
            throw new IOException("pread failed: errno 5", 5);

        public ValueTask WriteAsync(long offset, ReadOnlyMemory<byte> data, bool fua, CancellationToken cancellationToken) =>
            throw new BlockDeviceException(BlockDeviceError.NoSpace, "disk full");

        public ValueTask FlushAsync(CancellationToken cancellationToken) => ValueTask.CompletedTask;

        public ValueTask TrimAsync(long offset, long length, bool fua, CancellationToken cancellationToken) =>
            throw new UnauthorizedAccessException("Access to the path is denied."); // EPERM from fallocate, as .NET reports it

        public ValueTask ZeroAsync(long offset, long length, bool mayDeallocate, bool fastOnly, bool fua, CancellationToken cancellationToken) =>
            fastOnly ? throw new BlockDeviceException(BlockDeviceError.NotSupported, "not fast here") : ValueTask.CompletedTask;

        public ValueTask CacheAsync(long offset, long length, CancellationToken cancellationToken) => ValueTask.CompletedTask;

        public ValueTask<IReadOnlyList<Extent>> GetExtentsAsync(long offset, long length, CancellationToken cancellationToken) =>
            throw new IOException("lseek failed: errno 5", 5);
    }
}
