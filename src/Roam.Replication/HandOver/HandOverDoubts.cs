using System.Diagnostics;
using Microsoft.Extensions.Logging;
using Roam.Peers.Protocol;
using Roam.Replication.Engine;
using Roam.Replication.Protocol;
using Roam.Replication.Source;
using Roam.Replication.Volumes;
using Roam.Storage.Tracking;

namespace Roam.Replication.HandOver;

/// <summary>
/// Hand-overs whose outcome is not known: HandOver was sent and the destination's answer was lost (or this host
/// stopped in the middle). Until the destination says whether it took over, the volume is read-only here and its
/// links stay down; this room asks it (at once after a failure, then every HandOverRetryInterval in the background).
/// </summary>
internal sealed class HandOverDoubts(ReplicationService service)
{
    private readonly List<Task> _settlers = [];

    private ILogger Logger => service.Logger;

    /// <summary>Waits for the background settling loops (they end when the service stops).</summary>
    public async Task WaitSettlersAsync()
    {
        Task[] settlers;
        lock (_settlers) settlers = [.. _settlers];
        try { await Task.WhenAll(settlers).ConfigureAwait(false); }
        catch (Exception ex) when (ex is OperationCanceledException or ObjectDisposedException) { }
    }

    /// <summary>
    /// HandOver was sent and something failed: did the destination promote? Its acknowledgement says yes;
    /// without one, the connection is dropped (whatever was on it is then applied or never: the replica
    /// stops a session before accepting the next) and the destination is asked through a fresh Attach.
    /// </summary>
    public async Task<HandOverOutcome> AskDestinationAsync(ReplicatedVolume primary, PeerLink link, Task<bool> confirm, DataGenerations generations)
    {
        try
        {
            if (await confirm.WaitAsync(service.Options.HandOverTimeout).ConfigureAwait(false)) return HandOverOutcome.Promoted;
        }
        catch (TimeoutException) { }
        link.Drop();
        var deadline = Stopwatch.GetTimestamp() + (long)(service.Options.HandOverTimeout.TotalSeconds * Stopwatch.Frequency);
        while (true)
        {
            try
            {
                var attached = await service.Peers.AttachAsync(primary, link.Peer, CancellationToken.None).ConfigureAwait(false);
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
    public async Task<bool> ResolveUnknownAsync(VolumeMigration migration, ReplicatedVolume primary)
    {
        var entry = service.Volumes.Get(migration.Volume);
        UnsettledHandOver? pending;
        lock (entry.Gate) pending = entry.Unsettled;
        if (pending is null)
        {
            primary.Gate.Thaw();
            await HandOverSource.UnhaltLinksAsync(primary).ConfigureAwait(false);
            return false;
        }
        var outcome = await AskDestinationAsync(primary, migration.Link, Task.FromResult(false), pending.Generations).ConfigureAwait(false);
        if (outcome != HandOverOutcome.Unknown)
            lock (entry.Gate) entry.Unsettled = null;
        switch (outcome)
        {
            case HandOverOutcome.Promoted:
                await service.HandOvers.DemoteAsync(primary, migration.Peer, pending.Generations, pending.KeepReplica).ConfigureAwait(false);
                migration.End(VolumeMigrationPhase.Completed, $"{migration.Peer} had been promoted");
                return true;
            case HandOverOutcome.NotPromoted:
                if (primary.PendingHandOver is not null) primary.SetPendingHandOver(null);
                primary.Gate.Thaw();
                await HandOverSource.UnhaltLinksAsync(primary).ConfigureAwait(false);
                return false;
            default:
                throw new ReplicationException(ReplicationError.HandOverInDoubt, $"{migration.Peer} is still unreachable: whether it was promoted is unknown, writes stay stopped");
        }
    }



    /// <summary>A hand-over whose outcome is unknown with no in-process migration to retry it: refused (the background settling decides).</summary>
    public void ThrowIfInDoubt(string volume, VolumeMigration migration)
    {
        var primary = service.Lookup(volume).Primary;
        if (primary?.PendingHandOver is { } doubt && !(migration.Phase == VolumeMigrationPhase.Failed && primary.Gate.IsFrozen))
            throw new ReplicationException(ReplicationError.HandOverInDoubt, $"a hand-over of '{volume}' to {doubt.Peer} is in doubt: it is settled first (read-only until then)");
    }

    /// <summary>
    /// A volume found at start with a hand-over intent: this host stopped between deciding to hand it over
    /// and knowing whether the destination took over. It stays read-only (NBD writes refused) and its links
    /// stay down until the destination answers.
    /// </summary>
    public void OpenInDoubt(ReplicatedVolume volume, PendingHandOver pending)
    {
        string reason = $"a hand-over of '{volume.Name}' to {pending.Peer} is in doubt (this host stopped in the middle of it): "
            + $"read-only until {pending.Peer} says whether it took over";
        volume.Gate.Close(reason);
        volume.Doubt = reason;
        volume.LinksDeferred = true;
        Log.HandOverInDoubt(Logger, volume.Name, pending.Peer, reason);
        StartSettling(volume);
    }

    public void StartSettling(ReplicatedVolume volume)
    {
        lock (_settlers)
        {
            _settlers.RemoveAll(t => t.IsCompleted);
            var token = service.Stopping;
            _settlers.Add(Task.Run(() => SettleLoopAsync(volume, token), CancellationToken.None));
        }
    }

    /// <summary>Asks the destination of an in-doubt hand-over every HandOverRetryInterval until it answers.</summary>
    private async Task SettleLoopAsync(ReplicatedVolume volume, CancellationToken stopping)
    {
        while (!stopping.IsCancellationRequested)
        {
            try { await service.Admin.WaitAsync(stopping).ConfigureAwait(false); }
            catch (OperationCanceledException) { return; }
            bool settled;
            try { settled = await TrySettleAsync(volume, stopping).ConfigureAwait(false); }
            catch (Exception ex) when (ex is not OutOfMemoryException)
            {
                if (stopping.IsCancellationRequested) return;
                Log.HandOverInDoubt(Logger, volume.Name, volume.PendingHandOver?.Peer ?? "-", $"settling the hand-over failed: {ex.Message}");
                settled = false;
            }
            finally { service.Admin.Release(); }
            if (settled) return;
            try { await Task.Delay(service.Options.HandOverRetryInterval, stopping).ConfigureAwait(false); }
            catch (OperationCanceledException) { return; }
        }
    }

    /// <summary>Under the admin lock: one question to the destination. True when the doubt is gone (either way).</summary>
    private async Task<bool> TrySettleAsync(ReplicatedVolume volume, CancellationToken stopping)
    {
        var entry = service.Volumes.Get(volume.Name);
        lock (entry.Gate)
            if (!ReferenceEquals(entry.Primary, volume)) return true;
        if (volume.PendingHandOver is not { } pending) return true;
        var migration = service.Migrations.Find(volume.Name);
        PeerAttachAck ack;
        try
        {
            var attached = await service.Peers.AttachAsync(volume, pending.Peer, stopping).ConfigureAwait(false);
            await attached.Connection.DisposeAsync().ConfigureAwait(false);
            ack = attached.Ack;
        }
        catch (Exception ex) when (ex is not OutOfMemoryException && !stopping.IsCancellationRequested)
        {
            volume.Doubt = $"a hand-over of '{volume.Name}' to {pending.Peer} is in doubt and {pending.Peer} cannot be asked ({ex.Message}): "
                + $"read-only here; asking again every {service.Options.HandOverRetryInterval.TotalSeconds:0.#} s";
            Log.HandOverInDoubt(Logger, volume.Name, pending.Peer, volume.Doubt);
            return false;
        }
        var generations = pending.Generations;
        bool promoted = (ack.Flags & PeerAttachFlags.Primary) != 0
            && (ack.Generations.Current == generations.Current || ack.Generations.DescendsFrom(generations.Current));
        lock (entry.Gate) entry.Unsettled = null;
        if (promoted)
        {
            await service.HandOvers.DemoteAsync(volume, pending.Peer, generations, pending.KeepReplica).ConfigureAwait(false);
            if (migration is not null && migration.Phase != VolumeMigrationPhase.Completed) migration.End(VolumeMigrationPhase.Completed, $"{pending.Peer} had been promoted");
            Log.HandOverInDoubt(Logger, volume.Name, pending.Peer, $"the hand-over in doubt had happened: {pending.Peer} is primary, this host is its replica");
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
            await HandOverSource.UnhaltLinksAsync(volume).ConfigureAwait(false);
            if (migration is not null && migration.Phase == VolumeMigrationPhase.Failed)
                migration.Error = $"the hand-over in doubt had not happened: {pending.Peer} was not promoted, this host stays primary";
            Log.HandOverInDoubt(Logger, volume.Name, pending.Peer, $"the hand-over in doubt had not happened: {pending.Peer} was not promoted, this host is primary again");
        }
        return true;
    }
}
