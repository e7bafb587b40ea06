using Roam.Replication.Engine;
using Roam.Replication.Volumes;

namespace Roam.Replication.Source;

/// <summary>A primary's replicas: adding one, removing one (telling the peer), and forgetting a volume about to be deleted.</summary>
internal sealed class ReplicaAdmin(ReplicationService service)
{
    private Microsoft.Extensions.Logging.ILogger Logger => service.Logger;

    /// <summary>See <see cref="ReplicationService.AddReplicaAsync"/>.</summary>
    public async Task<ReplicationStatus> AddReplicaAsync(string volume, string peerName, ReplicaMode mode, long bandwidth, CancellationToken cancellationToken)
    {
        if (service.Trust.Find(peerName) is null) throw new ReplicationException(ReplicationError.UnknownPeer, $"no trusted peer is named {peerName}");
        await service.Admin.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            var info = service.Store.Get(volume);
            var entry = service.Volumes.Get(volume);
            ReplicatedVolume? replicated;
            ReplicationFile? file;
            lock (entry.Gate) (replicated, file) = (entry.Primary, entry.File);
            if (file is { Role: VolumeRole.Replica })
                throw new ReplicationException(ReplicationError.NotPrimary, $"volume '{volume}' is a replica here; only a primary can add replicas");
            if (replicated?.PendingHandOver is { } doubt)
                throw new ReplicationException(ReplicationError.HandOverInDoubt, $"a hand-over of '{volume}' to {doubt.Peer} is in doubt: it is settled first (read-only until then)");
            if (replicated?.Links.FirstOrDefault(l => l.Peer == peerName) is { } existing)
                throw existing.Parted
                    ? new ReplicationException(ReplicationError.Parted,
                        $"volume '{volume}' was promoted here away from {peerName}, which may still hold it as primary: settle that with "
                        + $"roam volume resolve {volume} --keep HOST (on both hosts), or drop the parted link with roam volume unreplicate {volume} --from {peerName}")
                    : new ReplicationException(ReplicationError.AlreadyReplicated, $"volume '{volume}' is already replicated to {peerName}");
            if (replicated is null)
            {
                file ??= new ReplicationFile(1, VolumeRole.Primary, Guid.NewGuid(), [], [], null);
                file.Write(service.Paths.State(volume));
                replicated = ReplicatedVolume.Open(service, service.Store.Open(info.Name), file, Logger);
                // From plain to replicated: changes in flight on the plain path finish first, and every later
                // one takes the replicating device, so none lands unmirrored after the copy read its region.
                var fence = entry.FenceOf();
                fence.Freeze();
                try
                {
                    await fence.DrainAsync().ConfigureAwait(false);
                    lock (entry.Gate) entry.Primary = replicated;
                }
                finally { fence.Thaw(); }
            }
            // A failed attach leaves a new replicated primary without replicas: open connections already write
            // through it and it behaves as a plain volume (deleting the volume lets go of it, see ForgetVolumeAsync).
            var attached = await service.Peers.AttachAsync(replicated, peerName, cancellationToken).ConfigureAwait(false);
            var link = replicated.AddLink(peerName, mode, bandwidth);
            lock (entry.Gate)
            {
                entry.File = ReplicationFile.Read(service.Paths.State(volume));
                entry.Primary = replicated;
            }
            link.Start(attached);
            Log.ReplicaAdded(Logger, volume, peerName, mode.ToString());
            return service.GetStatus(volume);
        }
        finally { service.Admin.Release(); }
    }

    /// <summary>
    /// Stops replicating <paramref name="volume"/> to <paramref name="peer"/>: the link goes down, its record
    /// and bitmap are dropped, and the peer (if reachable) is told to drop its replica role (it keeps the
    /// data as a volume of its own, which a later AddReplica will not overwrite). The result says whether
    /// the peer was told.
    /// </summary>
    public async Task<ReplicaRemoval> RemoveReplicaAsync(string volume, string peer, CancellationToken cancellationToken)
    {
        service.Store.Get(volume);
        await service.Admin.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            var entry = service.Volumes.Get(volume);
            ReplicatedVolume? primary;
            lock (entry.Gate)
            {
                primary = entry.Primary;
                if (entry.Migration is { } m && m.Peer == peer && m.Phase == VolumeMigrationPhase.HandingOver)
                    throw new ReplicationException(ReplicationError.HandingOver, $"volume '{volume}' is being handed over to {peer}");
            }
            var link = primary?.Links.FirstOrDefault(l => l.Peer == peer)
                ?? throw new ReplicationException(ReplicationError.NoSuchReplica, $"volume '{volume}' has no replica on {peer}");
            if (primary!.PendingHandOver is { } pending && pending.Peer == peer)
                throw new ReplicationException(ReplicationError.HandOverInDoubt, $"a hand-over of '{volume}' to {peer} is in doubt; it must be settled first");
            await link.DisposeAsync().ConfigureAwait(false);
            primary.RemoveLink(link);
            ReplicationPaths.TryDelete(service.Paths.Bitmap(volume, peer));
            lock (entry.Gate) entry.File = ReplicationFile.Read(service.Paths.State(volume));
            Log.ReplicaRemoved(Logger, volume, peer);
            // A parted link's peer never was this host's replica (it was this host's primary): nothing to tell it.
            if (link.Parted) return new ReplicaRemoval(service.GetStatus(volume), true, null);
            string? error = null;
            try
            {
                await service.Peers.DetachAsync(volume, peer, cancellationToken).ConfigureAwait(false);
                Log.ReplicaDetached(Logger, volume, peer, "dropped its replica role");
            }
            catch (Exception ex) when (ex is not OutOfMemoryException and not OperationCanceledException)
            {
                error = ex.Message;
                Log.ReplicaDetached(Logger, volume, peer, $"could not be told: {ex.Message}; it stays a (detached) replica there");
            }
            return new ReplicaRemoval(service.GetStatus(volume), error is null, error);
        }
        finally { service.Admin.Release(); }
    }

    /// <summary>
    /// Drops what replication keeps about a volume that is about to be deleted. Refused while it has
    /// replicas or is one. A primary whose last replica was removed still holds the volume open here
    /// (its replicating device and activity log); this lets go of it, so the store can delete it, and
    /// removes its state file, activity log and bitmaps, so a later volume of the same name starts clean.
    /// </summary>
    public async Task ForgetVolumeAsync(string volume, CancellationToken cancellationToken)
    {
        await service.Admin.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            var entry = service.Volumes.Find(volume);
            ReplicatedVolume? primary = null;
            ReplicationFile? file = null;
            if (entry is not null)
                lock (entry.Gate) (primary, file) = (entry.Primary, entry.File);
            if (file?.Role == VolumeRole.Replica)
                throw new ReplicationException(ReplicationError.NotPrimary, $"volume '{volume}' is a replica here; promote it first");
            if (primary is not null)
            {
                // A parted link (this host was promoted away from its old primary) replicates nothing: it goes with the volume.
                if (primary.Links.Where(l => !l.Parted).ToList() is { Count: > 0 } replicas)
                    throw new ReplicationException(ReplicationError.HasReplicas, $"volume '{volume}' is replicated to {string.Join(", ", replicas.Select(l => l.Peer))}");
                if (primary.PendingHandOver is not null)
                    throw new ReplicationException(ReplicationError.HandOverInDoubt, $"a hand-over of '{volume}' is in doubt; it must be settled first");
                // The primary's own lease is one of the store's; any more are NBD clients still connected.
                int clients = service.Store.Status(volume).OpenCount - 1;
                if (clients > 0)
                    throw new ReplicationException(ReplicationError.InUse, $"volume '{volume}' is in use ({clients} open connection(s)); disconnect its clients first");
                lock (entry!.Gate) entry.Primary = null;
                await primary.DisposeAsync().ConfigureAwait(false);
            }
            if (entry is not null)
                lock (entry.Gate) entry.File = null;
            ReplicationPaths.TryDelete(service.Paths.State(volume));
            ReplicationPaths.TryDelete(service.Paths.ActivityLog(volume));
            foreach (var bitmap in service.Paths.Bitmaps(volume)) ReplicationPaths.TryDelete(bitmap);
            service.Diverged.DeleteFiles(volume);
        }
        finally { service.Admin.Release(); }
    }
}
