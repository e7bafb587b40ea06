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

/// <summary>
/// The primary's side of one (volume, replica) pair: the replica's out-of-sync bitmap, its
/// connection (reconnected with backoff), live mirroring of writes in order, and the resync loop.
/// A region's bit is set before a frame touching it is sent and cleared only when every frame in
/// flight for it was acknowledged and nothing was marked for it meanwhile.
/// </summary>
internal sealed class PeerLink : IAsyncDisposable
{
    private readonly ReplicatedVolume _volume;
    private readonly ILogger _logger;
    private readonly ReplicationOptions _options;
    private readonly Lock _gate = new();
    private readonly Dictionary<long, Inflight> _inflight = [];
    private readonly SemaphoreSlim _wake = new(0);
    private CancellationTokenSource _stopping = new();
    private Session? _session;
    private Task _loop = Task.CompletedTask;
    private long _bytesSent;
    private long _bytesSavedByCompression;
    private volatile bool _keepsLocal;      // `resolve --keep` this host: the peer's newer data is to be overwritten, no fence
    private volatile bool _fenced;          // this link closed the volume's gate (an outdated copy)
    private volatile bool _halted;          // stopped for a hand-over (see Halt)
    private readonly CompressionGovernor _compression = new();
    private long _bytesResynced;
    private volatile ReplicaState _state = ReplicaState.Connecting;

    public PeerLink(ReplicatedVolume volume, string peer, ReplicaMode mode, Guid? syncedGeneration, RegionBitmap bitmap, ILogger logger, ReplicationOptions options)
    {
        _volume = volume;
        Peer = peer;
        Mode = mode;
        SyncedGeneration = syncedGeneration;
        Bitmap = bitmap;
        _logger = logger;
        _options = options;
    }

    public string Peer { get; }
    /// <summary>Sync or async; a migration switches a replica to sync (and an abort back).</summary>
    public ReplicaMode Mode { get; set; }

    private long _asyncLagLimitTicks;

    /// <summary>
    /// How long an asynchronously mirrored change may wait for its acknowledgement before new changes wait for theirs
    /// (zero: never). It bounds the backlog in time, whatever the link's speed: a VM migration mirrors asynchronously
    /// while the memory fills the link, and the backlog is what its hand-over must drain inside the guest's pause.
    /// </summary>
    public TimeSpan AsyncLagLimit
    {
        get => Stopwatch.GetElapsedTime(0, Volatile.Read(ref _asyncLagLimitTicks));
        set => Volatile.Write(ref _asyncLagLimitTicks, value <= TimeSpan.Zero ? 0 : (long)(value.TotalSeconds * Stopwatch.Frequency));
    }

    /// <summary>
    /// Asynchronous, with <see cref="AsyncLagLimit"/> set, and the backlog would take longer than that to drain: its
    /// oldest change is older than the limit, or it holds more bytes than the link acknowledged in that long lately (a
    /// fast writer fills a slow link's queue with seconds of data before the oldest change is old). A writer should then
    /// wait for the acknowledgement of what it just mirrored (as if synchronous) until the backlog drains.
    /// </summary>
    public bool IsLagging
    {
        get
        {
            long limit = Volatile.Read(ref _asyncLagLimitTicks);
            if (limit == 0 || Mode != ReplicaMode.Async) return false;
            lock (_gate)
            {
                if (_session is not { Live: true } s || !s.Pending.TryGetValue(s.OldestPending, out var oldest)) return false;
                if (Stopwatch.GetTimestamp() - oldest.EnqueuedAt > limit) return true;
                double drainable = s.AckBytesPerSecond * limit / Stopwatch.Frequency;
                return s.PendingBytes > Math.Max(MinimumAsyncBacklog, drainable);
            }
        }
    }

    /// <summary>Below this a backlog never counts as lagging by its size (before the link's rate is known, and on a link
    /// that was idle: a few writes' worth).</summary>
    private const long MinimumAsyncBacklog = 64 * 1024;

    /// <summary>How often the acknowledgement rate is sampled (<see cref="Session.AckBytesPerSecond"/>).</summary>
    private static readonly long AckRateInterval = Stopwatch.Frequency / 10;

    /// <summary>The link's bandwidth limit; see <see cref="WireBudget"/>.</summary>
    public WireBudget Budget { get; } = new(0);

    /// <summary>Bytes per second on the wire, 0 for no limit (persisted with the replica).</summary>
    public long Bandwidth
    {
        get => Budget.BytesPerSecond;
        set => Budget.BytesPerSecond = value;
    }

    /// <summary>Not connecting (an aborted migration): writes only mark the bitmap, so a retry resumes.</summary>
    public bool Paused { get; set; }

    /// <summary>
    /// This host was promoted while <see cref="Peer"/>, its primary until then, was away: the link never connects
    /// (the peer still takes itself for the primary), and its bitmap records every region written here since, so
    /// a split brain with the peer resolves by copying both sides' diverged regions instead of the whole volume
    /// (DRBD keeps a peer's bitmap while it is disconnected for the same reason). Persisted; `resolve` ends it.
    /// </summary>
    public bool Parted { get; set; }

    /// <summary>
    /// A split brain with the peer was resolved in this host's favour (persisted): the next attach of the peer,
    /// demoted by its own resolve, brings the regions it wrote apart (AttachAck's diverged ranges), which are
    /// added to this bitmap; a peer that brings none gets the whole volume.
    /// </summary>
    public bool MergeDiverged { get; set; }

    /// <summary>Between a split brain (or an outdated peer) and the end of its resolve's copy: the bitmap alone does not
    /// say what the peer lacks (its own writes apart are not in it).</summary>
    public bool IsSettlingSplit => MergeDiverged || _keepsLocal || _state is ReplicaState.SplitBrain or ReplicaState.Outdated;
    public RegionBitmap Bitmap { get; }
    public Guid? SyncedGeneration { get; set; }
    /// <summary>Paused wins over Connecting/Disconnected/OutOfSync (it says why nothing connects); split brain and outdated win over it.</summary>
    public ReplicaState State
    {
        get
        {
            if (Parted) return ReplicaState.Parted;
            var state = _state;
            return Paused && state is not (ReplicaState.SplitBrain or ReplicaState.Outdated) ? ReplicaState.Paused : state;
        }
    }
    /// <summary>Bytes of frames put on the wire (after compression).</summary>
    public long BytesSent => Interlocked.Read(ref _bytesSent);

    /// <summary>Bytes LZ4 kept off the wire.</summary>
    public long BytesSavedByCompression => Interlocked.Read(ref _bytesSavedByCompression);
    public long BytesResynced => Interlocked.Read(ref _bytesResynced);

    /// <summary>Attached, nothing out of sync, nothing unacknowledged: the replica holds every write made so far.</summary>
    /// <summary>As <see cref="IsCaughtUp"/> but for mirrored writes still unacknowledged (asynchronous mirroring):
    /// nothing is left to resync, and a hand-over waits for those with writes stopped.</summary>
    public bool IsInSyncBarInFlight
    {
        get
        {
            lock (_gate)
                return _session is { Live: true } && _state == ReplicaState.InSync && Bitmap.NextDirty(0) < 0;
        }
    }

    public bool IsCaughtUp
    {
        get
        {
            lock (_gate)
                return _session is { Live: true } s && s.Pending.Count == 0 && _state == ReplicaState.InSync && Bitmap.NextDirty(0) < 0;
        }
    }

    /// <summary>Drops the connection (it is retried): whatever was in flight on it is applied by the replica or never.</summary>
    public void Drop()
    {
        Session? s;
        lock (_gate) s = _session;
        if (s is not null) Fail(s, ReplicaState.Disconnected);
    }

    /// <summary>Stops connecting and drops the connection; the bitmap keeps tracking (see <see cref="Paused"/>).</summary>
    public async Task PauseAsync()
    {
        Paused = true;
        await _stopping.CancelAsync().ConfigureAwait(false);
        Drop();
        try { await _loop.ConfigureAwait(false); }
        catch (OperationCanceledException) { }
        _state = ReplicaState.Disconnected;
    }

    /// <summary>
    /// A split brain resolved in this host's favour: the peer's data is to be overwritten. This bitmap already
    /// holds what this host wrote apart (and what the peer never acknowledged before the two parted); the
    /// peer's own writes since are merged in when it attaches (<see cref="MergeDiverged"/>). Its generation says
    /// nothing any more. False (nothing changed) when the link is attached and syncing already: the peer resolved
    /// first and that attach took care of it. The caller persists the record and starts a parted link.
    /// </summary>
    public bool KeepLocal()
    {
        lock (_gate)
        {
            if (_session is { Live: true }) return false;
            _keepsLocal = true;
            MergeDiverged = true;
            Parted = false;
            SyncedGeneration = null;
            _state = ReplicaState.Disconnected;
            return true;
        }
    }

    /// <summary>This link refused the volume's writes because the peer holds newer data (see Decide).</summary>
    public bool IsFenced => _fenced;

    public void LiftFence() => _fenced = false;

    /// <summary>The protocol version of the attached connection, or null when none is.</summary>
    public ushort? ProtocolVersion
    {
        get { lock (_gate) return _session is { Live: true } s ? s.Connection.ProtocolVersion : null; }
    }

    /// <summary>
    /// A hand-over is about to move the primary role: stops connecting and drops the connection at once, without
    /// waiting for the loop (that is <see cref="UnhaltAsync"/>'s job, off the write pause). From here nothing is
    /// sent or acknowledged, so the bitmap is final: with writes stopped it holds every region the replica may lack.
    /// </summary>
    public void Halt()
    {
        _halted = true;
        // A decision under way (it may add to the bitmap) ends first, so the bitmap a hand-over takes next is complete;
        // none starts after (the loop looks at _halted under the same lock).
        lock (_deciding) { }
        _stopping.Cancel();
        Drop();
    }

    private readonly Lock _deciding = new();

    /// <summary>Halted for a hand-over that has not been settled yet.</summary>
    public bool Halted => _halted;

    /// <summary>The hand-over did not happen: the link connects again once its halted loop has ended.</summary>
    public async Task UnhaltAsync()
    {
        if (!_halted) return;
        try { await _loop.ConfigureAwait(false); }
        catch (OperationCanceledException) { }
        _halted = false;
        _stopping = new CancellationTokenSource();
        _state = ReplicaState.Connecting;
        if (!Paused) Start(null);
    }

    /// <summary>Connects again after <see cref="PauseAsync"/>.</summary>
    public void Resume()
    {
        if (!Paused) return;
        Paused = false;
        _stopping = new CancellationTokenSource();
        _state = ReplicaState.Connecting;
        Start(null);
    }

    /// <summary>Connected and attached: writes are sent to it as they happen.</summary>
    /// <summary>
    /// Not during a first sweep: writes then only mark the bitmap, so the replica's generation no longer
    /// describes what the primary acknowledged, and the first such write starts a new one.
    /// </summary>
    public bool IsMirroring
    {
        get { lock (_gate) return _session is { Live: true, FirstPass: false }; }
    }

    public ReplicaStatus Status()
    {
        long pending = 0, inflightRegions;
        TimeSpan lag = TimeSpan.Zero;
        lock (_gate)
        {
            inflightRegions = _inflight.Count;
            if (_session is { } s)
            {
                pending = s.PendingBytes;
                if (s.Pending.Count > 0) lag = Stopwatch.GetElapsedTime(s.Pending.Values.Min(p => p.EnqueuedAt));
            }
        }
        var state = State;
        long dirty = Bitmap.DirtyBytes;
        string? detail = state switch
        {
            ReplicaState.Paused => dirty > 0
                ? $"out of sync by {dirty} bytes, paused (an aborted migration): not connecting; a new migration to {Peer} resumes it, or remove the replica"
                : $"paused (an aborted migration): not connecting; a new migration to {Peer} resumes it, or remove the replica",
            ReplicaState.SplitBrain => $"split brain: this host and {Peer} both wrote apart; nothing syncs until it is resolved",
            ReplicaState.Parted => $"this host was promoted while {Peer}, its primary until then, was away: not connecting; the {dirty} bytes "
                + $"written here since are tracked, so a split brain with {Peer} resolves by copying only what either side wrote apart "
                + $"(roam volume resolve, on both hosts); if {Peer} is gone for good, drop this with: roam volume unreplicate {_volume.Name} --from {Peer}",
            ReplicaState.Outdated => $"{Peer} holds newer data (it was promoted): this host is outdated; nothing syncs",
            ReplicaState.OutOfSync => $"out of sync by {dirty} bytes: {Peer} did not answer in time; reconnecting",
            _ => null,
        };
        return new ReplicaStatus(Peer, Mode, state, dirty, BytesSent, BytesResynced, pending, lag, SyncedGeneration)
        {
            Detail = detail,
            Bandwidth = Bandwidth,
            BytesSavedByCompression = BytesSavedByCompression,
            BytesToResync = Math.Max(0, dirty - inflightRegions * (long)Bitmap.RegionSize),
        };
    }

    /// <summary>Starts the connection loop; <paramref name="first"/> is an already attached connection (from AddReplica).</summary>
    public void Start(AttachedConnection? first) => _loop = Task.Run(() => RunAsync(first));

    /// <summary>
    /// Sends a write/zero/flush to the replica if it is attached, else marks its regions. Call under the
    /// region lock. Returns the acknowledgement to wait for, or null when nothing was sent.
    /// </summary>
    public Task<bool>? Mirror(OutFrame frame)
    {
        lock (_gate)
        {
            var s = _session;
            if (s is not { Live: true }
                || (Mode == ReplicaMode.Async && frame.Bytes > 0 && s.PendingBytes + frame.Bytes > _options.AsyncQueueBytes)
                // A first pass mirrors nothing (the writes it sees are only marked), so there is nothing for a flush to
                // make durable there; sent, it would wait behind the copy on a busy link and stall the guest.
                || (s.FirstPass && (frame.FirstRegion >= 0 || frame.Type == PeerFrameType.Flush)))
            {
                if (frame.FirstRegion >= 0) MarkUnsentUnlocked(frame.FirstRegion, frame.LastRegion);
                if (s is { Live: true }) Wake();
                return null;
            }
            EnqueueUnlocked(s, frame);
            return frame.Acked.Task;
        }
    }

    /// <summary>The replica did not answer in time: its regions stay dirty, the connection is dropped and retried.</summary>
    public void TimedOut(TimeSpan after)
    {
        Session? s;
        lock (_gate) s = _session;
        if (s is null || !s.Live) return;
        Log.SyncTimeout(_logger, _volume.Name, Peer, after.TotalMilliseconds);
        Fail(s, ReplicaState.OutOfSync);
    }

    private void EnqueueUnlocked(Session s, OutFrame frame)
    {
        if (frame.FirstRegion >= 0)
        {
            for (long r = frame.FirstRegion; r <= frame.LastRegion; r++)
            {
                if (!_inflight.TryGetValue(r, out var entry))
                {
                    entry = new Inflight { Ours = frame.Resync || !Bitmap.IsDirty(r) };
                    _inflight[r] = entry;
                }
                else if (frame.Resync) entry.Ours = true;
                entry.Count++;
            }
            Bitmap.MarkDirty(frame.FirstRegion * Bitmap.RegionSize, (frame.LastRegion - frame.FirstRegion + 1) * (long)Bitmap.RegionSize);
        }
        frame.Sequence = ++s.Sequence;
        frame.EnqueuedAt = Stopwatch.GetTimestamp();
        if (s.Pending.Count == 0) s.OldestPending = frame.Sequence;
        s.Pending[frame.Sequence] = frame;
        s.PendingBytes += frame.Bytes;
        s.Outgoing.Writer.TryWrite(frame);
    }

    private void MarkUnsentUnlocked(long first, long last)
    {
        Bitmap.MarkDirty(first * Bitmap.RegionSize, (last - first + 1) * (long)Bitmap.RegionSize);
        for (long r = first; r <= last; r++)
            if (_inflight.TryGetValue(r, out var entry)) entry.Ours = false;
    }

    private void Wake()
    {
        if (_wake.CurrentCount == 0) _wake.Release();
    }

    private void OnAck(Session s, ulong sequence)
    {
        OutFrame? frame;
        lock (_gate)
        {
            if (!s.Pending.Remove(sequence, out frame)) return;
            s.PendingBytes -= frame.Bytes;
            s.AckedBytes += frame.Bytes;
            long now = Stopwatch.GetTimestamp();
            if (now - s.AckRateSampledAt >= AckRateInterval)
            {
                s.AckBytesPerSecond = (s.AckedBytes - s.AckRateSampledBytes) * (double)Stopwatch.Frequency / (now - s.AckRateSampledAt);
                (s.AckRateSampledAt, s.AckRateSampledBytes) = (now, s.AckedBytes);
            }
            if (sequence == s.OldestPending)
                while (s.Pending.Count > 0 && s.OldestPending < s.Sequence && !s.Pending.ContainsKey(s.OldestPending)) s.OldestPending++;
            if (frame.FirstRegion >= 0 && ReferenceEquals(_session, s) && s.Live)
            {
                for (long r = frame.FirstRegion; r <= frame.LastRegion; r++)
                {
                    if (!_inflight.TryGetValue(r, out var entry)) continue;
                    if (--entry.Count > 0) continue;
                    _inflight.Remove(r);
                    if (entry.Ours) Bitmap.MarkClean(r);
                }
            }
        }
        if (frame.Resync) s.Window.Release();
        frame.Acked.TrySetResult(true);
    }

    /// <summary>Ends a session: everything unacknowledged stays dirty in the bitmap.</summary>
    private void Fail(Session s, ReplicaState state)
    {
        List<OutFrame> pending;
        lock (_gate)
        {
            if (!s.Live) return;
            s.Live = false;
            if (ReferenceEquals(_session, s)) _session = null;
            _inflight.Clear();
            pending = [.. s.Pending.Values];
            s.Pending.Clear();
            s.PendingBytes = 0;
            if (_state != ReplicaState.SplitBrain && _state != ReplicaState.Outdated) _state = state;
        }
        s.Outgoing.Writer.TryComplete();
        s.Cancel.Cancel();
        // Changes the replica may not have got: the data diverges from its generation from here on.
        if (pending.Any(f => f.FirstRegion >= 0)) _volume.EnsureGeneration();
        foreach (var f in pending) f.Acked.TrySetResult(false);
        _ = Task.Run(async () =>
        {
            try { await s.Connection.DisposeAsync().ConfigureAwait(false); }
            catch (Exception ex) when (PeerConnection.IsTeardownNoise(ex)) { }
        });
    }

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

    private async Task WriteLoopAsync(Session s)
    {
        var output = s.Connection.Transport.Output;
        var ct = s.Cancel.Token;
        bool compress = _options.Compression == WireCompression.Auto && s.Connection.ProtocolVersion >= PeerProtocol.CompressionVersion;
        bool handOverReplicas = s.Connection.ProtocolVersion >= PeerProtocol.HandOverReplicasVersion;
        while (await s.Outgoing.Reader.WaitToReadAsync(ct).ConfigureAwait(false))
        {
            long bytes = 0;
            while (s.Outgoing.Reader.TryRead(out var f))
            {
                bytes += WriteFrame(output, f, compress, handOverReplicas);
                if (bytes > 1024 * 1024) break;
            }
            Interlocked.Add(ref _bytesSent, bytes);
            Budget.Charge(bytes);
            Volatile.Write(ref s.LastSent, Stopwatch.GetTimestamp());
            var result = await output.FlushAsync(ct).ConfigureAwait(false);
            if (result.IsCompleted || result.IsCanceled) return;
        }
    }

    private long WriteFrame(IBufferWriter<byte> output, OutFrame f, bool compress, bool handOverReplicas)
    {
        var id = _volume.VolumeId;
        switch (f.Type)
        {
            case PeerFrameType.Write:
                if (compress && f.Data.Length >= WriteCompression.MinLength && _compression.ShouldTry())
                {
                    var buffer = ArrayPool<byte>.Shared.Rent(WriteCompression.BufferLength(f.Data.Length));
                    try
                    {
                        int length = WriteCompression.TryCompress(f.Data.Span, buffer);
                        _compression.Record(length > 0);
                        if (length > 0)
                        {
                            ReplicationFrameWriter.WriteWrite(output, f.Sequence, f.Flags | PeerFrameFlags.Lz4, id, (ulong)f.Offset, buffer.AsSpan(0, length));
                            Interlocked.Add(ref _bytesSavedByCompression, f.Data.Length - length);
                            return PeerProtocol.HeaderSize + PeerWrite.FixedLength + length;
                        }
                    }
                    finally { ArrayPool<byte>.Shared.Return(buffer); }
                }
                ReplicationFrameWriter.WriteWrite(output, f.Sequence, f.Flags, id, (ulong)f.Offset, f.Data.Span);
                return PeerProtocol.HeaderSize + PeerWrite.FixedLength + f.Data.Length;
            case PeerFrameType.Zero:
                ReplicationFrameWriter.WriteZero(output, f.Sequence, f.Flags, new PeerZero(id, (ulong)f.Offset, (ulong)f.Length));
                return PeerProtocol.HeaderSize + PeerZero.PayloadLength;
            case PeerFrameType.Flush:
                ReplicationFrameWriter.WriteFlush(output, f.Sequence, new PeerFlush(id));
                return PeerProtocol.HeaderSize + PeerFlush.PayloadLength;
            case PeerFrameType.Generations:
                ReplicationFrameWriter.WriteGenerations(output, f.Sequence, new PeerGenerations(id, f.Generations!));
                return PeerProtocol.HeaderSize + PeerGenerations.FixedLength + 16 * f.Generations!.History.Count;
            case PeerFrameType.Heartbeat:
                PeerFrameWriter.WriteHeartbeat(output, 0);
                return PeerProtocol.HeaderSize;
            case PeerFrameType.HandOver:
            {
                var handOver = new PeerHandOver(id, f.Generations!, f.HandOverFlags, handOverReplicas ? f.HandOverReplicas : null);
                ReplicationFrameWriter.WriteHandOver(output, f.Sequence, handOver);
                return PeerProtocol.HeaderSize + handOver.PayloadLength;
            }
            default:
                throw new InvalidOperationException($"cannot send {f.Type} on a replica link");
        }
    }

    private async Task ReadLoopAsync(Session s)
    {
        var input = s.Connection.Transport.Input;
        var ct = s.Cancel.Token;
        while (true)
        {
            var result = await input.ReadAsync(ct).ConfigureAwait(false);
            var buffer = result.Buffer;
            try
            {
                while (PeerFrameReader.TryRead(ref buffer, PeerProtocol.MaxHandshakePayload, out var header, out var payload))
                {
                    Volatile.Write(ref s.LastReceived, Stopwatch.GetTimestamp());
                    switch (header.Type)
                    {
                        case PeerFrameType.Ack:
                            OnAck(s, PeerAck.Read(payload).Sequence);
                            break;
                        case PeerFrameType.Error:
                            var error = PeerError.Read(payload);
                            throw new IOException($"the replica refused frame {error.Sequence}: {error.Code}: {error.Message}");
                        case PeerFrameType.Heartbeat:
                            break;
                        default:
                            throw new IOException($"unexpected {header.Type} from the replica");
                    }
                }
                if (result.IsCompleted) return;
            }
            finally
            {
                input.AdvanceTo(buffer.Start, buffer.End);
            }
        }
    }

    /// <summary>
    /// Keeps an idle link talking (a Heartbeat when nothing was sent for an interval, which the replica
    /// acknowledges) and declares it dead when nothing at all came back for HeartbeatTimeout: a peer that
    /// hung or vanished without a reset is noticed even with no writes and in async mode.
    /// </summary>
    private async Task HeartbeatLoopAsync(Session s)
    {
        var ct = s.Cancel.Token;
        var interval = _options.HeartbeatInterval;
        var timeout = _options.HeartbeatTimeout;
        var tick = TimeSpan.FromTicks(Math.Max(TimeSpan.TicksPerMillisecond * 10, Math.Min(interval.Ticks, timeout.Ticks) / 4));
        while (!ct.IsCancellationRequested)
        {
            await Task.Delay(tick, ct).ConfigureAwait(false);
            var silent = Stopwatch.GetElapsedTime(Volatile.Read(ref s.LastReceived));
            if (silent > timeout)
            {
                Log.LinkFailed(_logger, _volume.Name, Peer, $"nothing heard from the peer for {silent.TotalSeconds:0.#} s (heartbeat timeout): marked OutOfSync, reconnecting");
                Fail(s, ReplicaState.OutOfSync);
                return;
            }
            if (Stopwatch.GetElapsedTime(Volatile.Read(ref s.LastSent)) >= interval)
            {
                lock (_gate)
                {
                    if (!ReferenceEquals(_session, s) || !s.Live) return;
                    s.Outgoing.Writer.TryWrite(OutFrame.Heartbeat());
                }
                // Counted as sent once it is queued: a heartbeat behind a long queue is not repeated every tick.
                Volatile.Write(ref s.LastSent, Stopwatch.GetTimestamp());
            }
        }
    }

    private async Task ResyncLoopAsync(Session s)
    {
        var ct = s.Cancel.Token;
        long region = 0;
        var buffer = new byte[Bitmap.RegionSize];
        while (!ct.IsCancellationRequested)
        {
            long dirty = NextToResync(region);
            if (dirty < 0 && s.FirstPass)
            {
                // The first sweep is over: from now on writes are mirrored, so the bitmap only shrinks and the
                // next sweep (what was written meanwhile) converges however fast the writer is.
                lock (_gate) s.FirstPass = false;
                region = 0;
                continue;
            }
            if (dirty < 0)
            {
                // Wait for the resync frames in flight, then see whether anything is left.
                for (int i = 0; i < _options.ResyncWindow; i++) await s.Window.WaitAsync(ct).ConfigureAwait(false);
                s.Window.Release(_options.ResyncWindow);
                if (NextToResync(0) < 0)
                {
                    var generations = _volume.Generations;
                    if (SyncedGeneration != generations.Current || _state != ReplicaState.InSync)
                    {
                        var ack = Mirror(OutFrame.Gens(generations));
                        if (ack is null || !await ack.WaitAsync(ct).ConfigureAwait(false)) return;
                        _volume.SetSynced(this, generations.Current);
                        if (NextToResync(0) < 0 && _state == ReplicaState.Syncing)
                        {
                            _state = ReplicaState.InSync;
                            Log.InSync(_logger, _volume.Name, Peer, BytesResynced);
                        }
                    }
                    await _wake.WaitAsync(TimeSpan.FromMilliseconds(250), ct).ConfigureAwait(false);
                }
                region = 0;
                continue;
            }
            if (_state == ReplicaState.InSync) _state = ReplicaState.Syncing;
            await s.Window.WaitAsync(ct).ConfigureAwait(false);
            await Budget.WaitAsync(ct).ConfigureAwait(false);
            var throttle = _volume.Service.Hooks.ResyncPause;
            if (throttle > TimeSpan.Zero) await Task.Delay(throttle, ct).ConfigureAwait(false);
            var (offset, length) = Bitmap.RegionRange(dirty);
            bool sent = false;
            using (await _volume.Locks.LockAsync(offset, length).ConfigureAwait(false))
            {
                bool covered;
                lock (_gate) covered = !Bitmap.IsDirty(dirty) || (_inflight.TryGetValue(dirty, out var e) && e.Ours);
                if (!covered)
                {
                    // A hole (asked under the region's lock, so no write can land meanwhile) is not read at all: most
                    // of a VM's disk is holes, and reading them costs a zero-filled copy and a scan per region. This
                    // trusts SEEK_DATA to see data still in the page cache, as ext4, XFS, btrfs and tmpfs do (and as
                    // the NBD export's block status, which nbdcopy and qemu-img rely on, already does).
                    var extents = await _volume.Local.GetExtentsAsync(offset, length, ct).ConfigureAwait(false);
                    bool hole = extents.Count == 1 && extents[0].IsZero;
                    if (!hole) await _volume.Local.ReadAsync(offset, buffer.AsMemory(0, length), ct).ConfigureAwait(false);
                    var span = buffer.AsSpan(0, length);
                    var frame = hole || span.IndexOfAnyExcept((byte)0) < 0
                        ? OutFrame.Zero(offset, length, fua: false, Bitmap.RegionSize)
                        : OutFrame.Write(offset, span.ToArray(), fua: false, Bitmap.RegionSize);
                    frame.Resync = true;
                    lock (_gate)
                    {
                        if (!ReferenceEquals(_session, s) || !s.Live) return;
                        EnqueueUnlocked(s, frame);
                    }
                    sent = true;
                    Interlocked.Add(ref _bytesResynced, length);
                }
            }
            if (!sent) s.Window.Release();
            region = dirty + 1;
        }
    }

    /// <summary>The next dirty region that no acknowledgement in flight will clean, or -1.</summary>
    private long NextToResync(long from)
    {
        lock (_gate)
        {
            for (long r = Bitmap.NextDirty(from); r >= 0; r = Bitmap.NextDirty(r + 1))
                if (!(_inflight.TryGetValue(r, out var e) && e.Ours)) return r;
            return -1;
        }
    }

    /// <summary>Stops the link: its session fails as Disconnected and its loop is awaited.</summary>
    public async ValueTask DisposeAsync()
    {
        await _stopping.CancelAsync().ConfigureAwait(false);
        Session? s;
        lock (_gate) s = _session;
        if (s is not null) Fail(s, ReplicaState.Disconnected);
        try { await _loop.ConfigureAwait(false); }
        catch (OperationCanceledException) { }
        _state = ReplicaState.Disconnected;
    }

    /// <summary>Below this much to copy, a session mirrors writes from its start.</summary>
    private const long FirstPassThreshold = 8L * 1024 * 1024;

    private sealed class Inflight
    {
        public int Count;
        public bool Ours;
    }

    private sealed class Session(PeerConnection connection, CancellationTokenSource cancel, int window)
    {
        public PeerConnection Connection { get; } = connection;
        public CancellationTokenSource Cancel { get; } = cancel;
        public Channel<OutFrame> Outgoing { get; } = Channel.CreateUnbounded<OutFrame>(new UnboundedChannelOptions { SingleReader = true });
        public Dictionary<ulong, OutFrame> Pending { get; } = [];
        public SemaphoreSlim Window { get; } = new(window, window);
        public long PendingBytes;

        /// <summary>
        /// The session's first sweep over a bitmap with something to copy: writes only mark their regions
        /// (the sweep or the next one sends them once), instead of being mirrored and queued behind the
        /// copy. Sending them then would cost a round trip behind up to a window of copy data per write,
        /// and twice the bytes for a region still to be copied (QEMU's background mirror makes the same
        /// choice; the second sweep mirrors, as DRBD does, so the copy always ends).
        /// </summary>
        public bool FirstPass;
        public ulong Sequence;
        /// <summary>The sequence of the oldest frame in <see cref="Pending"/> (acknowledgements come in order, so this moves forward).</summary>
        public ulong OldestPending;
        /// <summary>Bytes of frames acknowledged, and their rate over the last sampling interval (or longer, when acks
        /// paused: then lower, which only makes a lag limit stricter).</summary>
        public long AckedBytes, AckRateSampledBytes;
        public long AckRateSampledAt = Stopwatch.GetTimestamp();
        public double AckBytesPerSecond;
        public long LastSent = Stopwatch.GetTimestamp();
        public long LastReceived = Stopwatch.GetTimestamp();
        public bool Live;
    }
}

/// <summary>A connection on which Attach was answered.</summary>
internal sealed record AttachedConnection(PeerConnection Connection, PeerAttachAck Ack);
