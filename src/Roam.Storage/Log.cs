using Microsoft.Extensions.Logging;

namespace Roam.Storage;

internal static partial class Log
{
    [LoggerMessage(1001, LogLevel.Information, "Created volume {Name} ({Size} bytes)")]
    public static partial void VolumeCreated(ILogger logger, string name, long size);

    [LoggerMessage(1002, LogLevel.Information, "Grew volume {Name} from {OldSize} to {NewSize} bytes")]
    public static partial void VolumeResized(ILogger logger, string name, long oldSize, long newSize);

    [LoggerMessage(1003, LogLevel.Information, "Deleted volume {Name}")]
    public static partial void VolumeDeleted(ILogger logger, string name);

    [LoggerMessage(1010, LogLevel.Warning, "Recovery: removed {File} ({Reason})")]
    public static partial void RecoveryRemoved(ILogger logger, string file, string reason);

    [LoggerMessage(1011, LogLevel.Error, "Recovery: skipped {What}: {Reason}")]
    public static partial void RecoverySkipped(ILogger logger, string what, string reason);

    [LoggerMessage(1012, LogLevel.Warning, "Recovery: volume {Name} data file was {Length} bytes after an unfinished grow; restored to {Size}")]
    public static partial void RecoveryFixed(ILogger logger, string name, long length, long size);
}
