using System.Globalization;
using Roam.Hypervisor.Qemu;
using Roam.Testing;

namespace Roam.Hypervisor.Tests;

/// <summary>
/// A QEMU started with a log file outlives its starter: its own session and process group (a signal to ours does not
/// reach it), output in the file, and after <see cref="QemuProcess.DetachAsync"/> another QemuProcess takes it over
/// by pid, start time and QMP socket, and sees it end.
/// </summary>
public sealed class DetachedQemuTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("roam-hv-").FullName;

    private QemuCommandLine Line() => new QemuCommandLine { Machine = "none" }.WithQmpSocket(Path.Combine(_dir, "qmp.sock"));

    private QemuProcessOptions Options => new() { LogPath = Path.Combine(_dir, "qemu.log") };

    private static string[] Stat(int pid)
    {
        var stat = File.ReadAllText($"/proc/{pid}/stat");
        return stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
    }

    [ToolFact(TestQemu.Binary)]
    public async Task Runs_in_its_own_session_survives_detach_and_is_taken_over_by_identity()
    {
        var first = await QemuProcess.StartAsync(Line(), Options);
        var identity = first.Identity;
        // fields after the command: state, ppid, pgrp, session
        var stat = Stat(identity.Pid);
        Assert.Equal(identity.Pid.ToString(CultureInfo.InvariantCulture), stat[3]); // session leader
        Assert.Equal(identity.Pid.ToString(CultureInfo.InvariantCulture), stat[2]); // its own process group
        Assert.NotEqual(Stat(Environment.ProcessId)[3], stat[3]);
        Assert.Contains("qemu-system", File.ReadAllText($"/proc/{identity.Pid}/cmdline"));

        await first.DetachAsync();
        Assert.True(identity.IsAlive(first.QmpSocketPath));

        await using var second = await QemuProcess.AttachAsync(identity, first.QmpSocketPath, Options);
        Assert.Equal(identity.Pid, second.Pid);
        Assert.True((await second.Qmp.QueryStatusAsync()).Status.Length > 0);

        // A pid reused by another process (here: another start time) is not taken for it.
        await Assert.ThrowsAsync<QemuExitedException>(() =>
            QemuProcess.AttachAsync(identity with { StartTime = identity.StartTime + 1 }, first.QmpSocketPath, Options));

        var exit = await second.KillAsync().WaitAsync(TestQemu.Patience);
        Assert.False(exit.ExitCodeKnown);
        Assert.False(identity.IsAlive());
        Reap(identity.Pid);
    }

    [ToolFact(TestQemu.Binary)]
    public async Task Stderr_goes_to_the_log_file_and_a_start_failure_reports_it()
    {
        var ex = await Assert.ThrowsAsync<QemuExitedException>(() => QemuProcess.StartAsync(Line().WithArguments("-no-such-option"), Options));
        Assert.NotEqual(0, ex.Exit.ExitCode);
        Assert.Contains("no-such-option", ex.Exit.StderrTail);
        Assert.Contains("no-such-option", File.ReadAllText(Path.Combine(_dir, "qemu.log")));
    }

    private static void Reap(int pid)
    {
        // The detached QEMU was our child: nobody waits for it after DetachAsync, so reap the zombie here.
        _ = waitpid(pid, IntPtr.Zero, 0);
    }

#pragma warning disable SYSLIB1054 // LibraryImport needs unsafe code, which this project does not allow
    [System.Runtime.InteropServices.DllImport("libc", SetLastError = true)]
    private static extern int waitpid(int pid, IntPtr status, int options);
#pragma warning restore SYSLIB1054

    public void Dispose()
    {
        try { Directory.Delete(_dir, recursive: true); }
        catch (IOException) { }
    }
}
