using Roam.Replication.Engine;
using Roam.Storage.Devices;

namespace Roam.Replication.Tunnel;

/// <summary>
/// The export of a volume whose role may change under an open NBD connection (a primary's, and a VM's
/// disk on a migration's destination): reads come from the local copy; each change takes the path of
/// the role at that moment: the replicating device of a replicated primary, the fenced local device
/// of a plain one, and EPERM while the volume is a replica here.
/// </summary>
internal sealed class PromotableDevice(ReplicationService service, string volume, IBlockDevice local) : IBlockDevice
{
    public long Size => local.Size;

    public BlockDeviceCapabilities Capabilities => local.Capabilities;

    /// <summary>
    /// Runs one change on the path the volume's role gives it now. A plain primary's change passes the
    /// volume's fence and looks again once inside: a replica added meanwhile freezes that fence while
    /// it becomes a replicated primary, so a change that waited there must take the mirrored path.
    /// </summary>
    private async ValueTask ChangeAsync(Func<IBlockDevice, ValueTask> change, CancellationToken cancellationToken)
    {
        while (true)
        {
            var (role, primary) = service.Lookup(volume);
            if (primary is not null)
            {
                await change(primary.Device).ConfigureAwait(false);
                return;
            }
            if (role != VolumeRole.Primary)
                throw new BlockDeviceException(BlockDeviceError.ReadOnly,
                    service.FenceClosedReason(volume) ?? $"volume '{volume}' is a replica here (not promoted, or not yet handed over)");
            using (await service.FenceOf(volume).EnterAsync(cancellationToken).ConfigureAwait(false))
            {
                if (service.Lookup(volume) is { Role: VolumeRole.Primary, Primary: null })
                {
                    await change(local).ConfigureAwait(false);
                    return;
                }
            }
        }
    }

    public ValueTask ReadAsync(long offset, Memory<byte> destination, CancellationToken cancellationToken) =>
        local.ReadAsync(offset, destination, cancellationToken);

    public ValueTask WriteAsync(long offset, ReadOnlyMemory<byte> data, bool fua, CancellationToken cancellationToken) =>
        ChangeAsync(d => d.WriteAsync(offset, data, fua, cancellationToken), cancellationToken);

    public ValueTask FlushAsync(CancellationToken cancellationToken)
    {
        var (_, primary) = service.Lookup(volume);
        return primary is not null ? primary.Device.FlushAsync(cancellationToken) : local.FlushAsync(cancellationToken);
    }

    public ValueTask TrimAsync(long offset, long length, bool fua, CancellationToken cancellationToken) =>
        ChangeAsync(d => d.TrimAsync(offset, length, fua, cancellationToken), cancellationToken);

    public ValueTask ZeroAsync(long offset, long length, bool mayDeallocate, bool fastOnly, bool fua, CancellationToken cancellationToken) =>
        ChangeAsync(d => d.ZeroAsync(offset, length, mayDeallocate, fastOnly, fua, cancellationToken), cancellationToken);

    public ValueTask CacheAsync(long offset, long length, CancellationToken cancellationToken) => local.CacheAsync(offset, length, cancellationToken);

    public ValueTask<IReadOnlyList<Extent>> GetExtentsAsync(long offset, long length, CancellationToken cancellationToken) =>
        local.GetExtentsAsync(offset, length, cancellationToken);
}
