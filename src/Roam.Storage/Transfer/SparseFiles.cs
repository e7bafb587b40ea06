using Microsoft.Win32.SafeHandles;
using Roam.Storage.Devices;

namespace Roam.Storage.Transfer;

/// <summary>File-level helpers for moving images in and out: sparse creation, allocation and durability.</summary>
public static class SparseFiles
{
    /// <summary>Creates (or, with <paramref name="overwrite"/>, truncates) a file of the given length that is all hole.</summary>
    public static void CreateSparse(string path, long length, bool overwrite = false)
    {
        using var handle = File.OpenHandle(path, overwrite ? FileMode.Create : FileMode.CreateNew, FileAccess.ReadWrite, FileShare.None);
        RandomAccess.SetLength(handle, length);
    }

    /// <summary>Bytes of the file that hold data (by SEEK_DATA/SEEK_HOLE; holes do not count).</summary>
    public static long AllocatedBytes(string path)
    {
        using var handle = File.OpenHandle(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
        return AllocatedBytes(handle);
    }

    public static long AllocatedBytes(SafeFileHandle handle)
    {
        long size = RandomAccess.GetLength(handle), pos = 0, allocated = 0;
        while (pos < size)
        {
            long data = NativeFile.NextData(handle, pos);
            if (data < 0) break;
            long hole = NativeFile.NextHole(handle, data);
            allocated += hole - data;
            pos = hole;
        }
        return allocated;
    }

    /// <summary>fsync of a whole file (data and metadata).</summary>
    public static void Sync(string path)
    {
        using var handle = File.OpenHandle(path, FileMode.Open, FileAccess.ReadWrite, FileShare.ReadWrite);
        NativeFile.FullSync(handle);
    }

    /// <summary>fsync of a directory, so a new name or a rename in it survives a crash.</summary>
    public static void SyncDirectory(string directory) => NativeFile.SyncDirectory(directory);
}
