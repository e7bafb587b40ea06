using Roam.Storage.Layers;
using Roam.Replication.Engine;
using Roam.Replication.HandOver;
using Roam.Replication.Source;
using Roam.Replication.Target;
using Roam.Storage.Tracking;

namespace Roam.Replication.Volumes;

/// <summary>
/// Everything replication keeps about one volume on this host: its state file (role, generations, replicas),
/// the replicated primary open on it, the session of its primary when it is a replica here, the fence of a
/// plain primary's exports, a rival primary seen attaching, whether it is a VM's disk, and its migration.
/// Every property is guarded by <see cref="Gate"/>, the volume's own lock (nothing waits on another volume);
/// the rules that read or change several of them together are methods here, and take it themselves.
/// </summary>
internal sealed class VolumeReplication(string name)
{
    public string Name { get; } = name;

    /// <summary>Guards every property below. Held briefly (durable writes of NAME.json included), never across an await.</summary>
    public Lock Gate { get; } = new();

    /// <summary>NAME.json as last written, or null: a plain primary with no replicas (or a volume forgotten).</summary>
    public ReplicationFile? File { get; set; }

    /// <summary>The replicated primary open on this volume (its replicating device, links and activity log), or null.</summary>
    public ReplicatedVolume? Primary { get; set; }

    /// <summary>
    /// A peer that attached as this volume's primary while it is primary here too, and what the generations said:
    /// this side's own view of a split brain (or of an outdated old primary), for `roam volume show` here.
    /// </summary>
    public RivalPrimary? Rival { get; set; }

    /// <summary>A replica here: the session of its primary currently applying frames, or null.</summary>
    public ReplicaSession? Session { get; set; }

    /// <summary>The write fence of a primary exported without replication (see <see cref="FenceOf"/>).</summary>
    public WriteFence? Fence { get; set; }

    /// <summary>A VM's disk here (see ReplicationService.SetVmDisk): exported with a device that follows its role.</summary>
    public bool IsVmDisk { get; set; }

    /// <summary>The volume migration started here (the last one, once it ended), or null.</summary>
    public VolumeMigration? Migration { get; set; }

    /// <summary>Completed when the hand-over under way ends (an Attach from its destination waits for it), or null.</summary>
    public TaskCompletionSource? HandOverRunning { get; set; }

    /// <summary>A hand-over that failed with its outcome unknown: what it would have made the destination.</summary>
    public UnsettledHandOver? Unsettled { get; set; }

    /// <summary>A replica here.</summary>
    public bool IsReplica => File is { Role: VolumeRole.Replica };

    /// <summary>How the NBD write path sees the volume: its role, and the replicated primary to write through.</summary>
    public (VolumeRole Role, ReplicatedVolume? Primary) Lookup()
    {
        lock (Gate)
        {
            if (Primary is { } p) return (VolumeRole.Primary, p);
            if (File is { } f) return (f.Role, null);
            return (VolumeRole.Primary, null);
        }
    }

    /// <summary>False when the volume is no longer a replica here (promoted), or another session replaced this one.</summary>
    public bool IsReplicaSession(ReplicaSession session)
    {
        lock (Gate) return IsReplica && ReferenceEquals(Session, session);
    }

    public void EndSession(ReplicaSession session)
    {
        lock (Gate)
            if (ReferenceEquals(Session, session)) Session = null;
    }

    /// <summary>The write fence of a primary exported without replication; a closed one (it lost its role) is replaced for new exports.</summary>
    public WriteFence FenceOf()
    {
        lock (Gate)
        {
            if (Fence is not { ClosedReason: null } fence) Fence = fence = new WriteFence();
            return fence;
        }
    }

    /// <summary>Why the volume's fence was closed (it lost its primary role here), if it was.</summary>
    public string? FenceClosedReason()
    {
        lock (Gate) return Fence?.ClosedReason;
    }

    /// <summary>Records a rival primary's attach; true when it is news (another peer or verdict than the last one seen).</summary>
    public bool NoteRival(string peer, SyncVerdict verdict)
    {
        lock (Gate)
        {
            bool news = Rival is not { } known || known.Peer != peer || known.Verdict != verdict;
            Rival = new RivalPrimary(peer, verdict, DateTimeOffset.Now);
            return news;
        }
    }

    /// <summary>The volume's replication as `roam volume show` reports it; <paramref name="hostName"/> is this host's.</summary>
    public ReplicationStatus Status(string hostName)
    {
        lock (Gate)
        {
            if (Primary is { } primary)
            {
                var status = primary.Status();
                if (primary.PendingHandOver is { } pending)
                    status = status with
                    {
                        HandOverPeer = pending.Peer,
                        WritesRefused = true,
                        Notice = primary.Doubt ?? $"a hand-over to {pending.Peer} is in doubt: read-only until {pending.Peer} says whether it took over",
                    };
                else if (primary.Links.Any(l => l.IsFenced) && primary.Gate.ClosedReason is { } fenced)
                    status = status with { WritesRefused = true, Notice = fenced };
                return WithRival(status, hostName);
            }
            if (File is { } file)
                return WithRival(new ReplicationStatus(Name, file.Role, file.Generations, [], file.PrimaryPeer, Session is not null)
                {
                    WritesRefused = file.Role == VolumeRole.Replica,
                }, hostName);
        }
        return PlainStatus(Name);
    }

    /// <summary>A volume replication keeps nothing about: a plain primary.</summary>
    public static ReplicationStatus PlainStatus(string volume) =>
        new(volume, VolumeRole.Primary, new DataGenerations(Guid.Empty, []), [], null, false);

    /// <summary>Adds what a rival primary's attach showed (see <see cref="Rival"/>); the caller holds <see cref="Gate"/>.</summary>
    private ReplicationStatus WithRival(ReplicationStatus status, string hostName)
    {
        if (status.Role != VolumeRole.Primary || Rival is not { } rival) return status;
        string seen = $"{rival.At:yyyy-MM-dd HH:mm:ss}";
        string notice = rival.Verdict == SyncVerdict.SplitBrain
            ? $"split brain with {rival.Peer} (seen {seen}): it still holds this volume as primary and both sides wrote apart; "
              + $"nothing syncs until it is resolved. Keep one side's data with, on both hosts: roam volume resolve {status.Volume} --keep HOST"
            : $"{rival.Peer} came back as this volume's primary with older data (seen {seen}): it is outdated and nothing syncs; "
              + $"to make it a replica of this host, on both hosts: roam volume resolve {status.Volume} --keep {hostName}";
        return status with { Notice = status.Notice is null ? notice : $"{status.Notice}; {notice}" };
    }
}

/// <summary>A peer seen attaching as primary of a volume that is primary here too (see <see cref="VolumeReplication.Rival"/>).</summary>
internal sealed record RivalPrimary(string Peer, SyncVerdict Verdict, DateTimeOffset At);

/// <summary>A hand-over whose outcome was unknown when it failed: the generations it gave the destination, and whether this host stays its replica.</summary>
internal sealed record UnsettledHandOver(DataGenerations Generations, bool KeepReplica);
