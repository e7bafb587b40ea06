using System.Globalization;
using System.Runtime.InteropServices;

namespace Roam.Hypervisor.Qemu;

/// <summary>
/// A process named so that a reused pid cannot pass for it: its pid, its start time (field 22 of /proc/PID/stat,
/// clock ticks since boot; exec does not change it) and the boot it belongs to (/proc/sys/kernel/random/boot_id).
/// </summary>
public sealed record ProcessIdentity(int Pid, ulong StartTime, string BootId)
{
    /// <summary>The identity of the live process <paramref name="pid"/>, or null if there is none (or only a zombie).</summary>
    public static ProcessIdentity? Of(int pid) =>
        TryReadStat(pid, out var state, out var start) && state != 'Z' && CurrentBootId() is { } boot ? new ProcessIdentity(pid, start, boot) : null;

    /// <summary>
    /// True while this very process runs (a zombie does not count: it has exited, only its parent has not reaped it),
    /// and, when <paramref name="commandLineMustContain"/> is given, one of its arguments contains that text.
    /// </summary>
    public bool IsAlive(string? commandLineMustContain = null)
    {
        if (CurrentBootId() != BootId) return false;
        if (!TryReadStat(Pid, out var state, out var start) || state == 'Z' || start != StartTime) return false;
        if (commandLineMustContain is null) return true;
        return Arguments(Pid)?.Any(a => a.Contains(commandLineMustContain, StringComparison.Ordinal)) == true;
    }

    /// <summary>SIGKILLs the process if it is still this one. False if it was already gone.</summary>
    public bool Kill()
    {
        if (!IsAlive()) return false;
        return kill(Pid, 9) == 0;
    }

    public static string? CurrentBootId()
    {
        try { return File.ReadAllText("/proc/sys/kernel/random/boot_id").Trim(); }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException) { return null; }
    }

    /// <summary>The argument vector of <paramref name="pid"/> (empty for a kernel thread or a zombie), or null if it is gone.</summary>
    public static string[]? Arguments(int pid)
    {
        try
        {
            var raw = File.ReadAllText($"/proc/{pid}/cmdline");
            return raw.Split('\0', StringSplitOptions.RemoveEmptyEntries);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException) { return null; }
    }

    /// <summary>Live processes (not zombies) one of whose arguments contains <paramref name="text"/>.</summary>
    public static IEnumerable<ProcessIdentity> FindByArgument(string text)
    {
        foreach (var dir in Directory.EnumerateDirectories("/proc"))
        {
            if (!int.TryParse(Path.GetFileName(dir), NumberStyles.None, CultureInfo.InvariantCulture, out var pid) || pid == Environment.ProcessId) continue;
            if (Arguments(pid) is not { } args || !args.Any(a => a.Contains(text, StringComparison.Ordinal))) continue;
            if (Of(pid) is { } identity) yield return identity;
        }
    }

    private static bool TryReadStat(int pid, out char state, out ulong startTime)
    {
        state = '?';
        startTime = 0;
        string stat;
        try { stat = File.ReadAllText($"/proc/{pid}/stat"); }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException) { return false; }
        // "pid (comm) state ppid ..." where comm may hold spaces and parentheses: fields resume after the last ')'.
        int close = stat.LastIndexOf(')');
        if (close < 0) return false;
        var fields = stat[(close + 1)..].Split(' ', StringSplitOptions.RemoveEmptyEntries);
        // fields[0] is field 3 (state), so field 22 (starttime) is fields[19].
        if (fields.Length < 20 || fields[0].Length != 1) return false;
        state = fields[0][0];
        return ulong.TryParse(fields[19], NumberStyles.None, CultureInfo.InvariantCulture, out startTime);
    }

#pragma warning disable SYSLIB1054 // LibraryImport needs unsafe code, which this project does not allow
    [DllImport("libc", SetLastError = true)]
    private static extern int kill(int pid, int signal);
#pragma warning restore SYSLIB1054
}
