using System.Diagnostics;
using Microsoft.Extensions.Logging;
using Roam.Peers.Protocol;
using Roam.Replication.Protocol;
using Roam.Replication.Source;
using Roam.Replication.Target;
using Roam.Storage.Tracking;
using Roam.Storage.Volumes;

namespace Roam.Replication.Engine;

/// <summary>
/// Live migration, the DRBD way: the destination becomes a sync replica (a bitmap-driven resync of
/// what it lacks, every new write mirrored synchronously), and once it is in sync a hand-over stops
/// writes for milliseconds, flushes, and moves the primary role with a HandOver frame under a new
/// generation. The role moves exactly when the destination acknowledges HandOver: before that the
/// source is primary, after it the destination, so a failure at any step leaves one primary.
/// </summary>
public sealed partial class ReplicationService
{
    private readonly Dictionary<string, Migration> _migrations = new(StringComparer.Ordinal);
    private readonly Dictionary<string, TaskCompletionSource> _handOvers = new(StringComparer.Ordinal);

    /// <summary>
    /// Makes (or reuses) a replica of <paramref name="volume"/> on <paramref name="peer"/> in sync mode and
    /// starts or continues its resync: a peer that already holds a replica gets only what its bitmap marks.
    /// </summary>
    /// <param name="bandwidth">When given, the replica link's limit from now on, in bytes per second on the wire (0: none).</param>
    public async Task<MigrationStatus> PrepareMigrationAsync(string volume, string peer, long? bandwidth = null, CancellationToken cancellationToken = default)
    {
        if (_trust.Find(peer) is null) throw new ReplicationException($"no trusted peer is named {peer}");
        Store.Get(volume);
        _ = WarmUpHandOver();
        ReplicatedVolume? primary;
        lock (_gate)
        {
            if (_files.TryGetValue(volume, out var file) && file.Role == VolumeRole.Replica)
                throw new ReplicationException($"volume '{volume}' is a replica here; migrate it from its primary {file.PrimaryPeer}");
            if (_migrations.TryGetValue(volume, out var running) && running.Phase == MigrationPhase.HandingOver)
                throw new ReplicationException($"volume '{volume}' is being handed over to {running.Peer}");
            _primaries.TryGetValue(volume, out primary);
        }
        if (primary?.PendingHandOver is { } doubt)
            throw new ReplicationException($"a hand-over of '{volume}' to {doubt.Peer} is in doubt: it is settled first (read-only until then)");
        var link = primary?.Links.FirstOrDefault(l => l.Peer == peer);
        bool restorePaused;
        ReplicaMode restoreMode;
        long restoreBandwidth = bandwidth ?? 0;
        bool newLink = primary is null || link is null;
        if (primary is null || link is null)
        {
            await AddReplicaAsync(volume, peer, ReplicaMode.Sync, bandwidth ?? 0, cancellationToken).ConfigureAwait(false);
            lock (_gate) primary = _primaries[volume];
            link = primary.Links.First(l => l.Peer == peer);
            restorePaused = true;
            restoreMode = ReplicaMode.Sync;
        }
        else
        {
            lock (_gate)
            {
                // A retry after an abort restores what the first prepare found.
                if (_migrations.TryGetValue(volume, out var previous) && previous.Peer == peer && ReferenceEquals(previous.Link, link))
                    (restorePaused, restoreMode, restoreBandwidth) = (previous.RestorePaused, previous.RestoreMode, previous.RestoreBandwidth);
                else (restorePaused, restoreMode, restoreBandwidth) = (link.Paused, link.Mode, link.Bandwidth);
            }
            if (link.State is ReplicaState.SplitBrain or ReplicaState.Outdated or ReplicaState.Parted)
                throw new ReplicationException($"the replica of '{volume}' on {peer} is {link.State}; resolve that first");
            if (link.Mode != ReplicaMode.Sync || link.Paused || (bandwidth is { } limit && limit != link.Bandwidth))
            {
                link.Mode = ReplicaMode.Sync;
                if (bandwidth is { } b) link.Bandwidth = b;
                link.Resume();
                primary.SaveRecord(link);
            }
        }
        var migration = new Migration(volume, peer, link, restorePaused, restoreMode, newLink) { RestoreBandwidth = restoreBandwidth };
        lock (_gate) _migrations[volume] = migration;
        Log.MigrationPrepared(_logger, volume, peer, link.Bitmap.DirtyBytes);
        return migration.Snapshot();
    }

    /// <summary>
    /// Switches a prepared migration's link between sync and async mirroring, for now only (not saved; an abort
    /// restores the replica's own mode). A VM migration mirrors asynchronously while QEMU copies the memory: the
    /// disk is in sync by then, and a guest write waiting for its round trip behind the memory stream would stall
    /// the guest; the hand-over still waits until the replica holds every write (IsCaughtUp), inside the pause, so
    /// <paramref name="asyncLagLimit"/> bounds that backlog in time (see <see cref="PeerLink.AsyncLagLimit"/>).
    /// </summary>
    public void SetMigrationMirroring(string volume, ReplicaMode mode, TimeSpan asyncLagLimit = default)
    {
        var migration = FindMigrationObject(volume) ?? throw new ReplicationException($"no migration of volume '{volume}' was prepared");
        migration.Link.AsyncLagLimit = mode == ReplicaMode.Async ? asyncLagLimit : TimeSpan.Zero;
        migration.Link.Mode = mode;
    }

    /// <summary>Compiles both sides of a hand-over in the background (see <see cref="JitWarmup"/>): the source's now, the
    /// destination's when a VM is about to arrive.</summary>
    public static Task WarmUpHandOver() => JitWarmup.PrepareAsync(typeof(ReplicationService), typeof(Migration), typeof(PeerLink),
        typeof(ReplicatedVolume), typeof(Target.ReplicaSession), typeof(Protocol.ReplicationFrameWriter), typeof(Peers.Protocol.PeerFrameWriter), typeof(Protocol.PeerHandOver),
        typeof(OutFrame), typeof(WriteGate), typeof(ReplicationFile), typeof(RegionBitmap), typeof(ActivityLog), typeof(DurableFile));

    /// <summary>The migration of a volume (the last one, when it ended); throws when none was started.</summary>
    public MigrationStatus GetMigration(string volume) =>
        FindMigration(volume) ?? throw new ReplicationException($"no migration of volume '{volume}' was started here");

    public MigrationStatus? FindMigration(string volume)
    {
        Migration? m;
        lock (_gate) _migrations.TryGetValue(volume, out m);
        return m?.Snapshot();
    }

    /// <summary>Waits until the destination holds every write made so far (and every new write is mirrored synchronously).</summary>
    public async Task WaitInSyncAsync(string volume, CancellationToken cancellationToken = default)
    {
        while (true)
        {
            var status = GetMigration(volume);
            switch (status.Phase)
            {
                case MigrationPhase.InSync: return;
                case MigrationPhase.Aborted or MigrationPhase.Completed or MigrationPhase.HandingOver:
                    throw new ReplicationException($"migration of '{volume}' is {status.Phase}");
                case MigrationPhase.Failed:
                    throw new ReplicationException($"migration of '{volume}' failed: {status.Error}");
            }
            await Task.Delay(10, cancellationToken).ConfigureAwait(false);
        }
    }

    private Migration? FindMigrationObject(string volume)
    {
        lock (_gate) return _migrations.TryGetValue(volume, out var m) ? m : null;
    }

    /// <summary>
    /// Moves the primary role to the migration's destination: writes stop (new ones wait, and fail as
    /// read-only once the role moved), in-flight writes drain, the destination flushes, then HandOver
    /// makes it the primary under a new generation. This host becomes its replica
    /// (<paramref name="keepReplica"/>) or drops the volume. <paramref name="promoted"/> is called as soon as the
    /// destination confirmed, before this host steps down: a paused VM may go on from there (writes here stay stopped).
    /// </summary>
    public async Task<HandOverResult> HandOverAsync(string volume, bool keepReplica = true, CancellationToken cancellationToken = default,
        Action? promoted = null)
    {
        long called = Stopwatch.GetTimestamp();
        await _admin.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            var migration = FindMigrationObject(volume) ?? throw new ReplicationException($"no migration of volume '{volume}' was prepared");
            ThrowIfInDoubt(volume, migration);
            if (migration.Phase is MigrationPhase.Aborted or MigrationPhase.Completed or MigrationPhase.HandingOver)
                throw new ReplicationException($"migration of '{volume}' is {migration.Phase}");
            ReplicatedVolume primary;
            lock (_gate)
                primary = _primaries.TryGetValue(volume, out var p) ? p : throw new ReplicationException($"volume '{volume}' is not a replicated primary here");
            if (migration.Phase == MigrationPhase.Failed && primary.Gate.IsFrozen)
            {
                // An earlier hand-over whose outcome was unknown: settle it first.
                if (await ResolveUnknownAsync(migration, primary).ConfigureAwait(false))
                    throw new ReplicationException($"an earlier hand-over of '{volume}' to {migration.Peer} had completed: this host is its replica now");
            }
            migration.Phase = MigrationPhase.Copying;
            migration.Error = null;
            // Writes still in flight (asynchronous mirroring in a VM's memory phase) do not hold the hand-over back here
            // (it runs in a VM's pause): the catch-up below waits for them once writes are stopped.
            await WaitInSyncAsync(volume, cancellationToken).ConfigureAwait(false);
            return await HandOverCoreAsync(migration, primary, keepReplica, promoted, called).ConfigureAwait(false);
        }
        finally { _admin.Release(); }
    }

    private async Task<HandOverResult> HandOverCoreAsync(Migration migration, ReplicatedVolume primary, bool keepReplica, Action? promoted, long called)
    {
        string volume = migration.Volume, peer = migration.Peer;
        var link = migration.Link;
        var settled = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        lock (_gate) _handOvers[volume] = settled;
        migration.Phase = MigrationPhase.HandingOver;
        var generations = primary.Generations.Next();
        var flags = keepReplica ? PeerHandOverFlags.KeepOldPrimary | (link.Mode == ReplicaMode.Async ? PeerHandOverFlags.AsyncLink : 0) : PeerHandOverFlags.None;
        var timeout = Options.HandOverTimeout;
        long frozenAt = 0;
        Task<bool>? confirm = null;
        bool demoted = false, volumeDeleted = false;
        List<PeerHandOverReplica>? handedOff = null;
        HandOverStep step = HandOverStep.StopWrites;
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
                await DoneAsync(HandOverStep.StopWrites).ConfigureAwait(false);

                step = HandOverStep.DrainInFlight;
                await primary.Gate.DrainAsync().WaitAsync(timeout).ConfigureAwait(false);
                await DoneAsync(step).ConfigureAwait(false);

                // No flush of its own: the replica flushes before it acts on HandOver, which follows every write in order.
                step = HandOverStep.CatchUp;
                await CatchUpAsync(link, frozenAt, timeout).ConfigureAwait(false);
                await DoneAsync(step).ConfigureAwait(false);

                step = HandOverStep.SendPromote;
                // The other replicas go to the destination with what they lack: their links stop here first, so none
                // can attach again and overwrite what the new primary writes, and their bitmaps are final.
                handedOff = HandOffReplicas(primary, link);
                // The intent is durable before the frame can leave: a crash from here on restarts this host
                // read-only, asking the destination whether it took over (never as a writable primary).
                primary.SetPendingHandOver(new PendingHandOver(peer, generations.Current, [.. generations.History], keepReplica));
                confirm = link.Mirror(OutFrame.HandOver(generations, flags, handedOff))
                    ?? throw new ReplicationException($"the link to {peer} went down before HandOver could be sent");
                await DoneAsync(step).ConfigureAwait(false);

                step = HandOverStep.AwaitConfirm;
                if (!await confirm.WaitAsync(timeout).ConfigureAwait(false))
                    throw new ReplicationException($"{peer} did not confirm the hand-over (the link failed)");
                await DoneAsync(step).ConfigureAwait(false);
                try { promoted?.Invoke(); }
                catch (Exception ex) when (ex is not OutOfMemoryException) { Log.HandOverFailed(_logger, volume, peer, $"the promoted callback failed: {ex.Message}"); }

                step = HandOverStep.Demote;
                volumeDeleted = await DemoteAsync(primary, peer, generations, keepReplica).ConfigureAwait(false);
                demoted = true;
                await DoneAsync(step).ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is not OutOfMemoryException and not SimulatedCrashException)
            {
                var outcome = confirm is null ? HandOverOutcome.NotPromoted
                    : demoted ? HandOverOutcome.Promoted
                    : await ResolveAsync(primary, link, confirm, generations).ConfigureAwait(false);
                string what = (ex is TimeoutException ? $"timed out after {timeout.TotalSeconds:0.#} s" : ex.Message)
                    + (steps.Length > 0 ? $" (steps done: {steps})" : "");
                switch (outcome)
                {
                    case HandOverOutcome.NotPromoted:
                        if (primary.PendingHandOver is not null) primary.SetPendingHandOver(null);
                        primary.Gate.Thaw();
                        await UnhaltLinksAsync(primary).ConfigureAwait(false);
                        migration.Phase = MigrationPhase.Failed;
                        migration.Error = $"hand-over failed at {step}: {what}; {peer} was not promoted, this host stays primary";
                        Log.HandOverFailed(_logger, volume, peer, migration.Error);
                        throw new ReplicationException(migration.Error);
                    case HandOverOutcome.Promoted:
                        if (!demoted) volumeDeleted = await DemoteAsync(primary, peer, generations, keepReplica).ConfigureAwait(false);
                        migration.End(MigrationPhase.Completed, $"hand-over hit a failure at {step} ({what}) after {peer} confirmed: {peer} is primary");
                        Log.HandOverFailed(_logger, volume, peer, migration.Error!);
                        throw new ReplicationException(migration.Error!);
                    default:
                        lock (_gate) _pendingGenerations[volume] = (generations, keepReplica);
                        StartSettling(primary);
                        migration.Phase = MigrationPhase.Failed;
                        migration.Error = $"hand-over failed at {step}: {what}; whether {peer} was promoted is unknown ({peer} unreachable): "
                            + "writes stay stopped until it is reachable (retry the hand-over or abort)";
                        Log.HandOverFailed(_logger, volume, peer, migration.Error);
                        throw new ReplicationException(migration.Error);
                }
            }
            var pause = Stopwatch.GetElapsedTime(frozenAt);
            migration.End(MigrationPhase.Completed, null);
            Log.HandedOver(_logger, volume, peer, pause.TotalMilliseconds, steps.ToString(), generations.Current);
            foreach (var r in handedOff ?? [])
                Log.ReplicaHandedOff(_logger, volume, peer, r.Peer, (r.Flags & PeerHandOverReplicaFlags.Async) != 0 ? "async" : "sync",
                    r.OutOfSync.Sum(e => (long)e.Length));
            return new HandOverResult(volume, peer, pause, generations, keepReplica, volumeDeleted);
        }
        finally
        {
            lock (_gate) _handOvers.Remove(volume);
            settled.TrySetResult();
        }

        async Task DoneAsync(HandOverStep s)
        {
            long now = Stopwatch.GetTimestamp();
            steps.Append(", ").Append(s).Append(' ')
                .Append(Stopwatch.GetElapsedTime(stepStarted, now).TotalMilliseconds.ToString("0.0", System.Globalization.CultureInfo.InvariantCulture)).Append(" ms");
            stepStarted = now;
            if (Hooks.CrashAfter == s)
            {
                if (Hooks.BeforeCrash is { } before) await before().ConfigureAwait(false);
                throw new SimulatedCrashException(s);
            }
            if (Hooks.FailAfter == s) throw new InjectedFaultException(s);
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
                Log.ReplicasNotHandedOff(_logger, primary.Name, destination.Peer, string.Join(", ", others.Select(o => o.Peer)),
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
            Log.ReplicasNotHandedOff(_logger, primary.Name, destination.Peer, string.Join(", ", others.Skip(PeerProtocol.MaxHandOverReplicas).Select(o => o.Peer)),
                $"a hand-over takes at most {PeerProtocol.MaxHandOverReplicas} replicas along: these are left behind");
        return handedOff;
    }

    /// <summary>The hand-over did not happen after all: the links it halted connect again (this host feeds its replicas).</summary>
    private static async Task UnhaltLinksAsync(ReplicatedVolume primary)
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
                throw new ReplicationException($"the replica is {link.State}");
            await Task.Delay(1).ConfigureAwait(false);
        }
    }

    private enum HandOverOutcome { NotPromoted, Promoted, Unknown }

    /// <summary>
    /// HandOver was sent and something failed: did the destination promote? Its acknowledgement says yes;
    /// without one, the connection is dropped (whatever was on it is then applied or never: the replica
    /// stops a session before accepting the next) and the destination is asked through a fresh Attach.
    /// </summary>
    private async Task<HandOverOutcome> ResolveAsync(ReplicatedVolume primary, PeerLink link, Task<bool> confirm, DataGenerations generations)
    {
        try
        {
            if (await confirm.WaitAsync(Options.HandOverTimeout).ConfigureAwait(false)) return HandOverOutcome.Promoted;
        }
        catch (TimeoutException) { }
        link.Drop();
        var deadline = Stopwatch.GetTimestamp() + (long)(Options.HandOverTimeout.TotalSeconds * Stopwatch.Frequency);
        while (true)
        {
            try
            {
                var attached = await AttachAsync(primary, link.Peer, CancellationToken.None).ConfigureAwait(false);
                await attached.Connection.DisposeAsync().ConfigureAwait(false);
                var ack = attached.Ack;
                bool promoted = (ack.Flags & PeerAttachFlags.Primary) != 0
                    && (ack.Generations.Current == generations.Current || ack.Generations.DescendsFrom(generations.Current));
                return promoted ? HandOverOutcome.Promoted : HandOverOutcome.NotPromoted;
            }
            catch (Exception ex) when (ex is not OutOfMemoryException)
            {
                if (Stopwatch.GetTimestamp() > deadline) return HandOverOutcome.Unknown;
                await Task.Delay(100).ConfigureAwait(false);
            }
        }
    }

    /// <summary>A frozen primary whose hand-over outcome was unknown: true when it turned out the peer was promoted (and this host was demoted).</summary>
    private async Task<bool> ResolveUnknownAsync(Migration migration, ReplicatedVolume primary)
    {
        (DataGenerations Generations, bool Keep)? pending;
        lock (_gate) pending = _pendingGenerations.GetValueOrDefault(migration.Volume);
        if (pending is null)
        {
            primary.Gate.Thaw();
            await UnhaltLinksAsync(primary).ConfigureAwait(false);
            return false;
        }
        var outcome = await ResolveAsync(primary, migration.Link, Task.FromResult(false), pending.Value.Generations).ConfigureAwait(false);
        if (outcome != HandOverOutcome.Unknown)
            lock (_gate) _pendingGenerations.Remove(migration.Volume);
        switch (outcome)
        {
            case HandOverOutcome.Promoted:
                await DemoteAsync(primary, migration.Peer, pending.Value.Generations, pending.Value.Keep).ConfigureAwait(false);
                migration.End(MigrationPhase.Completed, $"{migration.Peer} had been promoted");
                return true;
            case HandOverOutcome.NotPromoted:
                if (primary.PendingHandOver is not null) primary.SetPendingHandOver(null);
                primary.Gate.Thaw();
                await UnhaltLinksAsync(primary).ConfigureAwait(false);
                return false;
            default:
                throw new ReplicationException($"{migration.Peer} is still unreachable: whether it was promoted is unknown, writes stay stopped");
        }
    }

    private readonly Dictionary<string, (DataGenerations Generations, bool Keep)?> _pendingGenerations = new(StringComparer.Ordinal);

    /// <summary>The destination is primary: this host becomes its replica (or drops the volume); writes here are refused from now on.</summary>
    private async Task<bool> DemoteAsync(ReplicatedVolume primary, string peer, DataGenerations generations, bool keepReplica)
    {
        string volume = primary.Name;
        var demoted = new ReplicationFile(1, VolumeRole.Replica, generations.Current, [.. generations.History], [], peer);
        lock (_gate)
        {
            demoted.Write(StatePath(volume));
            _files[volume] = demoted;
            _primaries.Remove(volume);
        }
        primary.Gate.Close($"volume '{volume}' was handed over to {peer}: it is read-only on this host now");
        var links = primary.Links;
        // Its bitmaps and activity log are deleted just below, so nothing is saved first: the state file written
        // above already makes this host a replica, and these files mean nothing to a replica. This step sits
        // inside a VM's switch-over pause, where every fsync counts.
        await primary.AbandonAsync().ConfigureAwait(false);
        foreach (var l in links) TryDelete(BitmapPath(volume, l.Peer));
        TryDelete(ActivityLogPath(volume));
        Log.Demoted(_logger, volume, peer, generations.Current);
        if (keepReplica) return false;
        try
        {
            lock (_gate)
            {
                Store.Delete(volume);
                _files.Remove(volume);
            }
            TryDelete(StatePath(volume));
            return true;
        }
        catch (VolumeException ex) when (ex.Error == VolumeError.InUse)
        {
            // Still exported: it stays a (read-only, detached) replica until it can be deleted.
            Log.HandOverFailed(_logger, volume, peer, $"the old copy is kept as a replica: {ex.Message}");
            return false;
        }
    }

    private static void TryDelete(string path)
    {
        try { File.Delete(path); }
        catch (IOException) { }
    }

    /// <summary>
    /// Abandons a migration before its hand-over: this host stays primary with writes flowing (a replica
    /// the migration created is paused, a reused one gets its mode back); the destination keeps what it
    /// copied as an out-of-sync replica and this host keeps its bitmap, so a retry resumes.
    /// </summary>
    public async Task AbortMigrationAsync(string volume)
    {
        await _admin.WaitAsync().ConfigureAwait(false);
        try
        {
            var migration = FindMigrationObject(volume) ?? throw new ReplicationException($"no migration of volume '{volume}' was started here");
            if (migration.Phase is MigrationPhase.Completed or MigrationPhase.HandingOver)
                throw new ReplicationException($"migration of '{volume}' is {migration.Phase}: too late to abort");
            if (migration.Phase == MigrationPhase.Aborted) return;
            ReplicatedVolume? primary;
            lock (_gate) _primaries.TryGetValue(volume, out primary);
            if (primary is not null && primary.Gate.IsFrozen && await ResolveUnknownAsync(migration, primary).ConfigureAwait(false))
                throw new ReplicationException($"the hand-over of '{volume}' to {migration.Peer} had completed: nothing to abort");
            var link = migration.Link;
            if (primary is not null && primary.Links.Contains(link))
            {
                if (migration.RestorePaused) await link.PauseAsync().ConfigureAwait(false);
                link.Mode = migration.RestoreMode;
                link.AsyncLagLimit = TimeSpan.Zero;
                link.Bandwidth = migration.RestoreBandwidth;
                primary.SaveRecord(link);
                primary.SaveBitmaps();
            }
            migration.End(MigrationPhase.Aborted, null);
            Log.MigrationAborted(_logger, volume, migration.Peer);
        }
        finally { _admin.Release(); }
    }

    /// <summary>Prepare, wait in sync (reporting progress), hand over. Cancelled before the hand-over, the migration is aborted.</summary>
    public async Task<MigrationResult> MigrateAsync(string volume, string peer, bool keepReplica = true, IProgress<MigrationStatus>? progress = null,
        CancellationToken cancellationToken = default, long? bandwidth = null)
    {
        var watch = Stopwatch.StartNew();
        var prepared = await PrepareMigrationAsync(volume, peer, bandwidth, cancellationToken).ConfigureAwait(false);
        progress?.Report(prepared);
        try
        {
            while (true)
            {
                var status = GetMigration(volume);
                progress?.Report(status);
                if (status.Phase == MigrationPhase.InSync) break;
                if (status.Phase is MigrationPhase.Failed or MigrationPhase.Aborted)
                    throw new ReplicationException($"migration of '{volume}' to {peer}: {status.Phase}: {status.Error}");
                await Task.Delay(50, cancellationToken).ConfigureAwait(false);
            }
            var handOver = await HandOverAsync(volume, keepReplica, cancellationToken).ConfigureAwait(false);
            var final = GetMigration(volume);
            progress?.Report(final);
            return new MigrationResult(final, handOver, watch.Elapsed);
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            if (FindMigrationObject(volume)?.Phase is MigrationPhase.Preparing or MigrationPhase.Copying or MigrationPhase.InSync)
                await AbortMigrationAsync(volume).ConfigureAwait(false);
            throw;
        }
    }

    private async Task WaitHandOverSettledAsync(string volume)
    {
        TaskCompletionSource? settling;
        lock (_gate) _handOvers.TryGetValue(volume, out settling);
        if (settling is null) return;
        try { await settling.Task.WaitAsync(Options.AttachTimeout).ConfigureAwait(false); }
        catch (TimeoutException) { }
    }

    /// <summary>
    /// Target side of HandOver: this replica becomes the primary under the generations the old primary
    /// chose, durably, before the frame is acknowledged. Null when done, else why it is refused.
    /// </summary>
    internal string? AcceptHandOver(string volume, string peer, PeerHandOver handOver, ReplicaSession session, long received)
    {
        lock (_gate)
        {
            if (!_files.TryGetValue(volume, out var file) || file.Role != VolumeRole.Replica
                || !_sessions.TryGetValue(volume, out var s) || !ReferenceEquals(s, session))
                return $"'{volume}' is not a replica of {peer} here any more";
            bool keep = (handOver.Flags & PeerHandOverFlags.KeepOldPrimary) != 0;
            var mode = (handOver.Flags & PeerHandOverFlags.AsyncLink) != 0 ? ReplicaMode.Async : ReplicaMode.Sync;
            var generations = handOver.Generations;
            long flushed = Stopwatch.GetTimestamp();
            long size = Store.Get(volume).Size;
            List<ReplicaRecord> replicas = keep ? [new ReplicaRecord(peer, mode, generations.Current)] : [];
            // What the old primary will hold once it steps down is exactly what is here: nothing to resync. Not synced
            // (this runs in a VM's pause): a crash that loses the file costs a full resync to the old primary, no data.
            if (keep) new RegionBitmap(size, Options.RegionSize).Save(BitmapPath(volume, peer), synced: false);
            // Its other replicas, with what each may lack: saved before the promotion is (and so before it is
            // acknowledged), so a crash here right after cannot forget what they miss.
            foreach (var other in handOver.Replicas ?? [])
            {
                if (other.Peer == _identity.Name || other.Peer == peer)
                {
                    Log.ReplicaTakenOver(_logger, volume, peer, other.Peer, "skipped: it names this host or the old primary");
                    continue;
                }
                if (_trust.Find(other.Peer) is null)
                {
                    Log.ReplicaTakenOver(_logger, volume, peer, other.Peer,
                        $"not taken over: it is not a trusted peer of {_identity.Name}; trust it and add the replica here (it keeps its data)");
                    continue;
                }
                var bitmap = new RegionBitmap(size, Options.RegionSize);
                foreach (var extent in other.OutOfSync)
                    if (extent.Offset < (ulong)size) bitmap.MarkDirty((long)extent.Offset, (long)Math.Min(extent.Length, (ulong)size - extent.Offset));
                bitmap.Save(BitmapPath(volume, other.Peer));
                bool async = (other.Flags & PeerHandOverReplicaFlags.Async) != 0, paused = (other.Flags & PeerHandOverReplicaFlags.Paused) != 0;
                replicas.Add(new ReplicaRecord(other.Peer, async ? ReplicaMode.Async : ReplicaMode.Sync, other.SyncedGeneration, paused, other.Bandwidth));
                Log.ReplicaTakenOver(_logger, volume, peer, other.Peer,
                    $"taken over ({(async ? "async" : "sync")}{(paused ? ", paused" : "")}): {bitmap.DirtyBytes} bytes out of sync, "
                    + $"last in sync at generation {other.SyncedGeneration?.ToString() ?? "none"}");
            }
            var promoted = new ReplicationFile(1, VolumeRole.Primary, generations.Current, [.. generations.History], replicas, null);
            TryDelete(ActivityLogPath(volume));
            long bitmapSaved = Stopwatch.GetTimestamp();
            promoted.Write(StatePath(volume));
            long stateWritten = Stopwatch.GetTimestamp();
            _files[volume] = promoted;
            _sessions.Remove(volume);
            if (replicas.Count > 0)
            {
                var replicated = ReplicatedVolume.Open(this, Store.Open(volume), promoted, _logger);
                _primaries[volume] = replicated;
                replicated.StartLinks();
            }
            static double Ms(long from, long to) => Stopwatch.GetElapsedTime(from, to).TotalMilliseconds;
            long opened = Stopwatch.GetTimestamp();
            Log.PromotedByHandOver(_logger, volume, peer, generations.Current, Ms(received, opened), Ms(received, flushed),
                Ms(flushed, bitmapSaved), Ms(bitmapSaved, stateWritten), Ms(stateWritten, opened));
            return null;
        }
    }
}

public sealed partial class ReplicationService
{
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
    public async Task<ReplicationStatus> ResolveAsync(string volume, string keepHost, CancellationToken cancellationToken = default)
    {
        Store.Get(volume);
        if (keepHost != _identity.Name && _trust.Find(keepHost) is null)
            throw new ReplicationException($"{keepHost} is neither this host ({_identity.Name}) nor a trusted peer");
        await _admin.WaitAsync(cancellationToken).ConfigureAwait(false);
        lock (_gate) _rivals.Remove(volume);
        string? addPeer = null;
        try
        {
            ReplicatedVolume? primary;
            ReplicationFile? file;
            lock (_gate)
            {
                _primaries.TryGetValue(volume, out primary);
                _files.TryGetValue(volume, out file);
            }
            if (keepHost == _identity.Name)
            {
                if (file is { Role: VolumeRole.Replica }) throw new ReplicationException($"volume '{volume}' is a replica here: there is no data of its own to keep");
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
                    if (addPeer is null) return GetStatus(volume);
                    Log.SyncDecided(_logger, volume, addPeer, "no record of what was written here since the promotion: the whole volume is copied");
                }
                Log.SplitBrainResolved(_logger, volume, keepHost, "keeps its data; the other side will be overwritten where either side wrote apart");
            }
            else
            {
                if (file is { Role: VolumeRole.Replica } && file.PrimaryPeer == keepHost)
                {
                    // Already lost to the keeper (a second resolve): its copy is under way or done, and the regions kept
                    // for it stay until it is complete. Starting over would only make the keeper copy everything.
                    Log.SplitBrainResolved(_logger, volume, keepHost, "wins; this host already follows it");
                    return GetStatus(volume);
                }
                // Writes stop first (on NBD connections already open too) and those in flight finish, then the role goes.
                WriteGate? fence;
                lock (_gate) _fences.TryGetValue(volume, out fence);
                var gate = primary?.Gate ?? fence;
                string reason = $"volume '{volume}' lost a split brain to {keepHost}: it is read-only on this host now";
                bool drained = true;
                if (gate is not null)
                {
                    gate.Freeze();
                    try { await gate.DrainAsync().WaitAsync(Options.HandOverTimeout, cancellationToken).ConfigureAwait(false); }
                    catch (TimeoutException) { drained = false; }
                    catch (OperationCanceledException)
                    {
                        gate.Thaw();
                        throw;
                    }
                }
                KeepDivergedRegions(volume, keepHost, primary, drained);
                var demoted = new ReplicationFile(1, VolumeRole.Replica, Guid.Empty, [], [], keepHost);
                lock (_gate)
                {
                    demoted.Write(StatePath(volume));
                    _files[volume] = demoted;
                    _primaries.Remove(volume);
                }
                // A promoted replica is a replicated primary now (its parted link), with no fence of its own: one is closed
                // anyway, so that writes on connections already open say why they are refused.
                (fence ?? FenceOf(volume)).Close(reason);
                if (primary is not null)
                {
                    primary.Gate.Close(reason);
                    var links = primary.Links;
                    await primary.DisposeAsync().ConfigureAwait(false);
                    foreach (var l in links) TryDelete(BitmapPath(volume, l.Peer));
                }
                TryDelete(ActivityLogPath(volume));
                Log.SplitBrainResolved(_logger, volume, keepHost, "wins; this host's data will be overwritten by it");
                return GetStatus(volume);
            }
        }
        finally { _admin.Release(); }
        if (addPeer is not null && !GetStatus(volume).Replicas.Any(r => r.Peer == addPeer))
            await AddReplicaAsync(volume, addPeer, ReplicaMode.Sync, cancellationToken: cancellationToken).ConfigureAwait(false);
        return GetStatus(volume);
    }

    /// <summary>
    /// The losing side of a resolve, writes stopped: saves the regions this host wrote apart from
    /// <paramref name="keepHost"/> (its link's bitmap for it), before the state file says it lost, so a crash
    /// in between leaves it a primary that simply resolves again. With no such bitmap the file is removed
    /// (a stale one must never stand for this split brain) and the keeper copies the whole volume.
    /// </summary>
    private void KeepDivergedRegions(string volume, string keepHost, ReplicatedVolume? primary, bool drained)
    {
        var path = DivergedPath(volume, keepHost);
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
            DeleteDivergedFiles(volume, except: path);
            Log.SplitBrainResolved(_logger, volume, keepHost, $"wins; the {link.Bitmap.DirtyBytes} bytes this host wrote apart (or never got acknowledged) are handed over, so only those and {keepHost}'s are copied");
        }
        else
        {
            DeleteDivergedFiles(volume);
            Log.SplitBrainResolved(_logger, volume, keepHost, $"wins; {missing}: it will copy the whole volume over this one");
        }
    }
}

public sealed partial class ReplicationService
{
    /// <summary>
    /// Stops replicating <paramref name="volume"/> to <paramref name="peer"/>: the link goes down, its record
    /// and bitmap are dropped, and the peer (if reachable) is told to drop its replica role (it keeps the
    /// data as a volume of its own, which a later AddReplica will not overwrite). The result says whether
    /// the peer was told.
    /// </summary>
    public async Task<ReplicaRemoval> RemoveReplicaAsync(string volume, string peer, CancellationToken cancellationToken = default)
    {
        Store.Get(volume);
        await _admin.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            ReplicatedVolume? primary;
            lock (_gate)
            {
                _primaries.TryGetValue(volume, out primary);
                if (_migrations.TryGetValue(volume, out var m) && m.Peer == peer && m.Phase == MigrationPhase.HandingOver)
                    throw new ReplicationException($"volume '{volume}' is being handed over to {peer}");
            }
            var link = primary?.Links.FirstOrDefault(l => l.Peer == peer)
                ?? throw new ReplicationException($"volume '{volume}' has no replica on {peer}");
            if (primary!.PendingHandOver is { } pending && pending.Peer == peer)
                throw new ReplicationException($"a hand-over of '{volume}' to {peer} is in doubt; it must be settled first");
            await link.DisposeAsync().ConfigureAwait(false);
            primary.RemoveLink(link);
            TryDelete(BitmapPath(volume, peer));
            lock (_gate) _files[volume] = ReplicationFile.Read(StatePath(volume));
            Log.ReplicaRemoved(_logger, volume, peer);
            // A parted link's peer never was this host's replica (it was this host's primary): nothing to tell it.
            if (link.Parted) return new ReplicaRemoval(GetStatus(volume), true, null);
            string? error = null;
            try
            {
                await DetachPeerAsync(volume, peer, cancellationToken).ConfigureAwait(false);
                Log.ReplicaDetached(_logger, volume, peer, "dropped its replica role");
            }
            catch (Exception ex) when (ex is not OutOfMemoryException and not OperationCanceledException)
            {
                error = ex.Message;
                Log.ReplicaDetached(_logger, volume, peer, $"could not be told: {ex.Message}; it stays a (detached) replica there");
            }
            return new ReplicaRemoval(GetStatus(volume), error is null, error);
        }
        finally { _admin.Release(); }
    }

    private async Task DetachPeerAsync(string volume, string peer, CancellationToken cancellationToken)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, _stopping.Token);
        timeout.CancelAfter(Options.AttachTimeout);
        await using var connection = await _connector.ConnectAsync(peer, timeout.Token).ConfigureAwait(false);
        ReplicationFrameWriter.WriteDetach(connection.Transport.Output, 1, new PeerDetach(volume));
        await connection.Transport.Output.FlushAsync(timeout.Token).ConfigureAwait(false);
        var frame = await PeerFrameReader.ReadFrameAsync(connection.Transport.Input, PeerProtocol.MaxHandshakePayload, timeout.Token).ConfigureAwait(false)
            ?? throw new ReplicationException($"{peer} closed the connection instead of answering Detach");
        if (frame.Type == PeerFrameType.Error)
        {
            var error = PeerError.Read(frame.Payload);
            throw new ReplicationException($"{peer} refused to detach '{volume}': {error.Code}: {error.Message}");
        }
        if (frame.Type != PeerFrameType.Ack) throw new ReplicationException($"{peer} answered Detach with {frame.Type}");
    }

    /// <summary>Target side of Detach: a replica of <paramref name="peer"/> drops its replica role (the data stays as a plain volume). Null when done, else why not.</summary>
    internal async Task<string?> AcceptDetachAsync(string volume, string peer)
    {
        if (!VolumeName.IsValid(volume)) return $"'{volume}' is not a valid volume name";
        ReplicaSession? session;
        lock (_gate)
        {
            if (!_files.TryGetValue(volume, out var file) || file.Role != VolumeRole.Replica)
                return $"'{volume}' is not a replica on {_identity.Name}";
            if (file.PrimaryPeer != peer) return $"'{volume}' is a replica of {file.PrimaryPeer} here, not of {peer}";
            _files.Remove(volume);
            _sessions.Remove(volume, out session);
            TryDelete(StatePath(volume));
            DeleteDivergedFiles(volume);
        }
        if (session is not null) await session.StopAsync().ConfigureAwait(false);
        Log.ReplicaDetached(_logger, volume, peer, "detached this replica: it is a volume of its own here now");
        return null;
    }
}

/// <summary>A replica removed: the volume's status now, and whether the peer dropped its replica role (else why not).</summary>
public sealed record ReplicaRemoval(ReplicationStatus Status, bool PeerDetached, string? PeerError);

public sealed partial class ReplicationService
{
    private readonly List<Task> _settlers = [];

    /// <summary>A hand-over whose outcome is unknown with no in-process migration to retry it: refused (the background settling decides).</summary>
    private void ThrowIfInDoubt(string volume, Migration migration)
    {
        ReplicatedVolume? primary;
        lock (_gate) _primaries.TryGetValue(volume, out primary);
        if (primary?.PendingHandOver is { } doubt && !(migration.Phase == MigrationPhase.Failed && primary.Gate.IsFrozen))
            throw new ReplicationException($"a hand-over of '{volume}' to {doubt.Peer} is in doubt: it is settled first (read-only until then)");
    }

    /// <summary>
    /// A volume found at start with a hand-over intent: this host stopped between deciding to hand it over
    /// and knowing whether the destination took over. It stays read-only (NBD writes refused) and its links
    /// stay down until the destination answers.
    /// </summary>
    private void OpenInDoubt(ReplicatedVolume volume, PendingHandOver pending)
    {
        string reason = $"a hand-over of '{volume.Name}' to {pending.Peer} is in doubt (this host stopped in the middle of it): "
            + $"read-only until {pending.Peer} says whether it took over";
        volume.Gate.Close(reason);
        volume.Doubt = reason;
        volume.LinksDeferred = true;
        Log.HandOverInDoubt(_logger, volume.Name, pending.Peer, reason);
        StartSettling(volume);
    }

    private void StartSettling(ReplicatedVolume volume)
    {
        lock (_gate)
        {
            _settlers.RemoveAll(t => t.IsCompleted);
            var token = _stopping.Token;
            _settlers.Add(Task.Run(() => SettleLoopAsync(volume, token), CancellationToken.None));
        }
    }

    /// <summary>Asks the destination of an in-doubt hand-over every HandOverRetryInterval until it answers.</summary>
    private async Task SettleLoopAsync(ReplicatedVolume volume, CancellationToken stopping)
    {
        while (!stopping.IsCancellationRequested)
        {
            try { await _admin.WaitAsync(stopping).ConfigureAwait(false); }
            catch (OperationCanceledException) { return; }
            bool settled;
            try { settled = await TrySettleAsync(volume, stopping).ConfigureAwait(false); }
            catch (Exception ex) when (ex is not OutOfMemoryException)
            {
                if (stopping.IsCancellationRequested) return;
                Log.HandOverInDoubt(_logger, volume.Name, volume.PendingHandOver?.Peer ?? "-", $"settling the hand-over failed: {ex.Message}");
                settled = false;
            }
            finally { _admin.Release(); }
            if (settled) return;
            try { await Task.Delay(Options.HandOverRetryInterval, stopping).ConfigureAwait(false); }
            catch (OperationCanceledException) { return; }
        }
    }

    /// <summary>Under the admin lock: one question to the destination. True when the doubt is gone (either way).</summary>
    private async Task<bool> TrySettleAsync(ReplicatedVolume volume, CancellationToken stopping)
    {
        lock (_gate)
            if (!_primaries.TryGetValue(volume.Name, out var current) || !ReferenceEquals(current, volume)) return true;
        if (volume.PendingHandOver is not { } pending) return true;
        var migration = FindMigrationObject(volume.Name);
        PeerAttachAck ack;
        try
        {
            var attached = await AttachAsync(volume, pending.Peer, stopping).ConfigureAwait(false);
            await attached.Connection.DisposeAsync().ConfigureAwait(false);
            ack = attached.Ack;
        }
        catch (Exception ex) when (ex is not OutOfMemoryException && !stopping.IsCancellationRequested)
        {
            volume.Doubt = $"a hand-over of '{volume.Name}' to {pending.Peer} is in doubt and {pending.Peer} cannot be asked ({ex.Message}): "
                + $"read-only here; asking again every {Options.HandOverRetryInterval.TotalSeconds:0.#} s";
            Log.HandOverInDoubt(_logger, volume.Name, pending.Peer, volume.Doubt);
            return false;
        }
        var generations = pending.Generations;
        bool promoted = (ack.Flags & PeerAttachFlags.Primary) != 0
            && (ack.Generations.Current == generations.Current || ack.Generations.DescendsFrom(generations.Current));
        lock (_gate) _pendingGenerations.Remove(volume.Name);
        if (promoted)
        {
            await DemoteAsync(volume, pending.Peer, generations, pending.KeepReplica).ConfigureAwait(false);
            if (migration is not null && migration.Phase != MigrationPhase.Completed) migration.End(MigrationPhase.Completed, $"{pending.Peer} had been promoted");
            Log.HandOverInDoubt(_logger, volume.Name, pending.Peer, $"the hand-over in doubt had happened: {pending.Peer} is primary, this host is its replica");
        }
        else
        {
            volume.SetPendingHandOver(null);
            volume.Doubt = null;
            volume.Gate.Reopen();
            volume.Gate.Thaw();
            if (volume.LinksDeferred)
            {
                volume.LinksDeferred = false;
                volume.StartLinks();
            }
            await UnhaltLinksAsync(volume).ConfigureAwait(false);
            if (migration is not null && migration.Phase == MigrationPhase.Failed)
                migration.Error = $"the hand-over in doubt had not happened: {pending.Peer} was not promoted, this host stays primary";
            Log.HandOverInDoubt(_logger, volume.Name, pending.Peer, $"the hand-over in doubt had not happened: {pending.Peer} was not promoted, this host is primary again");
        }
        return true;
    }
}

/// <summary>Tests: the hand-over stops dead at a step, as if the process had died there (nothing is cleaned up).</summary>
internal sealed class SimulatedCrashException(HandOverStep step) : Exception($"simulated crash after {step}");
