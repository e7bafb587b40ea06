namespace Roam.Storage.Devices;

/// <summary>
/// A device that wraps another, as an nbdkit filter wraps the next layer: every call goes on to <see cref="Inner"/>
/// unless the layer overrides it, so a layer states only what it changes. Layers compose by construction, e.g.
/// <c>new WriteFenceLayer(new ActivityLogLayer(new MirrorLayer(file), log), fence)</c>; the outermost meets NBD.
/// </summary>
public abstract class BlockDeviceLayer(IBlockDevice inner) : IBlockDevice
{
    /// <summary>The next layer down (towards the file).</summary>
    protected IBlockDevice Inner { get; } = inner;

    public virtual long Size => Inner.Size;

    public virtual BlockDeviceCapabilities Capabilities => Inner.Capabilities;

    public virtual ValueTask ReadAsync(long offset, Memory<byte> destination, CancellationToken cancellationToken) =>
        Inner.ReadAsync(offset, destination, cancellationToken);

    public virtual ValueTask WriteAsync(long offset, ReadOnlyMemory<byte> data, bool fua, CancellationToken cancellationToken) =>
        Inner.WriteAsync(offset, data, fua, cancellationToken);

    public virtual ValueTask FlushAsync(CancellationToken cancellationToken) => Inner.FlushAsync(cancellationToken);

    public virtual ValueTask TrimAsync(long offset, long length, bool fua, CancellationToken cancellationToken) =>
        Inner.TrimAsync(offset, length, fua, cancellationToken);

    public virtual ValueTask ZeroAsync(long offset, long length, bool mayDeallocate, bool fastOnly, bool fua, CancellationToken cancellationToken) =>
        Inner.ZeroAsync(offset, length, mayDeallocate, fastOnly, fua, cancellationToken);

    public virtual ValueTask CacheAsync(long offset, long length, CancellationToken cancellationToken) =>
        Inner.CacheAsync(offset, length, cancellationToken);

    public virtual ValueTask<IReadOnlyList<Extent>> GetExtentsAsync(long offset, long length, CancellationToken cancellationToken) =>
        Inner.GetExtentsAsync(offset, length, cancellationToken);
}
