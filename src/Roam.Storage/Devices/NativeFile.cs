using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace Roam.Storage.Devices;

/// <summary>
/// The few Linux file calls .NET does not expose: fdatasync (durability without a metadata round
/// trip), fallocate (holes and zeroed ranges without writing zeros) and lseek SEEK_DATA/SEEK_HOLE
/// (sparse maps). Each returns errno on failure so callers decide what a failure means.
/// </summary>
internal static partial class NativeFile
{
    private const int FallocKeepSize = 0x01;
    private const int FallocPunchHole = 0x02;
    private const int FallocZeroRange = 0x10;
    private const int SeekData = 3;
    private const int SeekHole = 4;
    public const int ENXIO = 6;
    public const int EOPNOTSUPP = 95;
    public const int ENOSPC = 28;

    [LibraryImport("libc", SetLastError = true)]
    private static partial int fdatasync(int fd);

    [LibraryImport("libc", SetLastError = true)]
    private static partial int fsync(int fd);

    [LibraryImport("libc", SetLastError = true)]
    private static partial int fallocate(int fd, int mode, long offset, long length);

    [LibraryImport("libc", SetLastError = true)]
    private static partial long lseek(int fd, long offset, int whence);

    [LibraryImport("libc", SetLastError = true)]
    private static partial int posix_fadvise(int fd, long offset, long length, int advice);

    public static void DataSync(SafeFileHandle handle) => Check(fdatasync(Fd(handle)), "fdatasync");

    public static void FullSync(SafeFileHandle handle) => Check(fsync(Fd(handle)), "fsync");

    /// <summary>fsync on a directory, so that a rename or a new file in it survives a crash.</summary>
    public static void SyncDirectory(string directory)
    {
        // .NET will not open a directory as a file handle, so this one goes through open(2).
        int fd = open(directory, ORdOnly | ODirectory | OCloExec);
        if (fd < 0) Check(-1, $"open {directory}");
        try { Check(fsync(fd), "fsync directory"); }
        finally { close(fd); }
    }

    private const int ORdOnly = 0;
    private const int ODirectory = 0x10000;
    private const int OCloExec = 0x80000;

    [LibraryImport("libc", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int open(string path, int flags);

    [LibraryImport("libc")]
    private static partial int close(int fd);

    public static int PunchHole(SafeFileHandle handle, long offset, long length) =>
        fallocate(Fd(handle), FallocPunchHole | FallocKeepSize, offset, length) == 0 ? 0 : Marshal.GetLastPInvokeError();

    public static int ZeroRange(SafeFileHandle handle, long offset, long length) =>
        fallocate(Fd(handle), FallocZeroRange | FallocKeepSize, offset, length) == 0 ? 0 : Marshal.GetLastPInvokeError();

    /// <summary>Allocates blocks (mode 0) so later writes cannot fail for space.</summary>
    public static int Allocate(SafeFileHandle handle, long offset, long length) =>
        fallocate(Fd(handle), 0, offset, length) == 0 ? 0 : Marshal.GetLastPInvokeError();

    /// <summary>Next data at or after offset; -1 when only a hole remains to the end.</summary>
    public static long NextData(SafeFileHandle handle, long offset) => Seek(handle, offset, SeekData);

    /// <summary>Next hole at or after offset (end of file counts as a hole).</summary>
    public static long NextHole(SafeFileHandle handle, long offset) => Seek(handle, offset, SeekHole);

    public static void WillNeed(SafeFileHandle handle, long offset, long length) => posix_fadvise(Fd(handle), offset, length, 3);

    private static long Seek(SafeFileHandle handle, long offset, int whence)
    {
        long r = lseek(Fd(handle), offset, whence);
        if (r >= 0) return r;
        int errno = Marshal.GetLastPInvokeError();
        if (errno == ENXIO) return -1;
        throw new IOException($"lseek failed: errno {errno}", errno);
    }

    private static int Fd(SafeFileHandle handle) => (int)handle.DangerousGetHandle();

    private static void Check(int result, string call)
    {
        if (result != 0)
        {
            int errno = Marshal.GetLastPInvokeError();
            throw new IOException($"{call} failed: errno {errno}", errno);
        }
    }
}
