namespace Roam.Storage.Devices;

/// <summary>What a block device can do; the NBD edge turns this into transmission flags.</summary>
public sealed record BlockDeviceCapabilities(bool CanWrite, bool CanTrim, bool CanZero, bool CanFastZero, bool CanExtents);

/// <summary>One run of blocks with the same allocation state, as NBD's base:allocation describes it.</summary>
public readonly record struct Extent(long Offset, long Length, bool IsHole, bool IsZero);

/// <summary>
/// A virtual disk as the protocol layers see it (nbdkit's plugin shape). Ranges are validated once at
/// the NBD edge; implementations only assert them. Every method may be called concurrently.
/// </summary>
public interface IBlockDevice
{
    long Size { get; }

    BlockDeviceCapabilities Capabilities { get; }

    ValueTask ReadAsync(long offset, Memory<byte> destination, CancellationToken cancellationToken);

    /// <param name="fua">Force unit access: the data is on stable storage before the task completes.</param>
    ValueTask WriteAsync(long offset, ReadOnlyMemory<byte> data, bool fua, CancellationToken cancellationToken);

    /// <summary>Makes every completed write durable, whichever connection made it.</summary>
    ValueTask FlushAsync(CancellationToken cancellationToken);

    /// <summary>Discards a range; it reads back as zeros.</summary>
    ValueTask TrimAsync(long offset, long length, bool fua, CancellationToken cancellationToken);

    /// <param name="mayDeallocate">The range may become a hole (NBD without NO_HOLE).</param>
    /// <param name="fastOnly">Fail with <see cref="NotSupportedException"/> rather than write zeros slowly.</param>
    ValueTask ZeroAsync(long offset, long length, bool mayDeallocate, bool fastOnly, bool fua, CancellationToken cancellationToken);

    /// <summary>Hints that a range will be read soon.</summary>
    ValueTask CacheAsync(long offset, long length, CancellationToken cancellationToken);

    /// <summary>Allocation map of [offset, offset+length), in order, covering at least the first byte.</summary>
    ValueTask<IReadOnlyList<Extent>> GetExtentsAsync(long offset, long length, CancellationToken cancellationToken);
}
