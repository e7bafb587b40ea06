using Microsoft.Extensions.Logging;

namespace Roam.Daemon;

internal static partial class Log
{
    [LoggerMessage(5100, LogLevel.Information, "VM {Vm} created: volume {Volume}, {MemoryMiB} MiB, {Cpus} CPU(s)")]
    public static partial void VmCreated(ILogger logger, string vm, string volume, int memoryMiB, int cpus);

    [LoggerMessage(5101, LogLevel.Information, "VM {Vm} started: QEMU pid {Pid}, {Accelerator}{Incoming}")]
    public static partial void VmStarted(ILogger logger, string vm, int pid, string accelerator, string incoming);

    [LoggerMessage(5102, LogLevel.Information, "VM {Vm} stopped: {How} (exit code {ExitCode})")]
    public static partial void VmStopped(ILogger logger, string vm, string how, int exitCode);

    [LoggerMessage(5103, LogLevel.Error, "VM {Vm} crashed: QEMU exited with code {ExitCode}: {StderrTail}")]
    public static partial void VmCrashed(ILogger logger, string vm, int exitCode, string stderrTail);

    [LoggerMessage(5104, LogLevel.Information, "VM {Vm} migrated to {Peer}: {Seconds:0.00} s in all, downtime {DowntimeMs} ms, disk {DiskBytes} bytes, memory {RamBytes} bytes")]
    public static partial void VmMigrated(ILogger logger, string vm, string peer, double seconds, long? downtimeMs, long diskBytes, long ramBytes);

    [LoggerMessage(5105, LogLevel.Warning, "VM {Vm}: migration to {Peer} failed: {Error}")]
    public static partial void VmMigrationFailed(ILogger logger, string vm, string peer, string error);

    [LoggerMessage(5106, LogLevel.Information, "VM {Vm} arrived from {Peer} and runs here")]
    public static partial void VmArrived(ILogger logger, string vm, string peer);

    [LoggerMessage(5108, LogLevel.Information, "VM {Vm} taken over after a roamd restart: QEMU pid {Pid} kept running{Detail}")]
    public static partial void VmAdopted(ILogger logger, string vm, int pid, string detail);

    [LoggerMessage(5109, LogLevel.Warning, "VM {Vm}: its QEMU (pid {Pid}) ended while roamd was not running (exit status unknown); its last output: {StderrTail}")]
    public static partial void VmDiedWhileAway(ILogger logger, string vm, int pid, string stderrTail);

    [LoggerMessage(5110, LogLevel.Warning, "VM {Vm}: COLD START (the guest boots afresh) because {Reason}")]
    public static partial void VmColdStarting(ILogger logger, string vm, string reason);

    [LoggerMessage(5111, LogLevel.Error, "VM {Vm}: starting it again after a roamd restart failed: {Error}")]
    public static partial void VmColdStartFailed(ILogger logger, string vm, string error);

    [LoggerMessage(5112, LogLevel.Error, "VM {Vm}: its QEMU (pid {Pid}) runs but QMP does not answer; left alone: {Error}")]
    public static partial void VmAdoptFailed(ILogger logger, string vm, int pid, string error);

    [LoggerMessage(5113, LogLevel.Information, "VM {Vm} left running for the next roamd: QEMU pid {Pid} (stop it with roam vm stop)")]
    public static partial void VmLeftRunning(ILogger logger, string vm, int pid);

    [LoggerMessage(5114, LogLevel.Warning, "VM {Vm}: its incoming migration was cut by a roamd restart; QEMU pid {Pid} killed and the VM forgotten (it runs at the source)")]
    public static partial void VmIncomingDropped(ILogger logger, string vm, int pid);

    [LoggerMessage(5115, LogLevel.Information, "VM {Vm}: migrated away while roamd was down; its source QEMU (pid {Pid}) ended and the VM forgotten here")]
    public static partial void VmMigratedWhileAway(ILogger logger, string vm, int pid);

    [LoggerMessage(5107, LogLevel.Warning, "VM {Vm}: incoming migration from {Peer} failed: {Error}")]
    public static partial void VmIncomingFailed(ILogger logger, string vm, string peer, string error);

    [LoggerMessage(5120, LogLevel.Warning, "VM {Vm}: {What}")]
    public static partial void VmMigrationSafety(ILogger logger, string vm, string what);

    [LoggerMessage(5121, LogLevel.Information, "VM {Vm}: volume {Volume} handed back to {Peer} after a failed incoming migration")]
    public static partial void VmVolumeReturned(ILogger logger, string vm, string volume, string peer);

    [LoggerMessage(5116, LogLevel.Information, "VM {Vm} switch-over, from QEMU's pre-switchover event: disk handed over at {HandedOverMs:0.0} ms, migrate-continue at {ContinuedMs:0.0} ms, QEMU done sending at {CompletedMs:0.0} ms")]
    public static partial void VmSwitchover(ILogger logger, string vm, double handedOverMs, double continuedMs, double completedMs);

    [LoggerMessage(5118, LogLevel.Information, "VM {Vm}: the memory has not converged after {Passes} passes (expected downtime {ExpectedMs} ms): downtime limit raised to {LimitMs} ms")]
    public static partial void VmDowntimeRaised(ILogger logger, string vm, long limitMs, long passes, long? expectedMs);

    [LoggerMessage(5119, LogLevel.Information, "VM {Vm}: boot file {Path} ({Size} bytes) received from {Peer}, kept as {Kept}")]
    public static partial void VmBootFileReceived(ILogger logger, string vm, string peer, string path, long size, string kept);

    [LoggerMessage(5117, LogLevel.Information, "VM {Vm} arriving: the stream loaded, resumed {ResumedMs:0.0} ms later")]
    public static partial void VmResumedAfterLoad(ILogger logger, string vm, double resumedMs);
}
