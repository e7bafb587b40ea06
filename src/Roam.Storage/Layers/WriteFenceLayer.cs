using System.Runtime.CompilerServices;
using Roam.Storage.Devices;

namespace Roam.Storage.Layers;

/// <summary>
/// Changes pass the volume's <see cref="WriteFence"/> before going down, and count as in flight until they return,
/// so a hand-over can stop and drain them and a lost split brain can refuse them. Reads and flushes go straight on.
/// </summary>
public sealed class WriteFenceLayer(IBlockDevice inner, WriteFence fence) : BlockDeviceLayer(inner)
{
    public WriteFence Fence { get; } = fence;

    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))]
    public override async ValueTask WriteAsync(long offset, ReadOnlyMemory<byte> data, bool fua, CancellationToken cancellationToken)
    {
        using var pass = await Fence.EnterAsync(cancellationToken).ConfigureAwait(false);
        await Inner.WriteAsync(offset, data, fua, cancellationToken).ConfigureAwait(false);
    }

    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))]
    public override async ValueTask TrimAsync(long offset, long length, bool fua, CancellationToken cancellationToken)
    {
        using var pass = await Fence.EnterAsync(cancellationToken).ConfigureAwait(false);
        await Inner.TrimAsync(offset, length, fua, cancellationToken).ConfigureAwait(false);
    }

    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))]
    public override async ValueTask ZeroAsync(long offset, long length, bool mayDeallocate, bool fastOnly, bool fua, CancellationToken cancellationToken)
    {
        using var pass = await Fence.EnterAsync(cancellationToken).ConfigureAwait(false);
        await Inner.ZeroAsync(offset, length, mayDeallocate, fastOnly, fua, cancellationToken).ConfigureAwait(false);
    }
}
