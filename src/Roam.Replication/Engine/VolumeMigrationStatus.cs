using Roam.Storage.Tracking;

namespace Roam.Replication.Engine;

/// <summary>
/// The phases of a VOLUME migration (the disk's copy and hand-over, see <see cref="ReplicationService.PrepareMigrationAsync"/>),
/// as its source reports them; a VM migration in the daemon has a phase machine of its own around it.
/// </summary>
public enum VolumeMigrationPhase { Preparing, Copying, InSync, HandingOver, Completed, Aborted, Failed }

/// <summary>
/// A live migration of a volume to <see cref="Peer"/>, as seen from its source. Bytes count from the
/// start of this prepare: <see cref="BytesDone"/> copied by resync, <see cref="BytesLeft"/> still out of
/// sync or unacknowledged, <see cref="BytesOnWire"/> everything sent to the peer (writes mirrored live
/// included; zero regions cross as small Zero frames). Rate is of the copy.
/// </summary>
public sealed record MigrationStatus(string Volume, string Peer, VolumeMigrationPhase Phase, long BytesTotal, long BytesDone, long BytesLeft,
    long BytesOnWire, double BytesPerSecond, TimeSpan? Eta, string? Error);

/// <summary>A hand-over: who is primary now, how long writes were stopped, and the generation the new primary started.</summary>
public sealed record HandOverResult(string Volume, string NewPrimary, TimeSpan WritePause, DataGenerations Generations, bool KeptReplica, bool VolumeDeleted);

public sealed record MigrationResult(MigrationStatus Status, HandOverResult HandOver, TimeSpan Elapsed);
