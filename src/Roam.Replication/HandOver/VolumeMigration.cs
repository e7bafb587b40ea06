using Roam.Replication.Engine;
using Roam.Replication.Source;

namespace Roam.Replication.HandOver;

/// <summary>The steps of a VOLUME hand-over, in order (the fault-injection points of the tests).</summary>
internal enum VolumeHandOverStep { StopWrites, DrainInFlight, CatchUp, SendPromote, AwaitConfirm, Demote }

/// <summary>Source-side state of one volume migration.</summary>
internal sealed class VolumeMigration(string volume, string peer, PeerLink link, bool restorePaused, ReplicaMode restoreMode, bool newLink)
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
    public volatile VolumeMigrationPhase Phase = VolumeMigrationPhase.Preparing;
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
        if (phase is VolumeMigrationPhase.Preparing or VolumeMigrationPhase.Copying or VolumeMigrationPhase.InSync)
        {
            if (st.State is ReplicaState.SplitBrain or ReplicaState.Outdated)
            {
                phase = VolumeMigrationPhase.Failed;
                error ??= st.State == ReplicaState.SplitBrain
                    ? $"split brain with {Peer}: both sides wrote apart; resolve it first"
                    : $"{Peer} holds newer data (it was promoted): this host is outdated";
            }
            // Converged: nothing left to copy, every write mirrored; a write still awaiting its acknowledgement does not
            // make it "copying" again (the hand-over waits for those with writes stopped).
            else if (Link.IsInSyncBarInFlight) phase = VolumeMigrationPhase.InSync;
            else if (st.State == ReplicaState.Syncing || done > 0) phase = VolumeMigrationPhase.Copying;
            else phase = VolumeMigrationPhase.Preparing;
        }
        return new MigrationStatus(Volume, Peer, phase, done + left, done, left, wire, rate, eta, error);
    }

    /// <summary>Freezes the numbers (the link may be gone after this).</summary>
    public void End(VolumeMigrationPhase phase, string? error)
    {
        Phase = phase;
        Error = error;
        var s = Snapshot() with { Phase = phase, Error = error };
        if (phase == VolumeMigrationPhase.Completed) s = s with { BytesLeft = 0, BytesTotal = s.BytesDone, Eta = TimeSpan.Zero };
        Final = s;
    }
}

internal sealed class InjectedFaultException(VolumeHandOverStep step) : Exception($"injected fault after {step}")
{
    public VolumeHandOverStep Step { get; } = step;
}

/// <summary>Tests: the hand-over stops dead at a step, as if the process had died there (nothing is cleaned up).</summary>
internal sealed class SimulatedCrashException(VolumeHandOverStep step) : Exception($"simulated crash after {step}");

/// <summary>What became of a hand-over that failed after HandOver was sent: the destination was promoted, was not, or cannot be asked.</summary>
internal enum HandOverOutcome { NotPromoted, Promoted, Unknown }
