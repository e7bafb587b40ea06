using System.Runtime.CompilerServices;
using Roam.Replication.Engine;
using Roam.Storage.Devices;

namespace Roam.Replication.Volumes;

/// <summary>
/// The top of a writable export whose volume may change role under an open NBD connection (a primary's, and a VM's
/// disk on a migration's destination): reads come from the local copy; each change takes the path of the role at
/// that moment: the layer stack of a replicated primary (<see cref="Source.ReplicatedVolume.Device"/>), the fenced
/// local file of a plain one, and EPERM while the volume is a replica here. Finding the path takes the volume's own
/// lock for a moment (never the service's), and a change allocates nothing on its way down.
/// </summary>
internal sealed class RoleRouter(VolumeReplication volume, IBlockDevice local) : BlockDeviceLayer(local)
{
    /// <summary>
    /// Runs one change on the path the volume's role gives it now. A plain primary's change passes the volume's fence
    /// and looks again once inside: a replica added meanwhile freezes that fence while it becomes a replicated
    /// primary, so a change that waited there must take the mirrored path.
    /// </summary>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))]
    private async ValueTask ChangeAsync<TChange>(TChange change, CancellationToken cancellationToken) where TChange : struct, IChange
    {
        while (true)
        {
            var (role, primary) = volume.Lookup();
            if (primary is not null)
            {
                await change.ApplyAsync(primary.Device, cancellationToken).ConfigureAwait(false);
                return;
            }
            if (role != VolumeRole.Primary)
                throw new BlockDeviceException(BlockDeviceError.ReadOnly,
                    volume.FenceClosedReason() ?? $"volume '{volume.Name}' is a replica here (not promoted, or not yet handed over)");
            using (await volume.FenceOf().EnterAsync(cancellationToken).ConfigureAwait(false))
            {
                if (volume.Lookup() is { Role: VolumeRole.Primary, Primary: null })
                {
                    await change.ApplyAsync(Inner, cancellationToken).ConfigureAwait(false);
                    return;
                }
            }
        }
    }

    public override ValueTask WriteAsync(long offset, ReadOnlyMemory<byte> data, bool fua, CancellationToken cancellationToken) =>
        ChangeAsync(new Write(offset, data, fua), cancellationToken);

    public override ValueTask TrimAsync(long offset, long length, bool fua, CancellationToken cancellationToken) =>
        ChangeAsync(new Trim(offset, length, fua), cancellationToken);

    public override ValueTask ZeroAsync(long offset, long length, bool mayDeallocate, bool fastOnly, bool fua, CancellationToken cancellationToken) =>
        ChangeAsync(new Zero(offset, length, mayDeallocate, fastOnly, fua), cancellationToken);

    public override ValueTask FlushAsync(CancellationToken cancellationToken)
    {
        var (_, primary) = volume.Lookup();
        return primary is not null ? primary.Device.FlushAsync(cancellationToken) : Inner.FlushAsync(cancellationToken);
    }

    // A change as a struct, so the generic ChangeAsync is specialised for each and no closure is allocated per request.
    private interface IChange
    {
        ValueTask ApplyAsync(IBlockDevice device, CancellationToken cancellationToken);
    }

    private readonly record struct Write(long Offset, ReadOnlyMemory<byte> Data, bool Fua) : IChange
    {
        public ValueTask ApplyAsync(IBlockDevice device, CancellationToken cancellationToken) => device.WriteAsync(Offset, Data, Fua, cancellationToken);
    }

    private readonly record struct Trim(long Offset, long Length, bool Fua) : IChange
    {
        public ValueTask ApplyAsync(IBlockDevice device, CancellationToken cancellationToken) => device.TrimAsync(Offset, Length, Fua, cancellationToken);
    }

    private readonly record struct Zero(long Offset, long Length, bool MayDeallocate, bool FastOnly, bool Fua) : IChange
    {
        public ValueTask ApplyAsync(IBlockDevice device, CancellationToken cancellationToken) =>
            device.ZeroAsync(Offset, Length, MayDeallocate, FastOnly, Fua, cancellationToken);
    }
}
