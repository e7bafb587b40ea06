using Microsoft.Extensions.Logging;

namespace Roam.Replication;

internal static partial class Log
{
    [LoggerMessage(3130, LogLevel.Information, "[{Volume} -> {Peer}] migration prepared: {OutOfSync} bytes to copy")]
    public static partial void MigrationPrepared(ILogger logger, string volume, string peer, long outOfSync);

    [LoggerMessage(3131, LogLevel.Information, "[{Volume} -> {Peer}] handed over: writes stopped {Milliseconds} ms ({Steps}), new generation {Generation}")]
    public static partial void HandedOver(ILogger logger, string volume, string peer, double milliseconds, string steps, Guid generation);

    [LoggerMessage(3132, LogLevel.Warning, "[{Volume} -> {Peer}] {Message}")]
    public static partial void HandOverFailed(ILogger logger, string volume, string peer, string message);

    [LoggerMessage(3133, LogLevel.Information, "[{Volume}] now a replica of {Peer} (generation {Generation})")]
    public static partial void Demoted(ILogger logger, string volume, string peer, Guid generation);

    [LoggerMessage(3134, LogLevel.Information, "[{Volume} <- {Peer}] promoted by hand-over at generation {Generation} in {Ms:0.0} ms (flush {FlushMs:0.0}, bitmap {BitmapMs:0.0}, state {StateMs:0.0}, open {OpenMs:0.0})")]
    public static partial void PromotedByHandOver(ILogger logger, string volume, string peer, Guid generation, double ms, double flushMs, double bitmapMs, double stateMs, double openMs);

    [LoggerMessage(3135, LogLevel.Information, "[{Volume} -> {Peer}] migration aborted: still primary here, the replica keeps what it copied")]
    public static partial void MigrationAborted(ILogger logger, string volume, string peer);
}

internal static partial class Log
{
    [LoggerMessage(3136, LogLevel.Warning, "[{Volume}] split brain resolved: {Keeper} {What}")]
    public static partial void SplitBrainResolved(ILogger logger, string volume, string keeper, string what);
}

internal static partial class Log
{
    [LoggerMessage(3137, LogLevel.Information, "[{Volume} -> {Peer}] replica removed: link, record and bitmap dropped")]
    public static partial void ReplicaRemoved(ILogger logger, string volume, string peer);

    [LoggerMessage(3138, LogLevel.Information, "[{Volume} / {Peer}] detach: {What}")]
    public static partial void ReplicaDetached(ILogger logger, string volume, string peer, string what);

    [LoggerMessage(3139, LogLevel.Warning, "[{Volume} -> {Peer}] {Message}")]
    public static partial void HandOverInDoubt(ILogger logger, string volume, string peer, string message);
}

internal static partial class Log
{
    [LoggerMessage(3140, LogLevel.Warning, "[{Volume} -> {Peer}] replicas {Replicas}: {Message}")]
    public static partial void ReplicasNotHandedOff(ILogger logger, string volume, string peer, string replicas, string message);

    [LoggerMessage(3141, LogLevel.Information, "[{Volume} <- {Peer}] replica {Replica} of the old primary {What}")]
    public static partial void ReplicaTakenOver(ILogger logger, string volume, string peer, string replica, string what);

    [LoggerMessage(3142, LogLevel.Information, "[{Volume} -> {Peer}] hands over replica {Replica} ({Mode}, {OutOfSync} bytes out of sync)")]
    public static partial void ReplicaHandedOff(ILogger logger, string volume, string peer, string replica, string mode, long outOfSync);
}
