using System.Diagnostics;
using Microsoft.Extensions.Logging;
using Roam.Peers.Protocol;
using Roam.Replication.Engine;
using Roam.Replication.Protocol;
using Roam.Replication.Source;
using Roam.Replication.Volumes;
using Roam.Storage.Tracking;
using Roam.Storage.Volumes;

namespace Roam.Replication.HandOver;

/// <summary>
/// The hand-over, source side: writes stop for milliseconds, drain, the destination catches up, and a HandOver
/// frame moves the primary role under a new generation. The role moves exactly when the destination acknowledges
/// HandOver: before that this host is primary, after it the destination, so a failure at any step leaves one
/// primary (one whose outcome cannot be told is settled by <see cref="HandOverDoubts"/>).
/// </summary>
internal sealed class HandOverSource(ReplicationService service)
{
    private ILogger Logger => service.Logger;

    /// <summary>
    /// Moves the primary role to the migration's destination: writes stop (new ones wait, and fail as
    /// read-only once the role moved), in-flight writes drain, the destination flushes, then HandOver
    /// makes it the primary under a new generation. This host becomes its replica
    /// (<paramref name="keepReplica"/>) or drops the volume. <paramref name="promoted"/> is called as soon as the
    /// destination confirmed, before this host steps down: a paused VM may go on from there (writes here stay stopped).
    /// </summary>
    public async Task<HandOverResult> HandOverAsync(string volume, bool keepReplica, CancellationToken cancellationToken, Action? promoted)
    {
        long called = Stopwatch.GetTimestamp();
        await service.Admin.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            var migration = service.Migrations.Find(volume) ?? throw new ReplicationException(ReplicationError.NoMigration, $"no migration of volume '{volume}' was prepared");
            service.Doubts.ThrowIfInDoubt(volume, migration);
            if (migration.Phase is VolumeMigrationPhase.Aborted or VolumeMigrationPhase.Completed or VolumeMigrationPhase.HandingOver)
                throw new ReplicationException(ReplicationError.MigrationNotActive, $"migration of '{volume}' is {migration.Phase}");
            var primary = service.Lookup(volume).Primary ?? throw new ReplicationException(ReplicationError.NotPrimary, $"volume '{volume}' is not a replicated primary here");
            if (migration.Phase == VolumeMigrationPhase.Failed && primary.Gate.IsFrozen)
            {
                // An earlier hand-over whose outcome was unknown: settle it first.
                if (await service.Doubts.ResolveUnknownAsync(migration, primary).ConfigureAwait(false))
                    throw new ReplicationException(ReplicationError.AlreadyHandedOver, $"an earlier hand-over of '{volume}' to {migration.Peer} had completed: this host is its replica now");
            }
            migration.Phase = VolumeMigrationPhase.Copying;
            migration.Error = null;
            // Writes still in flight (asynchronous mirroring in a VM's memory phase) do not hold the hand-over back here
            // (it runs in a VM's pause): the catch-up below waits for them once writes are stopped.
            await service.Migrations.WaitInSyncAsync(volume, cancellationToken).ConfigureAwait(false);
            return await HandOverCoreAsync(migration, primary, keepReplica, promoted, called).ConfigureAwait(false);
        }
        finally { service.Admin.Release(); }
    }

    private async Task<HandOverResult> HandOverCoreAsync(VolumeMigration migration, ReplicatedVolume primary, bool keepReplica, Action? promoted, long called)
    {
        string volume = migration.Volume, peer = migration.Peer;
        var link = migration.Link;
        var entry = service.Volumes.Get(volume);
        var settled = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        lock (entry.Gate) entry.HandOverRunning = settled;
        migration.Phase = VolumeMigrationPhase.HandingOver;
        var generations = primary.Generations.Next();
        var flags = keepReplica ? PeerHandOverFlags.KeepOldPrimary | (link.Mode == ReplicaMode.Async ? PeerHandOverFlags.AsyncLink : 0) : PeerHandOverFlags.None;
        var timeout = service.Options.HandOverTimeout;
        long frozenAt = 0;
        Task<bool>? confirm = null;
        bool demoted = false, volumeDeleted = false;
        List<PeerHandOverReplica>? handedOff = null;
        VolumeHandOverStep step = VolumeHandOverStep.StopWrites;
        // "StopWrites 0.0 ms, DrainInFlight 0.3 ms, ...": where a pause went (after the checks before it, "Admission").
        var steps = new System.Text.StringBuilder().Append("Admission ")
            .Append(Stopwatch.GetElapsedTime(called).TotalMilliseconds.ToString("0.0", System.Globalization.CultureInfo.InvariantCulture)).Append(" ms");
        long stepStarted = Stopwatch.GetTimestamp();
        try
        {
            try
            {
                primary.Gate.Freeze();
                frozenAt = Stopwatch.GetTimestamp();
                await DoneAsync(VolumeHandOverStep.StopWrites).ConfigureAwait(false);

                step = VolumeHandOverStep.DrainInFlight;
                await primary.Gate.DrainAsync().WaitAsync(timeout).ConfigureAwait(false);
                await DoneAsync(step).ConfigureAwait(false);

                // No flush of its own: the replica flushes before it acts on HandOver, which follows every write in order.
                step = VolumeHandOverStep.CatchUp;
                await CatchUpAsync(link, frozenAt, timeout).ConfigureAwait(false);
                await DoneAsync(step).ConfigureAwait(false);

                step = VolumeHandOverStep.SendPromote;
                // The other replicas go to the destination with what they lack: their links stop here first, so none
                // can attach again and overwrite what the new primary writes, and their bitmaps are final.
                handedOff = HandOffReplicas(primary, link);
                // The intent is durable before the frame can leave: a crash from here on restarts this host
                // read-only, asking the destination whether it took over (never as a writable primary).
                primary.SetPendingHandOver(new PendingHandOver(peer, generations.Current, [.. generations.History], keepReplica));
                confirm = link.Mirror(OutFrame.HandOver(generations, flags, handedOff))
                    ?? throw new ReplicationException(ReplicationError.LinkDown, $"the link to {peer} went down before HandOver could be sent");
                await DoneAsync(step).ConfigureAwait(false);

                step = VolumeHandOverStep.AwaitConfirm;
                if (!await confirm.WaitAsync(timeout).ConfigureAwait(false))
                    throw new ReplicationException(ReplicationError.LinkDown, $"{peer} did not confirm the hand-over (the link failed)");
                await DoneAsync(step).ConfigureAwait(false);
                try { promoted?.Invoke(); }
                catch (Exception ex) when (ex is not OutOfMemoryException) { Log.HandOverFailed(Logger, volume, peer, $"the promoted callback failed: {ex.Message}"); }

                step = VolumeHandOverStep.Demote;
                volumeDeleted = await DemoteAsync(primary, peer, generations, keepReplica).ConfigureAwait(false);
                demoted = true;
                await DoneAsync(step).ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is not OutOfMemoryException and not SimulatedCrashException)
            {
                var outcome = confirm is null ? HandOverOutcome.NotPromoted
                    : demoted ? HandOverOutcome.Promoted
                    : await service.Doubts.AskDestinationAsync(primary, link, confirm, generations).ConfigureAwait(false);
                string what = (ex is TimeoutException ? $"timed out after {timeout.TotalSeconds:0.#} s" : ex.Message)
                    + (steps.Length > 0 ? $" (steps done: {steps})" : "");
                switch (outcome)
                {
                    case HandOverOutcome.NotPromoted:
                        if (primary.PendingHandOver is not null) primary.SetPendingHandOver(null);
                        primary.Gate.Thaw();
                        await UnhaltLinksAsync(primary).ConfigureAwait(false);
                        migration.Phase = VolumeMigrationPhase.Failed;
                        migration.Error = $"hand-over failed at {step}: {what}; {peer} was not promoted, this host stays primary";
                        Log.HandOverFailed(Logger, volume, peer, migration.Error);
                        throw new ReplicationException(ReplicationError.HandOverFailed, migration.Error, ex);
                    case HandOverOutcome.Promoted:
                        if (!demoted) volumeDeleted = await DemoteAsync(primary, peer, generations, keepReplica).ConfigureAwait(false);
                        migration.End(VolumeMigrationPhase.Completed, $"hand-over hit a failure at {step} ({what}) after {peer} confirmed: {peer} is primary");
                        Log.HandOverFailed(Logger, volume, peer, migration.Error!);
                        throw new ReplicationException(ReplicationError.HandOverFailedAfterConfirm, migration.Error!, ex);
                    default:
                        lock (entry.Gate) entry.Unsettled = new UnsettledHandOver(generations, keepReplica);
                        service.Doubts.StartSettling(primary);
                        migration.Phase = VolumeMigrationPhase.Failed;
                        migration.Error = $"hand-over failed at {step}: {what}; whether {peer} was promoted is unknown ({peer} unreachable): "
                            + "writes stay stopped until it is reachable (retry the hand-over or abort)";
                        Log.HandOverFailed(Logger, volume, peer, migration.Error);
                        throw new ReplicationException(ReplicationError.HandOverInDoubt, migration.Error, ex);
                }
            }
            var pause = Stopwatch.GetElapsedTime(frozenAt);
            migration.End(VolumeMigrationPhase.Completed, null);
            Log.HandedOver(Logger, volume, peer, pause.TotalMilliseconds, steps.ToString(), generations.Current);
            foreach (var r in handedOff ?? [])
                Log.ReplicaHandedOff(Logger, volume, peer, r.Peer, (r.Flags & PeerHandOverReplicaFlags.Async) != 0 ? "async" : "sync",
                    r.OutOfSync.Sum(e => (long)e.Length));
            return new HandOverResult(volume, peer, pause, generations, keepReplica, volumeDeleted);
        }
        finally
        {
            lock (entry.Gate) entry.HandOverRunning = null;
            settled.TrySetResult();
        }

        async Task DoneAsync(VolumeHandOverStep s)
        {
            long now = Stopwatch.GetTimestamp();
            steps.Append(", ").Append(s).Append(' ')
                .Append(Stopwatch.GetElapsedTime(stepStarted, now).TotalMilliseconds.ToString("0.0", System.Globalization.CultureInfo.InvariantCulture)).Append(" ms");
            stepStarted = now;
            if (service.Hooks.CrashAfter == s)
            {
                if (service.Hooks.BeforeCrash is { } before) await before().ConfigureAwait(false);
                throw new SimulatedCrashException(s);
            }
            if (service.Hooks.FailAfter == s) throw new InjectedFaultException(s);
        }
    }

    /// <summary>
    /// Writes are stopped and drained: halts the links to every replica but the destination and describes them
    /// for the HandOver frame (null for a destination older than version 3, which cannot take them).
    /// </summary>
    private List<PeerHandOverReplica>? HandOffReplicas(ReplicatedVolume primary, PeerLink destination)
    {
        // A parted link is no replica (its peer was this host's primary): it is not handed on, and goes with the demotion.
        var others = primary.Links.Where(l => !ReferenceEquals(l, destination) && !l.Parted).ToList();
        foreach (var other in others) other.Halt();
        if (destination.ProtocolVersion is not { } version || version < PeerProtocol.HandOverReplicasVersion)
        {
            if (others.Count > 0)
                Log.ReplicasNotHandedOff(Logger, primary.Name, destination.Peer, string.Join(", ", others.Select(o => o.Peer)),
                    $"{destination.Peer} speaks peer protocol v{destination.ProtocolVersion} (v{PeerProtocol.HandOverReplicasVersion} takes replicas along): "
                    + $"they are left behind; add them on {destination.Peer} (roam volume replicate) after the migration");
            return null;
        }
        var handedOff = new List<PeerHandOverReplica>();
        foreach (var other in others.Take(PeerProtocol.MaxHandOverReplicas))
        {
            // A replica in the middle of a split brain's resolve lacks more than this bitmap says (its own writes apart,
            // which this host may not have merged yet): the new primary copies all of it over.
            var ranges = other.IsSettlingSplit ? [(0L, primary.Size)] : other.Bitmap.DirtyRanges(PeerProtocol.MaxHandOverExtents);
            var flags = (other.Mode == ReplicaMode.Async ? PeerHandOverReplicaFlags.Async : 0) | (other.Paused ? PeerHandOverReplicaFlags.Paused : 0);
            handedOff.Add(new PeerHandOverReplica(other.Peer, flags, other.Bandwidth, other.SyncedGeneration,
                ranges.ConvertAll(r => new PeerExtent((ulong)r.Offset, (ulong)r.Length))));
        }
        if (others.Count > PeerProtocol.MaxHandOverReplicas)
            Log.ReplicasNotHandedOff(Logger, primary.Name, destination.Peer, string.Join(", ", others.Skip(PeerProtocol.MaxHandOverReplicas).Select(o => o.Peer)),
                $"a hand-over takes at most {PeerProtocol.MaxHandOverReplicas} replicas along: these are left behind");
        return handedOff;
    }

    /// <summary>The hand-over did not happen after all: the links it halted connect again (this host feeds its replicas).</summary>
    public static async Task UnhaltLinksAsync(ReplicatedVolume primary)
    {
        foreach (var link in primary.Links) await link.UnhaltAsync().ConfigureAwait(false);
    }

    /// <summary>Writes are stopped: waits until the replica acknowledged everything (in memory; HandOver makes it durable).</summary>
    private static async Task CatchUpAsync(PeerLink link, long since, TimeSpan timeout)
    {
        while (!link.IsCaughtUp)
        {
            if (Stopwatch.GetElapsedTime(since) > timeout) throw new TimeoutException("the replica did not catch up");
            if (link.State is not (ReplicaState.InSync or ReplicaState.Syncing))
                throw new ReplicationException(ReplicationError.LinkDown, $"the replica is {link.State}");
            await Task.Delay(1).ConfigureAwait(false);
        }
    }


    /// <summary>The destination is primary: this host becomes its replica (or drops the volume); writes here are refused from now on.</summary>
    public async Task<bool> DemoteAsync(ReplicatedVolume primary, string peer, DataGenerations generations, bool keepReplica)
    {
        string volume = primary.Name;
        var entry = service.Volumes.Get(volume);
        var demoted = new ReplicationFile(1, VolumeRole.Replica, generations.Current, [.. generations.History], [], peer);
        lock (entry.Gate)
        {
            demoted.Write(service.Paths.State(volume));
            entry.File = demoted;
            entry.Primary = null;
        }
        primary.Gate.Close($"volume '{volume}' was handed over to {peer}: it is read-only on this host now");
        var links = primary.Links;
        // Its bitmaps and activity log are deleted just below, so nothing is saved first: the state file written
        // above already makes this host a replica, and these files mean nothing to a replica. This step sits
        // inside a VM's switch-over pause, where every fsync counts.
        await primary.AbandonAsync().ConfigureAwait(false);
        foreach (var l in links) ReplicationPaths.TryDelete(service.Paths.Bitmap(volume, l.Peer));
        ReplicationPaths.TryDelete(service.Paths.ActivityLog(volume));
        Log.Demoted(Logger, volume, peer, generations.Current);
        if (keepReplica) return false;
        try
        {
            lock (entry.Gate)
            {
                service.Store.Delete(volume);
                entry.File = null;
            }
            ReplicationPaths.TryDelete(service.Paths.State(volume));
            return true;
        }
        catch (VolumeException ex) when (ex.Error == VolumeError.InUse)
        {
            // Still exported: it stays a (read-only, detached) replica until it can be deleted.
            Log.HandOverFailed(Logger, volume, peer, $"the old copy is kept as a replica: {ex.Message}");
            return false;
        }
    }
}
