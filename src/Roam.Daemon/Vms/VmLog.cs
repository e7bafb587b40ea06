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

    [LoggerMessage(5107, LogLevel.Warning, "VM {Vm}: incoming migration from {Peer} failed: {Error}")]
    public static partial void VmIncomingFailed(ILogger logger, string vm, string peer, string error);

    [LoggerMessage(5108, LogLevel.Warning, "VM {Vm}: {What}")]
    public static partial void VmMigrationSafety(ILogger logger, string vm, string what);

    [LoggerMessage(5109, LogLevel.Information, "VM {Vm}: volume {Volume} handed back to {Peer} after a failed incoming migration")]
    public static partial void VmVolumeReturned(ILogger logger, string vm, string volume, string peer);
}
