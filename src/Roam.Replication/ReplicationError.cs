namespace Roam.Replication;

/// <summary>
/// Why the replication engine refused or failed an operation: what callers branch on (the daemon maps these
/// to HTTP statuses in one place, tests assert on them); the exception's message says it in words for a person.
/// </summary>
public enum ReplicationError
{
    /// <summary>The peer named is not a trusted peer of this host (nor this host, where that is allowed).</summary>
    UnknownPeer,

    /// <summary>The volume is a replica here: only its primary may do this (add replicas, migrate, forget, keep its data).</summary>
    NotPrimary,

    /// <summary>The volume is not a replica here (promote).</summary>
    NotReplica,

    /// <summary>The volume is already replicated to that peer.</summary>
    AlreadyReplicated,

    /// <summary>The volume has no replica on that peer.</summary>
    NoSuchReplica,

    /// <summary>The volume still has replicas (forget).</summary>
    HasReplicas,

    /// <summary>The volume has NBD clients connected (forget).</summary>
    InUse,

    /// <summary>A replica still attached to its primary: promoting it now would make a split brain (unless forced).</summary>
    AttachedToPrimary,

    /// <summary>A hand-over of the volume whose outcome is not known yet: it is settled first (read-only until then).</summary>
    HandOverInDoubt,

    /// <summary>The volume is being handed over right now.</summary>
    HandingOver,

    /// <summary>An earlier hand-over had in fact completed: the peer is primary, this host is its replica.</summary>
    AlreadyHandedOver,

    /// <summary>The link to the destination went down (or fell out of sync) in the middle of a hand-over.</summary>
    LinkDown,

    /// <summary>A hand-over failed and the destination was not promoted: this host stays primary.</summary>
    HandOverFailed,

    /// <summary>A hand-over step failed after the destination confirmed: it is primary, this host stepped down.</summary>
    HandOverFailedAfterConfirm,

    /// <summary>No migration of the volume was prepared (or started) here.</summary>
    NoMigration,

    /// <summary>The migration is not in a phase that allows this (completed, aborted, handing over).</summary>
    MigrationNotActive,

    /// <summary>The migration failed (a split brain, an outdated source, a failed hand-over).</summary>
    MigrationFailed,

    /// <summary>The volume and that peer are in a split brain: both wrote apart; it is resolved first.</summary>
    SplitBrain,

    /// <summary>That peer holds newer data than this host (it was promoted): this copy is outdated.</summary>
    Outdated,

    /// <summary>This host was promoted away from that peer, which may still hold the volume as primary: resolve first.</summary>
    Parted,

    /// <summary>The peer answered with an Error frame (it refused to replicate, detach, ...).</summary>
    PeerRefused,

    /// <summary>The peer broke the peer protocol: closed instead of answering, or answered with the wrong frame.</summary>
    PeerProtocol,
}
