using Microsoft.Extensions.Logging;

namespace Roam.Hypervisor;

/// <summary>Every log message of the hypervisor layer, with stable EventIds (7xxx).</summary>
internal static partial class Log
{
    [LoggerMessage(7001, LogLevel.Debug, "[qmp {Socket}] connected to QEMU {Version} ({Package})")]
    public static partial void QmpConnected(ILogger logger, string socket, string version, string package);

    [LoggerMessage(7002, LogLevel.Debug, "[qmp {Socket}] event {Event}")]
    public static partial void QmpEvent(ILogger logger, string socket, string @event);

    [LoggerMessage(7003, LogLevel.Warning, "[qmp {Socket}] reply for unknown id {Id} (a command that already timed out?)")]
    public static partial void QmpUnmatchedReply(ILogger logger, string socket, string id);

    [LoggerMessage(7004, LogLevel.Information, "[qmp {Socket}] connection closed: {Reason}")]
    public static partial void QmpClosed(ILogger logger, string socket, string reason);

    [LoggerMessage(7005, LogLevel.Warning, "[qmp {Socket}] event queue full, dropped the oldest event")]
    public static partial void QmpEventDropped(ILogger logger, string socket);

    [LoggerMessage(7101, LogLevel.Information, "[qemu {Pid}] started: {CommandLine}")]
    public static partial void QemuStarted(ILogger logger, int pid, string commandLine);

    [LoggerMessage(7102, LogLevel.Information, "[qemu {Pid}] exited with code {ExitCode}")]
    public static partial void QemuExited(ILogger logger, int pid, int exitCode);

    [LoggerMessage(7103, LogLevel.Warning, "[qemu {Pid}] did not quit within {Timeout}; killing it")]
    public static partial void QemuQuitTimedOut(ILogger logger, int pid, TimeSpan timeout);

    [LoggerMessage(7104, LogLevel.Information, "[qemu {Pid}] taken over: QMP reconnected on {Socket}")]
    public static partial void QemuAttached(ILogger logger, int pid, string socket);

    [LoggerMessage(7201, LogLevel.Information, "Accelerator probe chose {Accelerator}: {Reason}")]
    public static partial void AcceleratorChosen(ILogger logger, string accelerator, string reason);
}
