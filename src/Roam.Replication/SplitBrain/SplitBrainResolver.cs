using Roam.Storage.Layers;
using Microsoft.Extensions.Logging;
using Roam.Replication.Engine;
using Roam.Replication.Source;
using Roam.Replication.Volumes;

namespace Roam.Replication.SplitBrain;

/// <summary>A split brain's resolve: which side's data is kept, on either side.</summary>
internal sealed class SplitBrainResolver(ReplicationService service)
{
    private ILogger Logger => service.Logger;

    /// <summary>
    /// Resolves a split brain: <paramref name="keepHost"/>'s data wins. Run it on both hosts (in any
    /// order). On the host that loses, the volume becomes a replica of <paramref name="keepHost"/> (a
    /// replicated primary's writes are refused from then on) with no generation, and nothing is
    /// overwritten yet; it keeps the regions it wrote apart (its bitmap for the keeper: an old primary's
    /// link, or a promoted replica's parted link) in a file, and hands them over when the keeper attaches.
    /// On the host that keeps, the link to the loser keeps its bitmap (what this side wrote apart, and
    /// what the loser never acknowledged) and adds the loser's regions to it when it attaches: the copy
    /// is the union of both, DRBD's bitmap-based resolve. Whatever is missing (an older peer, a volume
    /// promoted by an older version, bitmaps lost) makes it a copy of the whole volume, never less.
    ///
    /// Either order works: a keeper that resolves first waits, its link seeing the loser still primary; a
    /// loser that resolves first is picked up by the keeper's link, which merges its regions at once (an
    /// old primary's link reconnects by itself; a promoted keeper's parted link waits for its resolve).
    /// A crash between the two resolves loses nothing: the loser's file and the keeper's record are durable,
    /// and the loser sends its file again on every attach until a complete copy gives it a generation.
    /// </summary>
    public async Task<ReplicationStatus> ResolveAsync(string volume, string keepHost, CancellationToken cancellationToken)
    {
        service.Store.Get(volume);
        if (keepHost != service.Identity.Name && service.Trust.Find(keepHost) is null)
            throw new ReplicationException(ReplicationError.UnknownPeer, $"{keepHost} is neither this host ({service.Identity.Name}) nor a trusted peer");
        await service.Admin.WaitAsync(cancellationToken).ConfigureAwait(false);
        var entry = service.Volumes.Get(volume);
        lock (entry.Gate) entry.Rival = null;
        string? addPeer = null;
        try
        {
            ReplicatedVolume? primary;
            ReplicationFile? file;
            lock (entry.Gate) (primary, file) = (entry.Primary, entry.File);
            if (keepHost == service.Identity.Name)
            {
                if (file is { Role: VolumeRole.Replica }) throw new ReplicationException(ReplicationError.NotPrimary, $"volume '{volume}' is a replica here: there is no data of its own to keep");
                var torn = primary?.Links.Where(l => l.State is ReplicaState.SplitBrain or ReplicaState.Outdated or ReplicaState.Parted).ToList() ?? [];
                foreach (var link in torn)
                {
                    bool parted = link.Parted;
                    if (!link.KeepLocal()) continue;
                    primary!.SaveResolved(link);
                    if (parted) link.Start(null);   // it never connected while parted
                }
                // An outdated copy was fenced when that was found (see PeerLink.Decide): kept, it takes writes again.
                if (torn.Any(l => l.IsFenced) && primary!.PendingHandOver is null) { foreach (var l in torn) l.LiftFence(); primary.Gate.Reopen(); }
                if (torn.Count == 0)
                {
                    // Promoted by an older version (no parted link): nothing here knows what was written since, so the
                    // link added to the old primary, the host that loses, copies the whole volume.
                    addPeer = file?.PrimaryPeer;
                    if (addPeer is null) return service.GetStatus(volume);
                    Log.SyncDecided(Logger, volume, addPeer, "no record of what was written here since the promotion: the whole volume is copied");
                }
                Log.SplitBrainResolved(Logger, volume, keepHost, "keeps its data; the other side will be overwritten where either side wrote apart");
            }
            else
            {
                if (file is { Role: VolumeRole.Replica } && file.PrimaryPeer == keepHost)
                {
                    // Already lost to the keeper (a second resolve): its copy is under way or done, and the regions kept
                    // for it stay until it is complete. Starting over would only make the keeper copy everything.
                    Log.SplitBrainResolved(Logger, volume, keepHost, "wins; this host already follows it");
                    return service.GetStatus(volume);
                }
                // Writes stop first (on NBD connections already open too) and those in flight finish, then the role goes.
                WriteFence? fence;
                lock (entry.Gate) fence = entry.Fence;
                var gate = primary?.Gate ?? fence;
                string reason = $"volume '{volume}' lost a split brain to {keepHost}: it is read-only on this host now";
                bool drained = true;
                if (gate is not null)
                {
                    gate.Freeze();
                    try { await gate.DrainAsync().WaitAsync(service.Options.HandOverTimeout, cancellationToken).ConfigureAwait(false); }
                    catch (TimeoutException) { drained = false; }
                    catch (OperationCanceledException)
                    {
                        gate.Thaw();
                        throw;
                    }
                }
                KeepDivergedRegions(volume, keepHost, primary, drained);
                var demoted = new ReplicationFile(1, VolumeRole.Replica, Guid.Empty, [], [], keepHost);
                lock (entry.Gate)
                {
                    demoted.Write(service.Paths.State(volume));
                    entry.File = demoted;
                    entry.Primary = null;
                }
                // A promoted replica is a replicated primary now (its parted link), with no fence of its own: one is closed
                // anyway, so that writes on connections already open say why they are refused.
                (fence ?? entry.FenceOf()).Close(reason);
                if (primary is not null)
                {
                    primary.Gate.Close(reason);
                    var links = primary.Links;
                    await primary.DisposeAsync().ConfigureAwait(false);
                    foreach (var l in links) ReplicationPaths.TryDelete(service.Paths.Bitmap(volume, l.Peer));
                }
                ReplicationPaths.TryDelete(service.Paths.ActivityLog(volume));
                Log.SplitBrainResolved(Logger, volume, keepHost, "wins; this host's data will be overwritten by it");
                return service.GetStatus(volume);
            }
        }
        finally { service.Admin.Release(); }
        if (addPeer is not null && !service.GetStatus(volume).Replicas.Any(r => r.Peer == addPeer))
            await service.AddReplicaAsync(volume, addPeer, ReplicaMode.Sync, cancellationToken: cancellationToken).ConfigureAwait(false);
        return service.GetStatus(volume);
    }

    /// <summary>
    /// The losing side of a resolve, writes stopped: saves the regions this host wrote apart from
    /// <paramref name="keepHost"/> (its link's bitmap for it), before the state file says it lost, so a crash
    /// in between leaves it a primary that simply resolves again. With no such bitmap the file is removed
    /// (a stale one must never stand for this split brain) and the keeper copies the whole volume.
    /// </summary>
    private void KeepDivergedRegions(string volume, string keepHost, ReplicatedVolume? primary, bool drained)
    {
        var path = service.Paths.Diverged(volume, keepHost);
        var link = primary?.Links.FirstOrDefault(l => l.Peer == keepHost);
        string? missing = primary is null ? $"this host tracked no writes for {keepHost} (a plain primary, a replica, or promoted by an older version)"
            : link is null ? $"this host has no replica link to {keepHost}"
            : !drained ? "writes in flight did not finish in time"
            : null;
        if (missing is null)
        {
            // Every completed write is marked (the gate is drained); a crash before this point replays the activity
            // log into the link's bitmap on restart, and this host is still primary then.
            link!.Bitmap.Save(path);
            service.Diverged.DeleteFiles(volume, except: path);
            Log.SplitBrainResolved(Logger, volume, keepHost, $"wins; the {link.Bitmap.DirtyBytes} bytes this host wrote apart (or never got acknowledged) are handed over, so only those and {keepHost}'s are copied");
        }
        else
        {
            service.Diverged.DeleteFiles(volume);
            Log.SplitBrainResolved(Logger, volume, keepHost, $"wins; {missing}: it will copy the whole volume over this one");
        }
    }
}
