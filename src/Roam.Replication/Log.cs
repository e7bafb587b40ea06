using Microsoft.Extensions.Logging;

namespace Roam.Replication;

internal static partial class Log
{
    [LoggerMessage(3100, LogLevel.Information, "[{Volume}] replica added on {Peer} ({Mode})")]
    public static partial void ReplicaAdded(ILogger logger, string volume, string peer, string mode);

    [LoggerMessage(3101, LogLevel.Information, "[{Volume} -> {Peer}] {Decision}")]
    public static partial void SyncDecided(ILogger logger, string volume, string peer, string decision);

    [LoggerMessage(3102, LogLevel.Error, "[{Volume} -> {Peer}] split brain: this host is at generation {Local}, the peer at {Remote}; nothing syncs until resolved")]
    public static partial void SplitBrain(ILogger logger, string volume, string peer, Guid local, Guid remote);

    [LoggerMessage(3103, LogLevel.Information, "[{Volume} -> {Peer}] attached ({Mode}), {OutOfSync} bytes out of sync")]
    public static partial void LinkUp(ILogger logger, string volume, string peer, string mode, long outOfSync);

    [LoggerMessage(3104, LogLevel.Warning, "[{Volume} -> {Peer}] link down: {Message}")]
    public static partial void LinkFailed(ILogger logger, string volume, string peer, string message);

    [LoggerMessage(3105, LogLevel.Warning, "[{Volume} -> {Peer}] no acknowledgement within {Milliseconds} ms: replica marked OutOfSync, writes continue locally")]
    public static partial void SyncTimeout(ILogger logger, string volume, string peer, double milliseconds);

    [LoggerMessage(3106, LogLevel.Information, "[{Volume} -> {Peer}] in sync ({Resynced} bytes resynced so far)")]
    public static partial void InSync(ILogger logger, string volume, string peer, long resynced);

    [LoggerMessage(3107, LogLevel.Information, "[{Volume}] new data generation {Generation} (was {Previous}): a replica is away")]
    public static partial void NewGeneration(ILogger logger, string volume, Guid generation, Guid previous);

    [LoggerMessage(3108, LogLevel.Warning, "[{Volume}] unclean shutdown: {Extents} activity-log extents marked out of sync on every replica")]
    public static partial void ActivityLogReplayed(ILogger logger, string volume, int extents);

    [LoggerMessage(3109, LogLevel.Warning, "[{Volume}] saving bitmaps failed: {Message}")]
    public static partial void BitmapSaveFailed(ILogger logger, string volume, string message);

    [LoggerMessage(3110, LogLevel.Warning, "replication state for '{Volume}' has no volume; ignored")]
    public static partial void StateWithoutVolume(ILogger logger, string volume);

    [LoggerMessage(3111, LogLevel.Warning, "[{Volume}] promoted to primary at generation {Generation} (force: {Force})")]
    public static partial void Promoted(ILogger logger, string volume, Guid generation, bool force);

    [LoggerMessage(3120, LogLevel.Information, "[{Volume} <- {Peer}] replica volume created ({Size} bytes)")]
    public static partial void ReplicaCreated(ILogger logger, string volume, string peer, long size);

    [LoggerMessage(3121, LogLevel.Information, "[{Volume} <- {Peer}] attached as replica")]
    public static partial void ReplicaAttached(ILogger logger, string volume, string peer);

    [LoggerMessage(3122, LogLevel.Warning, "[{Volume} <- {Peer}] replica session ended: {Message}")]
    public static partial void ReplicaSessionFailed(ILogger logger, string volume, string peer, string message);

    [LoggerMessage(3112, LogLevel.Warning, "[{Volume}] {Peer} attached as this volume's primary with older data: it is outdated (this host was promoted); nothing syncs until it is resolved")]
    public static partial void RivalOutdated(ILogger logger, string volume, string peer);
}
