using Roam.Storage.Layers;
using Roam.Replication.HandOver;
using Roam.Replication.Source;
using Roam.Storage.Tracking;
using Roam.Storage.Volumes;

namespace Roam.Replication.Engine;

// The volume migration's public surface; the work is in HandOver/ (MigrationSource, HandOverSource, HandOverDoubts).
public sealed partial class ReplicationService
{
    /// <summary>
    /// Makes (or reuses) a replica of <paramref name="volume"/> on <paramref name="peer"/> in sync mode and
    /// starts or continues its resync: a peer that already holds a replica gets only what its bitmap marks.
    /// </summary>
    /// <param name="bandwidth">When given, the replica link's limit from now on, in bytes per second on the wire (0: none).</param>
    public Task<MigrationStatus> PrepareMigrationAsync(string volume, string peer, long? bandwidth = null, CancellationToken cancellationToken = default) =>
        Migrations.PrepareAsync(volume, peer, bandwidth, cancellationToken);

    /// <inheritdoc cref="MigrationSource.SetMirroring"/>
    public void SetMigrationMirroring(string volume, ReplicaMode mode, TimeSpan asyncLagLimit = default) =>
        Migrations.SetMirroring(volume, mode, asyncLagLimit);

    /// <summary>Compiles both sides of a hand-over in the background (see <see cref="JitWarmup"/>): the source's now, the
    /// destination's when a VM is about to arrive.</summary>
    public static Task WarmUpHandOver() => JitWarmup.PrepareAsync(typeof(ReplicationService), typeof(VolumeMigration), typeof(PeerLink),
        typeof(ReplicatedVolume), typeof(Target.ReplicaSession), typeof(Protocol.ReplicationFrameWriter), typeof(Peers.Protocol.PeerFrameWriter), typeof(Protocol.PeerHandOver),
        typeof(OutFrame), typeof(WriteFence), typeof(ReplicationFile), typeof(RegionBitmap), typeof(ActivityLog), typeof(DurableFile),
        typeof(HandOverSource), typeof(HandOverTarget), typeof(Volumes.VolumeReplication));

    /// <summary>The migration of a volume (the last one, when it ended); throws when none was started.</summary>
    public MigrationStatus GetMigration(string volume) => Migrations.Get(volume);

    public MigrationStatus? FindMigration(string volume) => Migrations.FindStatus(volume);

    /// <summary>Waits until the destination holds every write made so far (and every new write is mirrored synchronously).</summary>
    public Task WaitInSyncAsync(string volume, CancellationToken cancellationToken = default) => Migrations.WaitInSyncAsync(volume, cancellationToken);

    /// <summary>
    /// Moves the primary role to the migration's destination: writes stop (new ones wait, and fail as
    /// read-only once the role moved), in-flight writes drain, the destination flushes, then HandOver
    /// makes it the primary under a new generation. This host becomes its replica
    /// (<paramref name="keepReplica"/>) or drops the volume. <paramref name="promoted"/> is called as soon as the
    /// destination confirmed, before this host steps down: a paused VM may go on from there (writes here stay stopped).
    /// </summary>
    public Task<HandOverResult> HandOverAsync(string volume, bool keepReplica = true, CancellationToken cancellationToken = default,
        Action? promoted = null) => HandOvers.HandOverAsync(volume, keepReplica, cancellationToken, promoted);

    /// <inheritdoc cref="MigrationSource.AbortAsync"/>
    public Task AbortMigrationAsync(string volume) => Migrations.AbortAsync(volume);

    /// <summary>Prepare, wait in sync (reporting progress), hand over. Cancelled before the hand-over, the migration is aborted.</summary>
    public Task<MigrationResult> MigrateAsync(string volume, string peer, bool keepReplica = true, IProgress<MigrationStatus>? progress = null,
        CancellationToken cancellationToken = default, long? bandwidth = null) =>
        Migrations.MigrateAsync(volume, peer, keepReplica, progress, cancellationToken, bandwidth);
}
