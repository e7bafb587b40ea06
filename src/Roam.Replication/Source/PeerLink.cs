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
internal sealed partial class PeerLink : IAsyncDisposable
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
}

/// <summary>A connection on which Attach was answered.</summary>
internal sealed record AttachedConnection(PeerConnection Connection, PeerAttachAck Ack);
