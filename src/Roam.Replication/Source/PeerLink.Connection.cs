using System.Buffers;
using System.Diagnostics;
using System.Threading.Channels;
using Microsoft.Extensions.Logging;
using Roam.Replication.Engine;
using Roam.Peers.Protocol;
using Roam.Replication.Protocol;
using Roam.Peers.Transport;
using Roam.Storage.Tracking;

namespace Roam.Replication.Source;

// The connection loop: attach with backoff, the generations' verdict, one session at a time.
internal sealed partial class PeerLink
{
    private async Task RunAsync(AttachedConnection? first)
    {
        var delay = _options.ReconnectMinDelay;
        var ct = _stopping.Token;
        while (!ct.IsCancellationRequested)
        {
            AttachedConnection? attached = first;
            first = null;
            try
            {
                if (attached is null)
                {
                    if (_state is not (ReplicaState.OutOfSync or ReplicaState.SplitBrain or ReplicaState.Outdated)) _state = ReplicaState.Connecting;
                    attached = await _volume.ConnectAsync(Peer, ct).ConfigureAwait(false);
                }
                bool decided;
                lock (_deciding) decided = !_halted && Decide(attached);
                if (!decided)
                {
                    await attached.Connection.DisposeAsync().ConfigureAwait(false);
                    await Task.Delay(_options.ReconnectMaxDelay, ct).ConfigureAwait(false);
                    continue;
                }
                delay = _options.ReconnectMinDelay;
                await RunSessionAsync(attached.Connection, ct).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (ct.IsCancellationRequested) { break; }
            catch (Exception ex)
            {
                if (attached is not null) await DisposeQuietly(attached.Connection).ConfigureAwait(false);
                Log.LinkFailed(_logger, _volume.Name, Peer, ex.Message);
                if (_state is ReplicaState.Connecting or ReplicaState.Syncing or ReplicaState.InSync) _state = ReplicaState.Disconnected;
            }
            try { await Task.Delay(delay, ct).ConfigureAwait(false); }
            catch (OperationCanceledException) { break; }
            delay = TimeSpan.FromTicks(Math.Min(delay.Ticks * 2, _options.ReconnectMaxDelay.Ticks));
        }
    }

    private static async ValueTask DisposeQuietly(PeerConnection connection)
    {
        try { await connection.DisposeAsync().ConfigureAwait(false); }
        catch (Exception ex) when (PeerConnection.IsTeardownNoise(ex)) { }
    }

    /// <summary>Compares generations with what the replica answered; false when nothing may sync.</summary>
    private bool Decide(AttachedConnection attached)
    {
        var local = _volume.Generations;
        var ack = attached.Ack;
        if (ack.Diverged is { } diverged && (ack.Flags & PeerAttachFlags.Primary) == 0 && ack.Generations.Current == Guid.Empty)
        {
            // The peer lost a split brain to this host (its resolve demoted it) and says where it wrote since the two
            // parted. Everywhere else its copy is what this bitmap's baseline says: the union of both is all that can
            // differ (DRBD's bitmap exchange). That covers this side's writes apart, the writes in flight at the cut
            // (never acknowledged, so still marked here) and what the peer lacked when it was promoted. An attach
            // again before the copy ends brings the same ranges again: merged again, they are copied again (never less).
            long before = Bitmap.DirtyBytes;
            foreach (var range in diverged) Bitmap.MarkDirty((long)range.Offset, (long)range.Length);   // the reader bounds both by long.MaxValue
            SyncedGeneration = null;
            MergeDiverged = false;
            _keepsLocal = true;
            _volume.SaveResolved(this);   // the merged bits are durable before the flag that asked for them goes
            Log.SyncDecided(_logger, _volume.Name, Peer, $"the peer lost a split brain to this host: resync the union of both sides' "
                + $"diverged regions ({before} bytes out of sync here, {Bitmap.DirtyBytes} with its {diverged.Count} ranges), not the whole volume");
            return true;
        }
        // Only a peer with no generation stepped down by a resolve: one that holds a generation is some other primary's
        // replica now (the rival migrated its volume on), and the generations below decide (nothing syncs into it).
        if ((MergeDiverged || _state is ReplicaState.SplitBrain or ReplicaState.Outdated) && (ack.Flags & PeerAttachFlags.Primary) == 0
            && ack.Generations.Current == Guid.Empty)
        {
            // The peer stepped down from a split brain (resolved here, or last seen as a rival primary and demoted by
            // its own resolve since) but brought no record of what it wrote apart: a version 2 peer, a lost or never
            // kept bitmap (it was a plain primary or a replica when it lost, or its writes did not drain). Never less
            // than the union: the whole volume.
            Bitmap.MarkAllDirty();
            SyncedGeneration = null;
            MergeDiverged = false;
            _volume.SaveResolved(this);
            Log.SyncDecided(_logger, _volume.Name, Peer, $"the peer lost a split brain to this host but sent no record of the regions it wrote apart "
                + $"(protocol v{attached.Connection.ProtocolVersion}; an older version, or it kept none): full sync");
            return true;
        }
        if ((ack.Flags & PeerAttachFlags.Created) != 0)
        {
            Bitmap.MarkAllDirty();
            Log.SyncDecided(_logger, _volume.Name, Peer, "new replica: full sync");
            return true;
        }
        if (ack.Generations.Current == Guid.Empty && (ack.Flags & PeerAttachFlags.Primary) == 0)
        {
            // A replica that never completed a first sync. Only this link wrote to it since it was created
            // (if the bitmap has tracked it from its creation), so the bitmap says what it still lacks.
            if (SyncedGeneration is not null) Bitmap.MarkAllDirty();
            Log.SyncDecided(_logger, _volume.Name, Peer, SyncedGeneration is null
                ? "replica never finished its first sync: resume it from the bitmap"
                : "replica never finished a first sync: full sync");
            return true;
        }
        var verdict = SyncDecision.Decide(local, ack.Generations);
        if ((ack.Flags & PeerAttachFlags.Primary) != 0 && verdict == SyncVerdict.Same) verdict = SyncVerdict.PeerNewer;
        if ((ack.Flags & PeerAttachFlags.Primary) != 0 && verdict == SyncVerdict.LocalNewer)
        {
            // Still primary there on an older generation: a hand-over to this host that the peer has not
            // finished demoting from yet. Never sync into a primary; try again later.
            Log.SyncDecided(_logger, _volume.Name, Peer, "the peer is still primary on an older generation: waiting for it to step down");
            return false;
        }
        switch (verdict)
        {
            case SyncVerdict.Same:
                Log.SyncDecided(_logger, _volume.Name, Peer, "same generation: resync the bitmap");
                return true;
            case SyncVerdict.LocalNewer:
                if (SyncedGeneration != ack.Generations.Current)
                {
                    Bitmap.MarkAllDirty();
                    Log.SyncDecided(_logger, _volume.Name, Peer, "replica is older than the bitmap knows: full sync");
                }
                else Log.SyncDecided(_logger, _volume.Name, Peer, "replica is older: resync the bitmap");
                return true;
            case SyncVerdict.PeerNewer:
                _state = ReplicaState.Outdated;
                Log.SyncDecided(_logger, _volume.Name, Peer, "the peer's data is newer (it was promoted): this host is outdated, nothing syncs; writes refused here");
                // A write here now would turn an outdated copy into a split brain: refuse them (DRBD's fencing of an
                // outdated node) until `resolve` says which side is kept.
                if (_keepsLocal || MergeDiverged) return false;
                _fenced = true;
                _volume.Gate.Close($"volume '{_volume.Name}': {Peer} holds newer data (it was promoted while this host was away), so this copy is "
                    + $"outdated and read-only; keep {Peer}'s data with, on both hosts: roam volume resolve {_volume.Name} --keep {Peer} "
                    + "(or keep this host's, overwriting what was written there since, with --keep THIS-HOST)");
                return false;
            default:
                _state = ReplicaState.SplitBrain;
                Log.SplitBrain(_logger, _volume.Name, Peer, local.Current, ack.Generations.Current);
                return false;
        }
    }

    private async Task RunSessionAsync(PeerConnection connection, CancellationToken stopping)
    {
        // Syncing toward the peer: whatever made this copy outdated is settled (resolved in this host's favour).
        _keepsLocal = false;
        if (_fenced)
        {
            _fenced = false;
            if (_volume.PendingHandOver is null) _volume.Gate.Reopen();
        }
        var s = new Session(connection, CancellationTokenSource.CreateLinkedTokenSource(stopping), _options.ResyncWindow);
        lock (_gate)
        {
            _session = s;
            s.Live = true;
            // A bitmap with (nearly) nothing to copy goes straight to mirroring: its sweep ends at once anyway.
            s.FirstPass = Bitmap.DirtyBytes > FirstPassThreshold;
            _state = ReplicaState.Syncing;
        }
        Log.LinkUp(_logger, _volume.Name, Peer, Mode.ToString(), Bitmap.DirtyBytes);
        var writer = Task.Run(() => WriteLoopAsync(s));
        var reader = Task.Run(() => ReadLoopAsync(s));
        var resync = Task.Run(() => ResyncLoopAsync(s));
        var heartbeat = Task.Run(() => HeartbeatLoopAsync(s));
        var done = await Task.WhenAny(writer, reader, resync, heartbeat).ConfigureAwait(false);
        string why = done.Exception?.GetBaseException().Message ?? "connection closed";
        bool wasLive;
        lock (_gate) wasLive = s.Live;
        if (wasLive && !stopping.IsCancellationRequested) Log.LinkFailed(_logger, _volume.Name, Peer, why);
        Fail(s, ReplicaState.Disconnected);
        try { await Task.WhenAll(writer, reader, resync, heartbeat).ConfigureAwait(false); }
        catch (Exception) { /* reported above */ }
        _volume.SaveBitmaps();
    }
}
