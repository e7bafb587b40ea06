using Roam.Storage.Tracking;

namespace Roam.Replication.Engine;

public sealed record ReplicationOptions
{
    /// <summary>How long a write waits for a sync replica's acknowledgement before the replica is marked OutOfSync.</summary>
    public TimeSpan SyncTimeout { get; init; } = TimeSpan.FromSeconds(5);

    /// <summary>Unacknowledged bytes an async replica may have queued; beyond it writes go to its bitmap.</summary>
    public long AsyncQueueBytes { get; init; } = 64L * 1024 * 1024;

    /// <summary>LZ4 on Write frames where it pays (see <see cref="Source.CompressionGovernor"/>), or never.</summary>
    public WireCompression Compression { get; init; } = WireCompression.Auto;

    /// <summary>Bitmap granularity: the unit of resync.</summary>
    public int RegionSize { get; init; } = RegionBitmap.DefaultRegionSize;

    public int ActivityLogExtentSize { get; init; } = ActivityLog.DefaultExtentSize;

    public int ActivityLogCapacity { get; init; } = ActivityLog.DefaultCapacity;

    /// <summary>Resync regions in flight at once, per replica.</summary>
    public int ResyncWindow { get; init; } = 16;

    public TimeSpan ReconnectMinDelay { get; init; } = TimeSpan.FromMilliseconds(200);

    public TimeSpan ReconnectMaxDelay { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>Connect, Attach and AttachAck must be done within this.</summary>
    public TimeSpan AttachTimeout { get; init; } = TimeSpan.FromSeconds(10);

    public TimeSpan BitmapSaveInterval { get; init; } = TimeSpan.FromSeconds(1);

    /// <summary>How long a hand-over may keep writes stopped (catching up, flushing, waiting for the promotion) before it gives up.</summary>
    public TimeSpan HandOverTimeout { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>An attached link with nothing else to send sends a Heartbeat this often (the peer acknowledges it).</summary>
    public TimeSpan HeartbeatInterval { get; init; } = TimeSpan.FromSeconds(1);

    /// <summary>
    /// A link that has received no frame at all from its peer for this long is dead (a peer that hung or
    /// vanished without a reset): the replica is marked OutOfSync and the link reconnects. A replica whose
    /// primary sent nothing (not even a heartbeat) for this long ends that session.
    /// </summary>
    public TimeSpan HeartbeatTimeout { get; init; } = TimeSpan.FromSeconds(5);

    /// <summary>How often a volume whose hand-over outcome is unknown (after a crash) asks the destination again.</summary>
    public TimeSpan HandOverRetryInterval { get; init; } = TimeSpan.FromSeconds(2);
}

public enum WireCompression
{
    /// <summary>LZ4 on writes that compress by at least an eighth; incompressible data is detected and skipped.</summary>
    Auto,
    Off,
}
