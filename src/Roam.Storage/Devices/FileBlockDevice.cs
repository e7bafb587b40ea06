using System.Runtime.CompilerServices;
using Microsoft.Win32.SafeHandles;

namespace Roam.Storage.Devices;

/// <summary>
/// A volume's sparse raw file. Positioned I/O through <see cref="RandomAccess"/> (pread/pwrite), so
/// concurrent requests never share a file position. Trim and zeroing punch holes; the allocation map
/// comes from SEEK_DATA/SEEK_HOLE. One instance serves every connection to the volume, so a flush on
/// any connection covers the writes of all (which is what lets NBD advertise CAN_MULTI_CONN).
/// </summary>
public sealed class FileBlockDevice : IBlockDevice, IDisposable
{
    private readonly SafeFileHandle _handle;
    private readonly bool _readOnly;
    private int _zeroRangeUnsupported;
    private int _punchUnsupported;

    public FileBlockDevice(string path, long size, bool readOnly)
    {
        _readOnly = readOnly;
        _handle = File.OpenHandle(path, FileMode.Open, readOnly ? FileAccess.Read : FileAccess.ReadWrite, FileShare.ReadWrite);
        Size = size;
        Capabilities = new BlockDeviceCapabilities(CanWrite: !readOnly, CanTrim: !readOnly, CanZero: !readOnly, CanFastZero: !readOnly, CanExtents: true);
    }

    public long Size { get; }

    public BlockDeviceCapabilities Capabilities { get; }

    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))]
    public async ValueTask ReadAsync(long offset, Memory<byte> destination, CancellationToken cancellationToken)
    {
        int done = 0;
        try
        {
            while (done < destination.Length)
            {
                int n = await RandomAccess.ReadAsync(_handle, destination[done..], offset + done, cancellationToken).ConfigureAwait(false);
                if (n == 0)
                {
                    // The file is shorter than the volume only after an interrupted grow: reads past it are zeros.
                    destination.Span[done..].Clear();
                    return;
                }
                done += n;
            }
        }
        catch (IOException ex) { throw BlockDeviceException.From(ex); }
    }

    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))]
    public async ValueTask WriteAsync(long offset, ReadOnlyMemory<byte> data, bool fua, CancellationToken cancellationToken)
    {
        EnsureWritable();
        try
        {
            await RandomAccess.WriteAsync(_handle, data, offset, cancellationToken).ConfigureAwait(false);
            if (fua) NativeFile.DataSync(_handle);
        }
        catch (IOException ex) { throw BlockDeviceException.From(ex); }
    }

    public ValueTask FlushAsync(CancellationToken cancellationToken)
    {
        if (_readOnly) return ValueTask.CompletedTask;
        try { NativeFile.DataSync(_handle); }
        catch (IOException ex) { throw BlockDeviceException.From(ex); }
        return ValueTask.CompletedTask;
    }

    public ValueTask TrimAsync(long offset, long length, bool fua, CancellationToken cancellationToken) =>
        ZeroAsync(offset, length, mayDeallocate: true, fastOnly: false, fua, cancellationToken);

    public async ValueTask ZeroAsync(long offset, long length, bool mayDeallocate, bool fastOnly, bool fua, CancellationToken cancellationToken)
    {
        EnsureWritable();
        if (length == 0) return;
        try
        {
            if (mayDeallocate && Volatile.Read(ref _punchUnsupported) == 0)
            {
                int err = NativeFile.PunchHole(_handle, offset, length);
                if (err == 0) { if (fua) NativeFile.DataSync(_handle); return; }
                if (err != NativeFile.EOPNOTSUPP) throw Failure(err, "punch hole");
                Volatile.Write(ref _punchUnsupported, 1);
            }
            if (Volatile.Read(ref _zeroRangeUnsupported) == 0)
            {
                int err = NativeFile.ZeroRange(_handle, offset, length);
                if (err == 0) { if (fua) NativeFile.DataSync(_handle); return; }
                if (err != NativeFile.EOPNOTSUPP) throw Failure(err, "zero range");
                Volatile.Write(ref _zeroRangeUnsupported, 1);
            }
            if (fastOnly) throw new BlockDeviceException(BlockDeviceError.NotSupported, "fast zeroing is not supported by this file system");
            await WriteZerosAsync(offset, length, cancellationToken).ConfigureAwait(false);
            if (fua) NativeFile.DataSync(_handle);
        }
        catch (IOException ex) { throw BlockDeviceException.From(ex); }
    }

    public ValueTask CacheAsync(long offset, long length, CancellationToken cancellationToken)
    {
        NativeFile.WillNeed(_handle, offset, length);
        return ValueTask.CompletedTask;
    }

    public ValueTask<IReadOnlyList<Extent>> GetExtentsAsync(long offset, long length, CancellationToken cancellationToken)
    {
        var extents = new List<Extent>();
        long end = offset + length;
        long fileLength = RandomAccess.GetLength(_handle);
        long pos = offset;
        while (pos < end)
        {
            long data = pos < fileLength ? NativeFile.NextData(_handle, pos) : -1;
            if (data < 0 || data >= end)
            {
                extents.Add(new Extent(pos, end - pos, IsHole: true, IsZero: true));
                break;
            }
            if (data > pos)
            {
                extents.Add(new Extent(pos, data - pos, IsHole: true, IsZero: true));
                pos = data;
            }
            long hole = Math.Min(NativeFile.NextHole(_handle, pos), end);
            extents.Add(new Extent(pos, hole - pos, IsHole: false, IsZero: false));
            pos = hole;
        }
        return ValueTask.FromResult<IReadOnlyList<Extent>>(extents);
    }

    public void Dispose() => _handle.Dispose();

    private async ValueTask WriteZerosAsync(long offset, long length, CancellationToken cancellationToken)
    {
        // Shared, never-written zero block: no allocation per request.
        ReadOnlyMemory<byte> zeros = ZeroBlock;
        while (length > 0)
        {
            int n = (int)Math.Min(length, zeros.Length);
            await RandomAccess.WriteAsync(_handle, zeros[..n], offset, cancellationToken).ConfigureAwait(false);
            offset += n;
            length -= n;
        }
    }

    private static readonly byte[] ZeroBlock = new byte[1 << 20];

    private void EnsureWritable()
    {
        if (_readOnly) throw new BlockDeviceException(BlockDeviceError.ReadOnly, "the volume is read-only here");
    }

    private static IOException Failure(int errno, string what) =>
        errno == NativeFile.ENOSPC
            ? new BlockDeviceException(BlockDeviceError.NoSpace, $"{what}: no space left on device")
            : new BlockDeviceException(BlockDeviceError.Io, $"{what} failed: errno {errno}");
}
