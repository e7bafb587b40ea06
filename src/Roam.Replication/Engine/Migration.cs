using Roam.Replication.Source;
using Roam.Storage.Tracking;

namespace Roam.Replication.Engine;

public enum MigrationPhase { Preparing, Copying, InSync, HandingOver, Completed, Aborted, Failed }

/// <summary>
/// A live migration of a volume to <see cref="Peer"/>, as seen from its source. Bytes count from the
/// start of this prepare: <see cref="BytesDone"/> copied by resync, <see cref="BytesLeft"/> still out of
/// sync or unacknowledged, <see cref="BytesOnWire"/> everything sent to the peer (writes mirrored live
/// included; zero regions cross as small Zero frames). Rate is of the copy.
/// </summary>
public sealed record MigrationStatus(string Volume, string Peer, MigrationPhase Phase, long BytesTotal, long BytesDone, long BytesLeft,
    long BytesOnWire, double BytesPerSecond, TimeSpan? Eta, string? Error);

/// <summary>A hand-over: who is primary now, how long writes were stopped, and the generation the new primary started.</summary>
public sealed record HandOverResult(string Volume, string NewPrimary, TimeSpan WritePause, DataGenerations Generations, bool KeptReplica, bool VolumeDeleted);

public sealed record MigrationResult(MigrationStatus Status, HandOverResult HandOver, TimeSpan Elapsed);

/// <summary>The steps of a hand-over, in order (the fault-injection points of the tests).</summary>
internal enum HandOverStep { StopWrites, DrainInFlight, CatchUp, SendPromote, AwaitConfirm, Demote }

/// <summary>Source-side state of one migration.</summary>
internal sealed class Migration(string volume, string peer, PeerLink link, bool restorePaused, ReplicaMode restoreMode, bool newLink)
{
    public string Volume { get; } = volume;
    public string Peer { get; } = peer;
    public PeerLink Link { get; } = link;
    public bool RestorePaused { get; } = restorePaused;
    public ReplicaMode RestoreMode { get; } = restoreMode;
    /// <summary>The replica's bandwidth limit before the migration set its own (an abort puts it back).</summary>
    public long RestoreBandwidth { get; init; }
    public long Started { get; } = System.Diagnostics.Stopwatch.GetTimestamp();
    // A link made for this migration counts from its start (it may have begun copying before this was made).
    public long BaseSent { get; } = newLink ? 0 : link.BytesSent;
    public long BaseResynced { get; } = newLink ? 0 : link.BytesResynced;
    public volatile MigrationPhase Phase = MigrationPhase.Preparing;
    public string? Error;
    public MigrationStatus? Final;

    public MigrationStatus Snapshot()
    {
        if (Final is { } final) return final;
        var st = Link.Status();
        long left = st.BytesOutOfSync + st.PendingBytes;
        long done = Math.Max(0, st.BytesResynced - BaseResynced);
        long wire = Math.Max(0, st.BytesSent - BaseSent);
        double seconds = System.Diagnostics.Stopwatch.GetElapsedTime(Started).TotalSeconds;
        double rate = seconds > 0 ? done / seconds : 0;
        TimeSpan? eta = left == 0 ? TimeSpan.Zero : rate > 0 ? TimeSpan.FromSeconds(left / rate) : null;
        var phase = Phase;
        string? error = Error;
        if (phase is MigrationPhase.Preparing or MigrationPhase.Copying or MigrationPhase.InSync)
        {
            if (st.State is ReplicaState.SplitBrain or ReplicaState.Outdated)
            {
                phase = MigrationPhase.Failed;
                error ??= st.State == ReplicaState.SplitBrain
                    ? $"split brain with {Peer}: both sides wrote apart; resolve it first"
                    : $"{Peer} holds newer data (it was promoted): this host is outdated";
            }
            // Converged: nothing left to copy, every write mirrored; a write still awaiting its acknowledgement does not
            // make it "copying" again (the hand-over waits for those with writes stopped).
            else if (Link.IsInSyncBarInFlight) phase = MigrationPhase.InSync;
            else if (st.State == ReplicaState.Syncing || done > 0) phase = MigrationPhase.Copying;
            else phase = MigrationPhase.Preparing;
        }
        return new MigrationStatus(Volume, Peer, phase, done + left, done, left, wire, rate, eta, error);
    }

    /// <summary>Freezes the numbers (the link may be gone after this).</summary>
    public void End(MigrationPhase phase, string? error)
    {
        Phase = phase;
        Error = error;
        var s = Snapshot() with { Phase = phase, Error = error };
        if (phase == MigrationPhase.Completed) s = s with { BytesLeft = 0, BytesTotal = s.BytesDone, Eta = TimeSpan.Zero };
        Final = s;
    }
}

internal sealed class InjectedFaultException(HandOverStep step) : Exception($"injected fault after {step}")
{
    public HandOverStep Step { get; } = step;
}
