using System.Runtime.CompilerServices;
using Roam.Storage.Devices;
using Roam.Storage.Tracking;

namespace Roam.Storage.Layers;

/// <summary>
/// DRBD's activity log as a layer: a change goes down only once the extents it touches are named by the durable log,
/// and keeps them pinned until it returned from every layer below (the local write and each replica's copy), so a
/// crash at any moment leaves every region that may differ between the copies named by the log or by a bitmap.
/// Zeroing and trimming, which may cover the whole disk, go down in pieces of at most half the log.
/// </summary>
public sealed class ActivityLogLayer(IBlockDevice inner, ActivityLog log) : BlockDeviceLayer(inner)
{
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))]
    public override async ValueTask WriteAsync(long offset, ReadOnlyMemory<byte> data, bool fua, CancellationToken cancellationToken)
    {
        if (data.IsEmpty) return;
        using var logged = await log.EnterAsync(offset, data.Length).ConfigureAwait(false);
        await Inner.WriteAsync(offset, data, fua, cancellationToken).ConfigureAwait(false);
    }

    public override async ValueTask TrimAsync(long offset, long length, bool fua, CancellationToken cancellationToken)
    {
        long end = offset + length;
        while (offset < end)
        {
            long piece = Piece(offset, end);
            using (await log.EnterAsync(offset, piece).ConfigureAwait(false))
                await Inner.TrimAsync(offset, piece, fua, cancellationToken).ConfigureAwait(false);
            offset += piece;
        }
    }

    public override async ValueTask ZeroAsync(long offset, long length, bool mayDeallocate, bool fastOnly, bool fua, CancellationToken cancellationToken)
    {
        long end = offset + length;
        while (offset < end)
        {
            long piece = Piece(offset, end);
            using (await log.EnterAsync(offset, piece).ConfigureAwait(false))
                await Inner.ZeroAsync(offset, piece, mayDeallocate, fastOnly, fua, cancellationToken).ConfigureAwait(false);
            offset += piece;
        }
    }

    /// <summary>The next piece of a long change: aligned to extents, and small enough that the log always has room beside it.</summary>
    private long Piece(long offset, long end)
    {
        long chunk = (long)log.ExtentSize * Math.Max(1, log.Capacity / 2 - 1);
        return Math.Min(end - offset, chunk - offset % log.ExtentSize);
    }
}
