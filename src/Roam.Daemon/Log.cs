using Microsoft.Extensions.Logging;

namespace Roam.Daemon;

internal static partial class Log
{
    [LoggerMessage(5001, LogLevel.Information, "roamd {Version} ready: data dir {DataDir}, control {ControlSocket}, nbd {NbdSocket}{Tcp}")]
    public static partial void Ready(ILogger logger, string version, string dataDir, string controlSocket, string nbdSocket, string tcp);

    [LoggerMessage(5004, LogLevel.Information, "Host identity {HostName} {Fingerprint} ({How} {Path})")]
    public static partial void Identity(ILogger logger, string hostName, string fingerprint, string how, string path);

    [LoggerMessage(5002, LogLevel.Information, "Stopping: cancelling {Jobs} running job(s), disconnecting {Connections} NBD client(s)")]
    public static partial void Stopping(ILogger logger, int jobs, int connections);

    [LoggerMessage(5003, LogLevel.Information, "Stopped")]
    public static partial void Stopped(ILogger logger);

    [LoggerMessage(5010, LogLevel.Error, "Control API {Method} {Path} failed unexpectedly")]
    public static partial void ApiFailed(ILogger logger, string method, string path, Exception exception);

    [LoggerMessage(5020, LogLevel.Information, "Job {JobId}: {Kind} {Volume} {Direction} {Path} ({Format}) started")]
    public static partial void JobStarted(ILogger logger, string jobId, string kind, string volume, string direction, string path, string format);

    [LoggerMessage(5021, LogLevel.Information, "Job {JobId}: finished, {Bytes} bytes in {Seconds:0.00} s")]
    public static partial void JobSucceeded(ILogger logger, string jobId, long bytes, double seconds);

    [LoggerMessage(5022, LogLevel.Warning, "Job {JobId}: failed: {Error}")]
    public static partial void JobFailed(ILogger logger, string jobId, string error, Exception exception);

    [LoggerMessage(5026, LogLevel.Warning, "Job {JobId}: failed: {Error}")]
    public static partial void JobRefused(ILogger logger, string jobId, string error);

    [LoggerMessage(5023, LogLevel.Information, "Job {JobId}: cancelled")]
    public static partial void JobCancelled(ILogger logger, string jobId);

    [LoggerMessage(5024, LogLevel.Warning, "Job {JobId}: cleanup failed: {Error}")]
    public static partial void JobCleanupFailed(ILogger logger, string jobId, string error);

    [LoggerMessage(5025, LogLevel.Information, "Job {JobId}: removed the unfinished volume {Volume}")]
    public static partial void JobRemovedVolume(ILogger logger, string jobId, string volume);

    [LoggerMessage(5030, LogLevel.Debug, "Job {JobId}: running {Command}")]
    public static partial void RunningTool(ILogger logger, string jobId, string command);
}
