using System.Runtime.InteropServices;
using System.Text;

namespace Roam.Daemon.Hosting;

/// <summary>
/// Reads the pid the running roamd wrote into DATA_DIR/roamd.lock. .NET takes a shared flock() for
/// every read-only open, which the holder's exclusive lock refuses, so this reads through open(2)
/// directly. Best effort: null when the pid cannot be read.
/// </summary>
internal static class LockHolder
{
    private const int ORdOnly = 0;
    private const int OCloExec = 0x80000;

    public static int? ReadPid(string dataDir)
    {
        try
        {
            int fd = open(Path.Combine(dataDir, "roamd.lock"), ORdOnly | OCloExec);
            if (fd < 0) return null;
            var buffer = new byte[32];
            nint n;
            try { n = read(fd, buffer, buffer.Length); }
            finally { close(fd); }
            return n > 0 && int.TryParse(Encoding.ASCII.GetString(buffer, 0, (int)n).Trim(), out var pid) ? pid : null;
        }
        catch (Exception ex) when (ex is DllNotFoundException or EntryPointNotFoundException) { return null; }
    }

#pragma warning disable SYSLIB1054 // LibraryImport would need unsafe code in this project for three tiny calls
    [DllImport("libc", SetLastError = true)]
    private static extern int open([MarshalAs(UnmanagedType.LPUTF8Str)] string path, int flags);

    [DllImport("libc", SetLastError = true)]
    private static extern nint read(int fd, byte[] buffer, nint count);

    [DllImport("libc")]
    private static extern int close(int fd);
#pragma warning restore SYSLIB1054
}
