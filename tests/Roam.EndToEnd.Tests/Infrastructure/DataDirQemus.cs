using System.Globalization;
using System.Runtime.InteropServices;

namespace Roam.EndToEnd.Tests.Infrastructure;

/// <summary>
/// The QEMUs of a data dir. They outlive roamd by design (a roamd restart must not take its VMs down), so a test that
/// ends a roamd must end them too: every qemu-system process with the data dir on its command line (its NBD and QMP
/// socket paths are there) is SIGKILLed and reaped.
/// <para>
/// This test process makes itself a child subreaper, so QEMUs orphaned by a killed roamd become its children rather
/// than init's: they can be reaped here (this machine's pid 1 does not reap orphans, and a zombie would linger in
/// <c>pgrep qemu</c>), and a test can see them end.
/// </para>
/// </summary>
public static class DataDirQemus
{
    private const int PrSetChildSubreaper = 36;
    private const int WNoHang = 1;

    static DataDirQemus() => _ = prctl(PrSetChildSubreaper, 1, 0, 0, 0);

    /// <summary>Makes this process a subreaper (idempotent; also done by any other member).</summary>
    public static void AdoptOrphans() { }

    /// <summary>Pids of the live (not zombie) qemu-system processes whose command line mentions <paramref name="dataDir"/>.</summary>
    public static IReadOnlyList<int> Find(string dataDir)
    {
        var found = new List<int>();
        var full = Path.GetFullPath(dataDir).TrimEnd('/') + "/";
        foreach (var dir in Directory.EnumerateDirectories("/proc"))
        {
            if (!int.TryParse(Path.GetFileName(dir), NumberStyles.None, CultureInfo.InvariantCulture, out var pid)) continue;
            string[] args;
            try { args = File.ReadAllText(Path.Combine(dir, "cmdline")).Split('\0', StringSplitOptions.RemoveEmptyEntries); }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException) { continue; }
            if (args.Length == 0 || !Path.GetFileName(args[0]).StartsWith("qemu-system", StringComparison.Ordinal)) continue;
            if (args.Any(a => a.Contains(full, StringComparison.Ordinal))) found.Add(pid);
        }
        return found;
    }

    /// <summary>SIGKILLs them and waits until each is gone (reaping those that are this process's children).</summary>
    public static async Task KillAllAsync(string dataDir)
    {
        foreach (var pid in Find(dataDir)) await KillAsync(pid);
    }

    /// <summary>SIGKILLs <paramref name="pid"/> and waits until it is gone or reaped.</summary>
    public static async Task KillAsync(int pid)
    {
        _ = kill(pid, 9);
        await WaitGoneAsync(pid);
    }

    /// <summary>Waits until <paramref name="pid"/> has exited, and reaps it if it is our child. Bounded by 30 s.</summary>
    public static async Task WaitGoneAsync(int pid)
    {
        for (int i = 0; i < 3000; i++)
        {
            string? state = State(pid);
            if (state is null) return;
            if (state == "Z")
            {
                _ = waitpid(pid, IntPtr.Zero, WNoHang); // ours: reaped; not ours: its parent's business
                if (State(pid) is null or "Z") return;
            }
            await Task.Delay(10);
        }
        throw new TimeoutException($"process {pid} did not end within 30 s of SIGKILL");
    }

    /// <summary>The process's state letter (R, S, Z...), or null once it is gone.</summary>
    public static string? State(int pid)
    {
        try
        {
            var stat = File.ReadAllText($"/proc/{pid}/stat");
            var fields = stat[(stat.LastIndexOf(')') + 1)..].Split(' ', StringSplitOptions.RemoveEmptyEntries);
            return fields[0];
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException) { return null; }
    }

#pragma warning disable SYSLIB1054 // LibraryImport needs unsafe code, which this project does not allow
    [DllImport("libc", SetLastError = true)]
    private static extern int prctl(int option, ulong arg2, ulong arg3, ulong arg4, ulong arg5);

    [DllImport("libc", SetLastError = true)]
    private static extern int kill(int pid, int signal);

    [DllImport("libc", SetLastError = true)]
    private static extern int waitpid(int pid, IntPtr status, int options);
#pragma warning restore SYSLIB1054
}
