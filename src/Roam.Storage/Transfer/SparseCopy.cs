using System.Buffers;
using Roam.Storage.Devices;

namespace Roam.Storage.Transfer;

/// <summary>
/// Copies a block device into one that reads as zeros, writing only what holds data: hole extents
/// are skipped whole (SEEK_DATA/SEEK_HOLE underneath), and inside data extents every all-zero 64 KiB
/// block is skipped too, so the destination stays as sparse as the data allows.
/// </summary>
public static class SparseCopy
{
    /// <summary>Granularity of the zero check; also the smallest hole the copy leaves.</summary>
    public const int ZeroBlockSize = 64 * 1024;

    private const int ChunkSize = 1 << 20;

    // Extents are asked for in windows so a badly fragmented file never builds one huge list.
    private const long ExtentWindow = 1L << 30;

    /// <summary>
    /// Copies [0, length) of <paramref name="source"/> to the same offsets of
    /// <paramref name="destination"/> and flushes it. Returns the bytes written.
    /// </summary>
    /// <param name="progress">Called with the bytes covered so far (holes count as covered).</param>
    public static async Task<long> CopyAsync(IBlockDevice source, IBlockDevice destination, long length,
        Action<long>? progress, CancellationToken cancellationToken)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(length);
        if (length > source.Size) throw new ArgumentOutOfRangeException(nameof(length), "longer than the source");
        if (length > destination.Size) throw new ArgumentOutOfRangeException(nameof(length), "longer than the destination");
        // One buffer for the whole copy, rented rather than allocated: copies can run side by side.
        var buffer = ArrayPool<byte>.Shared.Rent(ChunkSize);
        try
        {
            long written = 0, pos = 0;
            while (pos < length)
            {
                cancellationToken.ThrowIfCancellationRequested();
                var extents = await source.GetExtentsAsync(pos, Math.Min(length - pos, ExtentWindow), cancellationToken).ConfigureAwait(false);
                long before = pos;
                foreach (var extent in extents)
                {
                    long start = Math.Max(extent.Offset, pos), end = Math.Min(extent.Offset + extent.Length, length);
                    if (end <= start) continue;
                    if (start != pos) throw new InvalidOperationException($"the source's extent map has a gap at {pos}");
                    if (!extent.IsZero)
                        written += await CopyDataAsync(source, destination, start, end, buffer, progress, cancellationToken).ConfigureAwait(false);
                    pos = end;
                    progress?.Invoke(pos);
                }
                if (pos == before) throw new InvalidOperationException($"the source's extent map made no progress at {pos}");
            }
            await destination.FlushAsync(cancellationToken).ConfigureAwait(false);
            return written;
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    private static async Task<long> CopyDataAsync(IBlockDevice source, IBlockDevice destination, long start, long end,
        byte[] buffer, Action<long>? progress, CancellationToken cancellationToken)
    {
        long written = 0;
        for (long pos = start; pos < end;)
        {
            // Chunks end on chunk boundaries so the zero blocks stay aligned to the volume.
            int n = (int)Math.Min(end - pos, ChunkSize - pos % ChunkSize);
            var chunk = buffer.AsMemory(0, n);
            await source.ReadAsync(pos, chunk, cancellationToken).ConfigureAwait(false);
            int runStart = -1;
            for (int off = 0; off < n;)
            {
                int blockLength = (int)Math.Min(n - off, ZeroBlockSize - (pos + off) % ZeroBlockSize);
                bool zero = !chunk.Span.Slice(off, blockLength).ContainsAnyExcept((byte)0);
                if (!zero && runStart < 0) runStart = off;
                if (zero && runStart >= 0)
                {
                    await destination.WriteAsync(pos + runStart, chunk[runStart..off], fua: false, cancellationToken).ConfigureAwait(false);
                    written += off - runStart;
                    runStart = -1;
                }
                off += blockLength;
            }
            if (runStart >= 0)
            {
                await destination.WriteAsync(pos + runStart, chunk[runStart..n], fua: false, cancellationToken).ConfigureAwait(false);
                written += n - runStart;
            }
            pos += n;
            progress?.Invoke(pos);
        }
        return written;
    }
}
