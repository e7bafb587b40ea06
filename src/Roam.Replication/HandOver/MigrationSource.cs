using System.Diagnostics;
using Microsoft.Extensions.Logging;
using Roam.Replication.Engine;
using Roam.Replication.Source;

namespace Roam.Replication.HandOver;

/// <summary>
/// Live migration of a volume, the DRBD way, as its source runs it: the destination becomes a sync replica (a
/// bitmap-driven resync of what it lacks, every new write mirrored synchronously), and once it is in sync the
/// hand-over (<see cref="HandOverSource"/>) moves the primary role. This room prepares, reports, waits and aborts.
/// </summary>
internal sealed class MigrationSource(ReplicationService service)
{
    private ILogger Logger => service.Logger;

    /// <summary>
    /// Makes (or reuses) a replica of <paramref name="volume"/> on <paramref name="peer"/> in sync mode and
    /// starts or continues its resync: a peer that already holds a replica gets only what its bitmap marks.
    /// </summary>
    /// <param name="bandwidth">When given, the replica link's limit from now on, in bytes per second on the wire (0: none).</param>
    public async Task<MigrationStatus> PrepareAsync(string volume, string peer, long? bandwidth, CancellationToken cancellationToken)
    {
        if (service.Trust.Find(peer) is null) throw new ReplicationException(ReplicationError.UnknownPeer, $"no trusted peer is named {peer}");
        service.Store.Get(volume);
        _ = ReplicationService.WarmUpHandOver();
        var entry = service.Volumes.Get(volume);
        ReplicatedVolume? primary;
        lock (entry.Gate)
        {
            if (entry.File is { Role: VolumeRole.Replica } file)
                throw new ReplicationException(ReplicationError.NotPrimary, $"volume '{volume}' is a replica here; migrate it from its primary {file.PrimaryPeer}");
            if (entry.Migration is { Phase: VolumeMigrationPhase.HandingOver } running)
                throw new ReplicationException(ReplicationError.HandingOver, $"volume '{volume}' is being handed over to {running.Peer}");
            primary = entry.Primary;
        }
        if (primary?.PendingHandOver is { } doubt)
            throw new ReplicationException(ReplicationError.HandOverInDoubt, $"a hand-over of '{volume}' to {doubt.Peer} is in doubt: it is settled first (read-only until then)");
        var link = primary?.Links.FirstOrDefault(l => l.Peer == peer);
        bool restorePaused;
        ReplicaMode restoreMode;
        long restoreBandwidth = bandwidth ?? 0;
        bool newLink = primary is null || link is null;
        if (primary is null || link is null)
        {
            await service.AddReplicaAsync(volume, peer, ReplicaMode.Sync, bandwidth ?? 0, cancellationToken).ConfigureAwait(false);
            lock (entry.Gate) primary = entry.Primary!;
            link = primary.Links.First(l => l.Peer == peer);
            restorePaused = true;
            restoreMode = ReplicaMode.Sync;
        }
        else
        {
            lock (entry.Gate)
            {
                // A retry after an abort restores what the first prepare found.
                if (entry.Migration is { } previous && previous.Peer == peer && ReferenceEquals(previous.Link, link))
                    (restorePaused, restoreMode, restoreBandwidth) = (previous.RestorePaused, previous.RestoreMode, previous.RestoreBandwidth);
                else (restorePaused, restoreMode, restoreBandwidth) = (link.Paused, link.Mode, link.Bandwidth);
            }
            if (link.State is ReplicaState.SplitBrain or ReplicaState.Outdated or ReplicaState.Parted)
                throw new ReplicationException(link.State switch
                {
                    ReplicaState.SplitBrain => ReplicationError.SplitBrain,
                    ReplicaState.Outdated => ReplicationError.Outdated,
                    _ => ReplicationError.Parted,
                }, $"the replica of '{volume}' on {peer} is {link.State}; resolve that first");
            if (link.Mode != ReplicaMode.Sync || link.Paused || (bandwidth is { } limit && limit != link.Bandwidth))
            {
                link.Mode = ReplicaMode.Sync;
                if (bandwidth is { } b) link.Bandwidth = b;
                link.Resume();
                primary.SaveRecord(link);
            }
        }
        var migration = new VolumeMigration(volume, peer, link, restorePaused, restoreMode, newLink) { RestoreBandwidth = restoreBandwidth };
        lock (entry.Gate) entry.Migration = migration;
        Log.MigrationPrepared(Logger, volume, peer, link.Bitmap.DirtyBytes);
        return migration.Snapshot();
    }

    /// <summary>
    /// Switches a prepared migration's link between sync and async mirroring, for now only (not saved; an abort
    /// restores the replica's own mode). A VM migration mirrors asynchronously while QEMU copies the memory: the
    /// disk is in sync by then, and a guest write waiting for its round trip behind the memory stream would stall
    /// the guest; the hand-over still waits until the replica holds every write (IsCaughtUp), inside the pause, so
    /// <paramref name="asyncLagLimit"/> bounds that backlog in time (see <see cref="PeerLink.AsyncLagLimit"/>).
    /// </summary>
    public void SetMirroring(string volume, ReplicaMode mode, TimeSpan asyncLagLimit)
    {
        var migration = Find(volume) ?? throw new ReplicationException(ReplicationError.NoMigration, $"no migration of volume '{volume}' was prepared");
        migration.Link.AsyncLagLimit = mode == ReplicaMode.Async ? asyncLagLimit : TimeSpan.Zero;
        migration.Link.Mode = mode;
    }

    /// <summary>The migration of a volume (the last one, when it ended); throws when none was started.</summary>
    public MigrationStatus Get(string volume) =>
        FindStatus(volume) ?? throw new ReplicationException(ReplicationError.NoMigration, $"no migration of volume '{volume}' was started here");

    public MigrationStatus? FindStatus(string volume)
    {
        return Find(volume)?.Snapshot();
    }

    /// <summary>Waits until the destination holds every write made so far (and every new write is mirrored synchronously).</summary>
    public async Task WaitInSyncAsync(string volume, CancellationToken cancellationToken)
    {
        while (true)
        {
            var status = Get(volume);
            switch (status.Phase)
            {
                case VolumeMigrationPhase.InSync: return;
                case VolumeMigrationPhase.Aborted or VolumeMigrationPhase.Completed or VolumeMigrationPhase.HandingOver:
                    throw new ReplicationException(ReplicationError.MigrationNotActive, $"migration of '{volume}' is {status.Phase}");
                case VolumeMigrationPhase.Failed:
                    throw new ReplicationException(ReplicationError.MigrationFailed, $"migration of '{volume}' failed: {status.Error}");
            }
            await Task.Delay(10, cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>The volume's migration (the last one, when it ended), or null.</summary>
    public VolumeMigration? Find(string volume)
    {
        if (service.Volumes.Find(volume) is not { } entry) return null;
        lock (entry.Gate) return entry.Migration;
    }

    /// <summary>
    /// Abandons a migration before its hand-over: this host stays primary with writes flowing (a replica
    /// the migration created is paused, a reused one gets its mode back); the destination keeps what it
    /// copied as an out-of-sync replica and this host keeps its bitmap, so a retry resumes.
    /// </summary>
    public async Task AbortAsync(string volume)
    {
        await service.Admin.WaitAsync().ConfigureAwait(false);
        try
        {
            var migration = Find(volume) ?? throw new ReplicationException(ReplicationError.NoMigration, $"no migration of volume '{volume}' was started here");
            if (migration.Phase is VolumeMigrationPhase.Completed or VolumeMigrationPhase.HandingOver)
                throw new ReplicationException(ReplicationError.MigrationNotActive, $"migration of '{volume}' is {migration.Phase}: too late to abort");
            if (migration.Phase == VolumeMigrationPhase.Aborted) return;
            var primary = service.Lookup(volume).Primary;
            if (primary is not null && primary.Gate.IsFrozen && await service.Doubts.ResolveUnknownAsync(migration, primary).ConfigureAwait(false))
                throw new ReplicationException(ReplicationError.AlreadyHandedOver, $"the hand-over of '{volume}' to {migration.Peer} had completed: nothing to abort");
            var link = migration.Link;
            if (primary is not null && primary.Links.Contains(link))
            {
                if (migration.RestorePaused) await link.PauseAsync().ConfigureAwait(false);
                link.Mode = migration.RestoreMode;
                link.AsyncLagLimit = TimeSpan.Zero;
                link.Bandwidth = migration.RestoreBandwidth;
                primary.SaveRecord(link);
                primary.SaveBitmaps();
            }
            migration.End(VolumeMigrationPhase.Aborted, null);
            Log.MigrationAborted(Logger, volume, migration.Peer);
        }
        finally { service.Admin.Release(); }
    }

    /// <summary>Prepare, wait in sync (reporting progress), hand over. Cancelled before the hand-over, the migration is aborted.</summary>
    public async Task<MigrationResult> MigrateAsync(string volume, string peer, bool keepReplica, IProgress<MigrationStatus>? progress,
        CancellationToken cancellationToken, long? bandwidth)
    {
        var watch = Stopwatch.StartNew();
        var prepared = await PrepareAsync(volume, peer, bandwidth, cancellationToken).ConfigureAwait(false);
        progress?.Report(prepared);
        try
        {
            while (true)
            {
                var status = Get(volume);
                progress?.Report(status);
                if (status.Phase == VolumeMigrationPhase.InSync) break;
                if (status.Phase is VolumeMigrationPhase.Failed or VolumeMigrationPhase.Aborted)
                    throw new ReplicationException(status.Phase == VolumeMigrationPhase.Failed ? ReplicationError.MigrationFailed : ReplicationError.MigrationNotActive,
                        $"migration of '{volume}' to {peer}: {status.Phase}: {status.Error}");
                await Task.Delay(50, cancellationToken).ConfigureAwait(false);
            }
            var handOver = await service.HandOvers.HandOverAsync(volume, keepReplica, cancellationToken, promoted: null).ConfigureAwait(false);
            var final = Get(volume);
            progress?.Report(final);
            return new MigrationResult(final, handOver, watch.Elapsed);
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            if (Find(volume)?.Phase is VolumeMigrationPhase.Preparing or VolumeMigrationPhase.Copying or VolumeMigrationPhase.InSync)
                await AbortAsync(volume).ConfigureAwait(false);
            throw;
        }
    }
}
