using Roam.Replication.Engine;
using Roam.Storage.Devices;

namespace Roam.Replication.Tunnel;

/// <summary>
/// A VM disk export (see
/// <see cref="ReplicationService.SetVmDisk"/>): reads come from the local copy; changes are refused
/// (EPERM) while the volume is a replica here, and once promoted they take the path a primary's export would
/// (the replicating device, or the fenced plain device), looked up at each request.
/// </summary>
internal sealed class PromotableDevice(ReplicationService service, string volume, IBlockDevice local) : IBlockDevice
{
    public long Size => local.Size;

    public BlockDeviceCapabilities Capabilities => local.Capabilities;

    private IBlockDevice Writable()
    {
        var (role, primary) = service.Lookup(volume);
        if (primary is not null) return primary.Device;
        if (role == VolumeRole.Primary) return new Source.GatedDevice(local, service.FenceOf(volume));
        throw new BlockDeviceException(BlockDeviceError.ReadOnly, $"volume '{volume}' is still a replica here (the hand-over has not happened)");
    }

    public ValueTask ReadAsync(long offset, Memory<byte> destination, CancellationToken cancellationToken) =>
        local.ReadAsync(offset, destination, cancellationToken);

    public ValueTask WriteAsync(long offset, ReadOnlyMemory<byte> data, bool fua, CancellationToken cancellationToken) =>
        Writable().WriteAsync(offset, data, fua, cancellationToken);

    public ValueTask FlushAsync(CancellationToken cancellationToken)
    {
        var (_, primary) = service.Lookup(volume);
        return primary is not null ? primary.Device.FlushAsync(cancellationToken) : local.FlushAsync(cancellationToken);
    }

    public ValueTask TrimAsync(long offset, long length, bool fua, CancellationToken cancellationToken) =>
        Writable().TrimAsync(offset, length, fua, cancellationToken);

    public ValueTask ZeroAsync(long offset, long length, bool mayDeallocate, bool fastOnly, bool fua, CancellationToken cancellationToken) =>
        Writable().ZeroAsync(offset, length, mayDeallocate, fastOnly, fua, cancellationToken);

    public ValueTask CacheAsync(long offset, long length, CancellationToken cancellationToken) => local.CacheAsync(offset, length, cancellationToken);

    public ValueTask<IReadOnlyList<Extent>> GetExtentsAsync(long offset, long length, CancellationToken cancellationToken) =>
        local.GetExtentsAsync(offset, length, cancellationToken);
}
