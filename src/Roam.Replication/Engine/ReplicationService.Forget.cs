using Roam.Replication.Source;

namespace Roam.Replication.Engine;

public sealed partial class ReplicationService
{
    /// <summary>
    /// Drops what replication keeps about a volume that is about to be deleted. Refused while it has
    /// replicas or is one. A primary whose last replica was removed still holds the volume open here
    /// (its replicating device and activity log); this lets go of it, so the store can delete it, and
    /// removes its state file, activity log and bitmaps, so a later volume of the same name starts clean.
    /// </summary>
    public async Task ForgetVolumeAsync(string volume, CancellationToken cancellationToken = default)
    {
        await _admin.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            ReplicatedVolume? primary;
            ReplicationFile? file;
            lock (_gate)
            {
                _primaries.TryGetValue(volume, out primary);
                _files.TryGetValue(volume, out file);
            }
            if (file?.Role == VolumeRole.Replica)
                throw new ReplicationException($"volume '{volume}' is a replica here; promote it first");
            if (primary is not null)
            {
                // A parted link (this host was promoted away from its old primary) replicates nothing: it goes with the volume.
                if (primary.Links.Where(l => !l.Parted).ToList() is { Count: > 0 } replicas)
                    throw new ReplicationException($"volume '{volume}' is replicated to {string.Join(", ", replicas.Select(l => l.Peer))}");
                if (primary.PendingHandOver is not null)
                    throw new ReplicationException($"a hand-over of '{volume}' is in doubt; it must be settled first");
                // The primary's own lease is one of the store's; any more are NBD clients still connected.
                int clients = Store.Status(volume).OpenCount - 1;
                if (clients > 0)
                    throw new ReplicationException($"volume '{volume}' is in use ({clients} open connection(s)); disconnect its clients first");
                lock (_gate) _primaries.Remove(volume);
                await primary.DisposeAsync().ConfigureAwait(false);
            }
            lock (_gate) _files.Remove(volume);
            TryDelete(StatePath(volume));
            TryDelete(ActivityLogPath(volume));
            foreach (var bitmap in Directory.EnumerateFiles(_dir, volume + ".*.bitmap")) TryDelete(bitmap);
            DeleteDivergedFiles(volume);
        }
        finally { _admin.Release(); }
    }
}
