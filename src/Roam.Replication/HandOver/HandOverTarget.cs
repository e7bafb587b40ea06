using System.Diagnostics;
using Microsoft.Extensions.Logging;
using Roam.Peers.Protocol;
using Roam.Replication.Engine;
using Roam.Replication.Protocol;
using Roam.Replication.Source;
using Roam.Replication.Target;
using Roam.Replication.Volumes;
using Roam.Storage.Tracking;

namespace Roam.Replication.HandOver;

/// <summary>The hand-over, destination side: a replica here becomes the primary when its primary's HandOver frame says so.</summary>
internal sealed class HandOverTarget(ReplicationService service)
{
    private ILogger Logger => service.Logger;

    /// <summary>
    /// Target side of HandOver: this replica becomes the primary under the generations the old primary
    /// chose, durably, before the frame is acknowledged. Null when done, else why it is refused.
    /// </summary>
    public string? AcceptHandOver(string volume, string peer, PeerHandOver handOver, ReplicaSession session, long received)
    {
        var entry = service.Volumes.Find(volume);
        if (entry is null) return $"'{volume}' is not a replica of {peer} here any more";
        lock (entry.Gate)
        {
            if (!entry.IsReplica || !ReferenceEquals(entry.Session, session))
                return $"'{volume}' is not a replica of {peer} here any more";
            bool keep = (handOver.Flags & PeerHandOverFlags.KeepOldPrimary) != 0;
            var mode = (handOver.Flags & PeerHandOverFlags.AsyncLink) != 0 ? ReplicaMode.Async : ReplicaMode.Sync;
            var generations = handOver.Generations;
            long flushed = Stopwatch.GetTimestamp();
            long size = service.Store.Get(volume).Size;
            List<ReplicaRecord> replicas = keep ? [new ReplicaRecord(peer, mode, generations.Current)] : [];
            // What the old primary will hold once it steps down is exactly what is here: nothing to resync. Not synced
            // (this runs in a VM's pause): a crash that loses the file costs a full resync to the old primary, no data.
            if (keep) new RegionBitmap(size, service.Options.RegionSize).Save(service.Paths.Bitmap(volume, peer), synced: false);
            // Its other replicas, with what each may lack: saved before the promotion is (and so before it is
            // acknowledged), so a crash here right after cannot forget what they miss.
            foreach (var other in handOver.Replicas ?? [])
            {
                if (other.Peer == service.Identity.Name || other.Peer == peer)
                {
                    Log.ReplicaTakenOver(Logger, volume, peer, other.Peer, "skipped: it names this host or the old primary");
                    continue;
                }
                if (service.Trust.Find(other.Peer) is null)
                {
                    Log.ReplicaTakenOver(Logger, volume, peer, other.Peer,
                        $"not taken over: it is not a trusted peer of {service.Identity.Name}; trust it and add the replica here (it keeps its data)");
                    continue;
                }
                var bitmap = new RegionBitmap(size, service.Options.RegionSize);
                foreach (var extent in other.OutOfSync)
                    if (extent.Offset < (ulong)size) bitmap.MarkDirty((long)extent.Offset, (long)Math.Min(extent.Length, (ulong)size - extent.Offset));
                bitmap.Save(service.Paths.Bitmap(volume, other.Peer));
                bool async = (other.Flags & PeerHandOverReplicaFlags.Async) != 0, paused = (other.Flags & PeerHandOverReplicaFlags.Paused) != 0;
                replicas.Add(new ReplicaRecord(other.Peer, async ? ReplicaMode.Async : ReplicaMode.Sync, other.SyncedGeneration, paused, other.Bandwidth));
                Log.ReplicaTakenOver(Logger, volume, peer, other.Peer,
                    $"taken over ({(async ? "async" : "sync")}{(paused ? ", paused" : "")}): {bitmap.DirtyBytes} bytes out of sync, "
                    + $"last in sync at generation {other.SyncedGeneration?.ToString() ?? "none"}");
            }
            var promoted = new ReplicationFile(1, VolumeRole.Primary, generations.Current, [.. generations.History], replicas, null);
            ReplicationPaths.TryDelete(service.Paths.ActivityLog(volume));
            long bitmapSaved = Stopwatch.GetTimestamp();
            promoted.Write(service.Paths.State(volume));
            long stateWritten = Stopwatch.GetTimestamp();
            entry.File = promoted;
            entry.Session = null;
            if (replicas.Count > 0)
            {
                var replicated = ReplicatedVolume.Open(service, service.Store.Open(volume), promoted, Logger);
                entry.Primary = replicated;
                replicated.StartLinks();
            }
            static double Ms(long from, long to) => Stopwatch.GetElapsedTime(from, to).TotalMilliseconds;
            long opened = Stopwatch.GetTimestamp();
            Log.PromotedByHandOver(Logger, volume, peer, generations.Current, Ms(received, opened), Ms(received, flushed),
                Ms(flushed, bitmapSaved), Ms(bitmapSaved, stateWritten), Ms(stateWritten, opened));
            return null;
        }
    }
}
