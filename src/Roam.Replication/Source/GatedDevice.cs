using Roam.Storage.Devices;

namespace Roam.Replication.Source;

/// <summary>
/// A primary volume exported without replication (a plain or promoted volume): its changes pass the
/// volume's fence, so losing a split brain can refuse them at once, on NBD connections already open too.
/// </summary>
internal sealed class GatedDevice(IBlockDevice inner, WriteGate gate) : IBlockDevice
{
    public long Size => inner.Size;

    public BlockDeviceCapabilities Capabilities => inner.Capabilities;

    public ValueTask ReadAsync(long offset, Memory<byte> destination, CancellationToken cancellationToken) =>
        inner.ReadAsync(offset, destination, cancellationToken);

    public async ValueTask WriteAsync(long offset, ReadOnlyMemory<byte> data, bool fua, CancellationToken cancellationToken)
    {
        using var pass = await gate.EnterAsync(cancellationToken).ConfigureAwait(false);
        await inner.WriteAsync(offset, data, fua, cancellationToken).ConfigureAwait(false);
    }

    public ValueTask FlushAsync(CancellationToken cancellationToken) => inner.FlushAsync(cancellationToken);

    public async ValueTask TrimAsync(long offset, long length, bool fua, CancellationToken cancellationToken)
    {
        using var pass = await gate.EnterAsync(cancellationToken).ConfigureAwait(false);
        await inner.TrimAsync(offset, length, fua, cancellationToken).ConfigureAwait(false);
    }

    public async ValueTask ZeroAsync(long offset, long length, bool mayDeallocate, bool fastOnly, bool fua, CancellationToken cancellationToken)
    {
        using var pass = await gate.EnterAsync(cancellationToken).ConfigureAwait(false);
        await inner.ZeroAsync(offset, length, mayDeallocate, fastOnly, fua, cancellationToken).ConfigureAwait(false);
    }

    public ValueTask CacheAsync(long offset, long length, CancellationToken cancellationToken) => inner.CacheAsync(offset, length, cancellationToken);

    public ValueTask<IReadOnlyList<Extent>> GetExtentsAsync(long offset, long length, CancellationToken cancellationToken) =>
        inner.GetExtentsAsync(offset, length, cancellationToken);
}
