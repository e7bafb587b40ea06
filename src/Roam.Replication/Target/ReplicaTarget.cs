using Microsoft.Extensions.Logging;
using Roam.Peers.Protocol;
using Roam.Replication.Engine;
using Roam.Replication.Protocol;
using Roam.Replication.Source;
using Roam.Replication.Volumes;
using Roam.Storage.Tracking;
using Roam.Storage.Volumes;

namespace Roam.Replication.Target;

/// <summary>
/// The replicas on this host: what a primary's Attach and Detach do here, the generations its copy reached,
/// and a promotion (a replica made the primary by the operator).
/// </summary>
internal sealed class ReplicaTarget(ReplicationService service)
{
    private ILogger Logger => service.Logger;

    /// <summary>
    /// Target side of Attach: creates the replica volume if missing, or checks the one held; a
    /// previous session for the volume is stopped first, so frames of a dead link never land after new ones.
    /// </summary>
    public async Task<(PeerAttachAck Ack, VolumeLease? Lease)> AcceptAttachAsync(PeerAttach attach, string peer, ReplicaSession session, int protocolVersion)
    {
        if (!VolumeName.IsValid(attach.Name)) throw new AttachRefused(PeerErrorCode.UnknownVolume, $"'{attach.Name}' is not a valid volume name");
        var entry = service.Volumes.Get(attach.Name);
        await WaitHandOverEndedAsync(entry).ConfigureAwait(false);
        ReplicaSession? previous;
        PeerAttachFlags flags = PeerAttachFlags.None;
        DataGenerations generations;
        var store = service.Store;
        lock (entry.Gate)
        {
            var file = entry.File;
            if (file is { Role: VolumeRole.Primary } || (file is null && store.TryGet(attach.Name, out _)))
            {
                if (file is null) throw new AttachRefused(PeerErrorCode.UnknownVolume, $"volume '{attach.Name}' exists on {service.Identity.Name} and is not a replica");
                // The peer still takes itself for the primary. Its side decides what to do (nothing syncs into a
                // primary); this side says what it sees, so a promoted host reports a split brain by itself too.
                var verdict = SyncDecision.Decide(file.Generations, attach.Generations);
                if ((verdict is SyncVerdict.SplitBrain or SyncVerdict.LocalNewer) && entry.NoteRival(peer, verdict))
                {
                    if (verdict == SyncVerdict.SplitBrain) Log.SplitBrain(Logger, attach.Name, peer, file.Generations.Current, attach.Generations.Current);
                    else Log.RivalOutdated(Logger, attach.Name, peer);
                }
                return (new PeerAttachAck(PeerAttachFlags.Primary, file.Generations), null);
            }
            if (file is null)
            {
                store.Create(attach.Name, (long)attach.Size);
                // Generation "none" until the first complete sync: a partial copy is never mistaken for a generation.
                file = new ReplicationFile(1, VolumeRole.Replica, Guid.Empty, [], [], peer);
                file.Write(service.Paths.State(attach.Name));
                entry.File = file;
                flags |= PeerAttachFlags.Created;
                Log.ReplicaCreated(Logger, attach.Name, peer, (long)attach.Size);
            }
            else if (store.Get(attach.Name).Size != (long)attach.Size)
                throw new AttachRefused(PeerErrorCode.OutOfRange, $"replica '{attach.Name}' is {store.Get(attach.Name).Size} bytes, the primary's is {attach.Size}");
            else if (file.PrimaryPeer != peer)
            {
                file = file with { PrimaryPeer = peer };
                file.Write(service.Paths.State(attach.Name));
                entry.File = file;
            }
            generations = file.Generations;
            previous = entry.Session;
            entry.Session = session;
        }
        if (previous is not null) await previous.StopAsync().ConfigureAwait(false);
        return (new PeerAttachAck(flags, generations, service.Diverged.ForAttach(attach.Name, generations, protocolVersion)), store.Open(attach.Name));
    }

    /// <summary>A hand-over of this volume running here (this host its source) ends first: its destination attaching back waits for it.</summary>
    private async Task WaitHandOverEndedAsync(VolumeReplication entry)
    {
        TaskCompletionSource? running;
        lock (entry.Gate) running = entry.HandOverRunning;
        if (running is null) return;
        try { await running.Task.WaitAsync(service.Options.AttachTimeout).ConfigureAwait(false); }
        catch (TimeoutException) { }
    }

    public void SessionEnded(string volume, ReplicaSession session) => service.Volumes.Find(volume)?.EndSession(session);

    /// <summary>False when the volume is no longer a replica here (promoted), so its frames must be refused.</summary>
    public bool IsReplicaOf(string volume, ReplicaSession session) => service.Volumes.Find(volume)?.IsReplicaSession(session) ?? false;

    public void SetReplicaGenerations(string volume, DataGenerations generations)
    {
        if (service.Volumes.Find(volume) is not { } entry) return;
        lock (entry.Gate)
        {
            if (entry.File is not { Role: VolumeRole.Replica } file) return;
            file = file.With(generations);
            file.Write(service.Paths.State(volume));
            entry.File = file;
            // A generation means a complete copy from the primary: a split brain lost earlier is fully overwritten.
            if (generations.Current != Guid.Empty) service.Diverged.DeleteFiles(volume);
        }
    }

    /// <summary>Target side of Detach: a replica of <paramref name="peer"/> drops its replica role (the data stays as a plain volume). Null when done, else why not.</summary>
    public async Task<string?> AcceptDetachAsync(string volume, string peer)
    {
        if (!VolumeName.IsValid(volume)) return $"'{volume}' is not a valid volume name";
        if (service.Volumes.Find(volume) is not { } entry) return $"'{volume}' is not a replica on {service.Identity.Name}";
        ReplicaSession? session;
        lock (entry.Gate)
        {
            if (entry.File is not { Role: VolumeRole.Replica } file) return $"'{volume}' is not a replica on {service.Identity.Name}";
            if (file.PrimaryPeer != peer) return $"'{volume}' is a replica of {file.PrimaryPeer} here, not of {peer}";
            entry.File = null;
            (session, entry.Session) = (entry.Session, null);
            ReplicationPaths.TryDelete(service.Paths.State(volume));
            service.Diverged.DeleteFiles(volume);
        }
        if (session is not null) await session.StopAsync().ConfigureAwait(false);
        Log.ReplicaDetached(Logger, volume, peer, "detached this replica: it is a volume of its own here now");
        return null;
    }

    /// <summary>
    /// Makes a replica the primary under a new generation. Refused while its primary is attached,
    /// unless <paramref name="force"/> (which drops that connection; a later reconnect is a split brain
    /// if the old primary wrote meanwhile, else it is reported as outdated).
    /// </summary>
    public async Task<ReplicationStatus> PromoteAsync(string volume, bool force, CancellationToken cancellationToken)
    {
        var entry = service.Volumes.Find(volume);
        ReplicaSession? session;
        if (entry is null) throw new ReplicationException(ReplicationError.NotReplica, $"volume '{volume}' is not a replica here");
        lock (entry.Gate)
        {
            if (entry.File is not { Role: VolumeRole.Replica } file)
                throw new ReplicationException(ReplicationError.NotReplica, $"volume '{volume}' is not a replica here");
            session = entry.Session;
            if (session is not null && !force)
                throw new ReplicationException(ReplicationError.AttachedToPrimary,
                    $"volume '{volume}' is attached to its primary {file.PrimaryPeer}; promoting now would make a split brain (use force)");
            var promoted = file.With(file.Generations.Next()) with { Role = VolumeRole.Primary };
            if (file.PrimaryPeer is { } oldPrimary)
            {
                // A parted link to the old primary records every region written here from now on, crash-safe like any link
                // (activity log, saved bitmap), so that a split brain with it resolves by copying only what either side
                // wrote apart. What this copy lacked when it was promoted (a resync under way, frames never acknowledged)
                // is in the old primary's bitmap for this host, which the resolve adds on its side.
                var parted = new RegionBitmap(service.Store.Get(volume).Size, service.Options.RegionSize);
                if (service.Diverged.Load(volume) is { } earlier)
                {
                    // This copy lost an earlier split brain (to this host or to one its volume came from) and was not fully
                    // overwritten yet: what it wrote then is still its own, and goes on being tracked as written apart.
                    foreach (var (offset, length) in earlier.DirtyRanges(int.MaxValue)) parted.MarkDirty(offset, length);
                }
                parted.Save(service.Paths.Bitmap(volume, oldPrimary));
                promoted = promoted with { Peers = [new ReplicaRecord(oldPrimary, ReplicaMode.Sync, null, Parted: true)] };
            }
            ReplicationPaths.TryDelete(service.Paths.ActivityLog(volume));
            promoted.Write(service.Paths.State(volume));
            entry.File = promoted;
            service.Diverged.DeleteFiles(volume);
            if (promoted.Peers.Count > 0)
            {
                var replicated = ReplicatedVolume.Open(service, service.Store.Open(volume), promoted, Logger);
                entry.Primary = replicated;
                replicated.StartLinks();
            }
            Log.Promoted(Logger, volume, promoted.Current, force);
        }
        if (session is not null) await session.StopAsync().ConfigureAwait(false);
        cancellationToken.ThrowIfCancellationRequested();
        return service.GetStatus(volume);
    }
}
