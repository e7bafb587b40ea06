using System.Net;
using Microsoft.Extensions.Logging;
using Roam.Nbd.Server;
using Roam.Peers.Identity;
using Roam.Peers.Protocol;
using Roam.Peers.Tunnel;
using Roam.Replication.Protocol;
using Roam.Replication.Source;
using Roam.Replication.Target;
using Roam.Peers.Transport;
using Roam.Peers.Trust;
using Roam.Storage.Tracking;
using Roam.Storage.Volumes;

namespace Roam.Replication.Engine;

/// <summary>
/// Volume replication for one roamd: the primary side (replicating devices, links to replicas,
/// resync) and the target side (the peer listener applying frames to replica volumes). State lives
/// in DATA_DIR/replication: NAME.json (role, generations, replicas), NAME.PEER.bitmap, NAME.al, and on a
/// split brain's loser NAME.KEEPER.diverged (the regions it wrote apart, until the keeper's copy completes).
/// A volume without a NAME.json is a plain primary with no replicas.
/// </summary>
public sealed partial class ReplicationService : IAsyncDisposable
{
    private readonly HostIdentity _identity;
    private readonly TrustStore _trust;
    private readonly ILogger _logger;
    private readonly string _dir;
    private readonly PeerConnector _connector;
    private readonly Lock _gate = new();
    private readonly Dictionary<string, ReplicationFile> _files = new(StringComparer.Ordinal);
    private readonly Dictionary<string, ReplicatedVolume> _primaries = new(StringComparer.Ordinal);
    // A peer that attached as this volume's primary while it is primary here too, and what the generations said:
    // this side's own view of a split brain (or of an outdated old primary), for `roam volume show` here.
    private readonly Dictionary<string, (string Peer, SyncVerdict Verdict, DateTimeOffset At)> _rivals = new(StringComparer.Ordinal);
    private readonly Dictionary<string, ReplicaSession> _sessions = new(StringComparer.Ordinal);
    private readonly Dictionary<string, WriteGate> _fences = new(StringComparer.Ordinal);
    private readonly CancellationTokenSource _stopping = new();
    private readonly SemaphoreSlim _admin = new(1, 1);
    private PeerServer? _server;
    private int _disposed;

    public ReplicationService(HostIdentity identity, TrustStore trust, VolumeStore store, string dataDir, ILoggerFactory loggerFactory, ReplicationOptions? options = null)
        : this(identity, trust, store, dataDir, loggerFactory.CreateLogger("Roam.Replication"), options)
    {
    }

    public ReplicationService(HostIdentity identity, TrustStore trust, VolumeStore store, string dataDir, ILogger logger, ReplicationOptions? options = null)
    {
        _identity = identity;
        _trust = trust;
        Store = store;
        _logger = logger;
        Options = options ?? new ReplicationOptions();
        _dir = Path.Combine(dataDir, "replication");
        Directory.CreateDirectory(_dir);
        _connector = new PeerConnector(identity, trust, new PeerConnectorOptions { Timeout = Options.AttachTimeout }, logger);
        Exports = new ReplicationExportProvider(this);
    }

    public ReplicationOptions Options { get; }

    internal VolumeStore Store { get; }

    internal TestHooks Hooks { get; } = new();

    /// <summary>What the NBD server should export instead of the plain volume store.</summary>
    public INbdExportProvider Exports { get; }

    /// <summary>The peer listener's bound endpoint (with the real port when 0 was asked for), once started.</summary>
    public IPEndPoint? ListenEndPoint => _server?.LocalEndPoint;

    internal string StatePath(string volume) => Path.Combine(_dir, volume + ".json");
    /// <summary>Activity-log transactions written for a primary volume since it opened (tests).</summary>
    internal long ActivityLogTransactions(string volume)
    {
        lock (_gate) return _primaries[volume].ActivityLog.Transactions;
    }

    internal string BitmapPath(string volume, string peer) => Path.Combine(_dir, $"{volume}.{peer}.bitmap");
    internal string ActivityLogPath(string volume) => Path.Combine(_dir, volume + ".al");

    /// <summary>
    /// A split brain's loser: the regions it wrote since it parted from <paramref name="keeper"/>, kept from its
    /// resolve until the keeper's copy over it completes, and handed to the keeper in AttachAck.
    /// </summary>
    internal string DivergedPath(string volume, string keeper) => Path.Combine(_dir, $"{volume}.{keeper}.diverged");

    private void DeleteDivergedFiles(string volume, string? except = null)
    {
        foreach (var path in DivergedFiles(volume))
            if (except is null || path != except) TryDelete(path);
    }

    /// <summary>This volume's diverged files, one per keeper (a trusted peer: names may hold dots, so no wildcard).</summary>
    private IEnumerable<string> DivergedFiles(string volume) =>
        _trust.List().Select(p => DivergedPath(volume, p.Name)).Where(File.Exists);

    /// <summary>
    /// The regions this host wrote apart in split brains it lost and whose keeper has not overwritten them yet, from
    /// any keeper (they are relative to the split, so they hold for whichever descendant primary attaches: the keeper
    /// may have migrated the volume on meanwhile), or null when there are none.
    /// </summary>
    private RegionBitmap? LoadDiverged(string volume)
    {
        RegionBitmap? union = null;
        foreach (var path in DivergedFiles(volume))
        {
            // A damaged file loads as all dirty: never less than what was written here.
            var bitmap = RegionBitmap.LoadOrAllDirty(path, Store.Get(volume).Size, Options.RegionSize);
            if (union is null) union = bitmap;
            else foreach (var (offset, length) in bitmap.DirtyRanges(int.MaxValue)) union.MarkDirty(offset, length);
        }
        return union;
    }

    /// <summary>Loads the replication state, opens replicated primaries (replaying their activity logs) and listens for peers.</summary>
    public Task StartAsync(IPEndPoint? peerListen, CancellationToken cancellationToken = default)
    {
        foreach (var temp in Directory.EnumerateFiles(_dir, "*" + DurableFile.TempSuffix)) File.Delete(temp);
        foreach (var path in Directory.EnumerateFiles(_dir, "*.json"))
        {
            var name = Path.GetFileNameWithoutExtension(path);
            if (!Store.TryGet(name, out _))
            {
                Log.StateWithoutVolume(_logger, name);
                continue;
            }
            var file = ReplicationFile.Read(path);
            lock (_gate) _files[name] = file;
            if (file.Role == VolumeRole.Primary && (file.Peers.Count > 0 || file.HandOver is not null))
            {
                var volume = ReplicatedVolume.Open(this, Store.Open(name), file, _logger);
                lock (_gate) _primaries[name] = volume;
                if (file.HandOver is { } pending) OpenInDoubt(volume, pending);
                else volume.StartLinks();
            }
        }
        if (peerListen is not null)
        {
            _server = PeerServer.Start(_identity, _trust, new PeerListenerOptions { EndPoint = peerListen }, _logger);
            // Attach and Detach open a replica session; so does anything else no layer routed: the session answers
            // a frame it does not expect with an Error the peer can read.
            _server.Route(PeerFrameType.Attach, ServeReplicaAsync);
            _server.Route(PeerFrameType.Detach, ServeReplicaAsync);
            _server.Fallback = ServeReplicaAsync;
            if (_tunnelHandler is { } tunnels) _server.Route(TunnelProtocol.FrameType, Tunnels.Serve(tunnels));
        }
        return Task.CompletedTask;
    }

    /// <summary>
    /// Replicates a primary volume to a trusted peer: the peer creates (or attaches) the replica, the
    /// generations decide what to copy, and the link keeps it in sync from then on (reconnecting as needed).
    /// </summary>
    /// <param name="bandwidth">The link's limit in bytes per second on the wire (0: none); see <see cref="Source.WireBudget"/>.</param>
    public async Task<ReplicationStatus> AddReplicaAsync(string volume, string peerName, ReplicaMode mode, long bandwidth = 0,
        CancellationToken cancellationToken = default)
    {
        if (_trust.Find(peerName) is null) throw new ReplicationException($"no trusted peer is named {peerName}");
        await _admin.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            var info = Store.Get(volume);
            ReplicatedVolume? replicated;
            ReplicationFile? file;
            lock (_gate)
            {
                _primaries.TryGetValue(volume, out replicated);
                _files.TryGetValue(volume, out file);
            }
            if (file is { Role: VolumeRole.Replica }) throw new ReplicationException($"volume '{volume}' is a replica here; only a primary can add replicas");
            if (replicated?.PendingHandOver is { } doubt)
                throw new ReplicationException($"a hand-over of '{volume}' to {doubt.Peer} is in doubt: it is settled first (read-only until then)");
            if (replicated?.Links.FirstOrDefault(l => l.Peer == peerName) is { } existing)
                throw new ReplicationException(existing.Parted
                    ? $"volume '{volume}' was promoted here away from {peerName}, which may still hold it as primary: settle that with "
                      + $"roam volume resolve {volume} --keep HOST (on both hosts), or drop the parted link with roam volume unreplicate {volume} --from {peerName}"
                    : $"volume '{volume}' is already replicated to {peerName}");
            if (replicated is null)
            {
                file ??= new ReplicationFile(1, VolumeRole.Primary, Guid.NewGuid(), [], [], null);
                file.Write(StatePath(volume));
                replicated = ReplicatedVolume.Open(this, Store.Open(info.Name), file, _logger);
                // From plain to replicated: changes in flight on the plain path finish first, and every later
                // one takes the replicating device, so none lands unmirrored after the copy read its region.
                var fence = FenceOf(volume);
                fence.Freeze();
                try
                {
                    await fence.DrainAsync().ConfigureAwait(false);
                    lock (_gate) _primaries[volume] = replicated;
                }
                finally { fence.Thaw(); }
            }
            // A failed attach leaves a new replicated primary without replicas: open connections already write
            // through it and it behaves as a plain volume (deleting the volume lets go of it, see ForgetVolumeAsync).
            var attached = await AttachAsync(replicated, peerName, cancellationToken).ConfigureAwait(false);
            var link = replicated.AddLink(peerName, mode, bandwidth);
            lock (_gate)
            {
                _files[volume] = ReplicationFile.Read(StatePath(volume));
                _primaries[volume] = replicated;
            }
            link.Start(attached);
            Log.ReplicaAdded(_logger, volume, peerName, mode.ToString());
            return GetStatus(volume);
        }
        finally { _admin.Release(); }
    }

    public ReplicationStatus GetStatus(string volume)
    {
        Store.Get(volume);
        lock (_gate)
        {
            if (_primaries.TryGetValue(volume, out var primary))
            {
                var status = primary.Status();
                if (primary.PendingHandOver is { } pending)
                    status = status with
                    {
                        HandOverPeer = pending.Peer,
                        WritesRefused = true,
                        Notice = primary.Doubt ?? $"a hand-over to {pending.Peer} is in doubt: read-only until {pending.Peer} says whether it took over",
                    };
                else if (primary.Links.Any(l => l.IsFenced) && primary.Gate.ClosedReason is { } fenced)
                    status = status with { WritesRefused = true, Notice = fenced };
                return WithRival(status);
            }
            if (_files.TryGetValue(volume, out var file))
                return WithRival(new ReplicationStatus(volume, file.Role, file.Generations, [], file.PrimaryPeer, _sessions.ContainsKey(volume))
                {
                    WritesRefused = file.Role == VolumeRole.Replica,
                });
        }
        return new ReplicationStatus(volume, VolumeRole.Primary, new DataGenerations(Guid.Empty, []), [], null, false);
    }

    /// <summary>Adds what a rival primary's attach showed (see _rivals); the caller holds _gate.</summary>
    private ReplicationStatus WithRival(ReplicationStatus status)
    {
        if (status.Role != VolumeRole.Primary || !_rivals.TryGetValue(status.Volume, out var rival)) return status;
        string seen = $"{rival.At:yyyy-MM-dd HH:mm:ss}";
        string notice = rival.Verdict == SyncVerdict.SplitBrain
            ? $"split brain with {rival.Peer} (seen {seen}): it still holds this volume as primary and both sides wrote apart; "
              + $"nothing syncs until it is resolved. Keep one side's data with, on both hosts: roam volume resolve {status.Volume} --keep HOST"
            : $"{rival.Peer} came back as this volume's primary with older data (seen {seen}): it is outdated and nothing syncs; "
              + $"to make it a replica of this host, on both hosts: roam volume resolve {status.Volume} --keep {_identity.Name}";
        return status with { Notice = status.Notice is null ? notice : $"{status.Notice}; {notice}" };
    }

    /// <summary>
    /// Makes a replica the primary under a new generation. Refused while its primary is attached,
    /// unless <paramref name="force"/> (which drops that connection; a later reconnect is a split brain
    /// if the old primary wrote meanwhile, else it is reported as outdated).
    /// </summary>
    public async Task<ReplicationStatus> PromoteAsync(string volume, bool force, CancellationToken cancellationToken = default)
    {
        ReplicaSession? session;
        lock (_gate)
        {
            if (!_files.TryGetValue(volume, out var file) || file.Role != VolumeRole.Replica)
                throw new ReplicationException($"volume '{volume}' is not a replica here");
            _sessions.TryGetValue(volume, out session);
            if (session is not null && !force)
                throw new ReplicationException($"volume '{volume}' is attached to its primary {file.PrimaryPeer}; promoting now would make a split brain (use force)");
            var promoted = file.With(file.Generations.Next()) with { Role = VolumeRole.Primary };
            if (file.PrimaryPeer is { } oldPrimary)
            {
                // A parted link to the old primary records every region written here from now on, crash-safe like any link
                // (activity log, saved bitmap), so that a split brain with it resolves by copying only what either side
                // wrote apart. What this copy lacked when it was promoted (a resync under way, frames never acknowledged)
                // is in the old primary's bitmap for this host, which the resolve adds on its side.
                var parted = new RegionBitmap(Store.Get(volume).Size, Options.RegionSize);
                if (LoadDiverged(volume) is { } earlier)
                {
                    // This copy lost an earlier split brain (to this host or to one its volume came from) and was not fully
                    // overwritten yet: what it wrote then is still its own, and goes on being tracked as written apart.
                    foreach (var (offset, length) in earlier.DirtyRanges(int.MaxValue)) parted.MarkDirty(offset, length);
                }
                parted.Save(BitmapPath(volume, oldPrimary));
                promoted = promoted with { Peers = [new ReplicaRecord(oldPrimary, ReplicaMode.Sync, null, Parted: true)] };
            }
            TryDelete(ActivityLogPath(volume));
            promoted.Write(StatePath(volume));
            _files[volume] = promoted;
            DeleteDivergedFiles(volume);
            if (promoted.Peers.Count > 0)
            {
                var replicated = ReplicatedVolume.Open(this, Store.Open(volume), promoted, _logger);
                _primaries[volume] = replicated;
                replicated.StartLinks();
            }
            Log.Promoted(_logger, volume, promoted.Current, force);
        }
        if (session is not null) await session.StopAsync().ConfigureAwait(false);
        cancellationToken.ThrowIfCancellationRequested();
        return GetStatus(volume);
    }

    internal async Task<AttachedConnection> AttachAsync(ReplicatedVolume volume, string peer, CancellationToken cancellationToken)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, _stopping.Token);
        timeout.CancelAfter(Options.AttachTimeout);
        var connection = await _connector.ConnectAsync(peer, timeout.Token).ConfigureAwait(false);
        try
        {
            var output = connection.Transport.Output;
            ReplicationFrameWriter.WriteAttach(output, 1, new PeerAttach(volume.VolumeId, (ulong)volume.Size, volume.Generations, volume.Name));
            await output.FlushAsync(timeout.Token).ConfigureAwait(false);
            var frame = await PeerFrameReader.ReadFrameAsync(connection.Transport.Input, PeerAttachAck.MaxLength, timeout.Token).ConfigureAwait(false)
                ?? throw new ReplicationException($"{peer} closed the connection instead of answering Attach");
            if (frame.Type == PeerFrameType.Error)
            {
                var error = PeerError.Read(frame.Payload);
                throw new ReplicationException($"{peer} refused to replicate '{volume.Name}': {error.Code}: {error.Message}");
            }
            if (frame.Type != PeerFrameType.AttachAck) throw new ReplicationException($"{peer} answered Attach with {frame.Type}");
            var ack = PeerAttachAck.Read(frame.Payload);
            if (ack.Diverged is not null && connection.ProtocolVersion < PeerProtocol.DivergedRegionsVersion)
                throw new ReplicationException($"{peer} sent diverged regions on a version {connection.ProtocolVersion} connection");
            return new AttachedConnection(connection, ack);
        }
        catch
        {
            await connection.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    /// <summary>Target side: one connection from a primary, for as long as it replicates a volume here.</summary>
    private async Task ServeReplicaAsync(PeerConnection connection, CancellationToken stopping)
    {
        // This service stops its sessions before the server's token is cancelled (see StopAsync).
        using var link = CancellationTokenSource.CreateLinkedTokenSource(stopping, _stopping.Token);
        await new ReplicaSession(this, connection, _logger).RunAsync(link.Token).ConfigureAwait(false);
    }

    /// <summary>
    /// Target side of Attach: creates the replica volume if missing, or checks the one held; a
    /// previous session for the volume is stopped first, so frames of a dead link never land after new ones.
    /// </summary>
    internal async Task<(PeerAttachAck Ack, VolumeLease? Lease)> AcceptAttachAsync(PeerAttach attach, string peer, ReplicaSession session, int protocolVersion)
    {
        if (!VolumeName.IsValid(attach.Name)) throw new AttachRefused(PeerErrorCode.UnknownVolume, $"'{attach.Name}' is not a valid volume name");
        await WaitHandOverSettledAsync(attach.Name).ConfigureAwait(false);
        ReplicaSession? previous;
        PeerAttachFlags flags = PeerAttachFlags.None;
        DataGenerations generations;
        lock (_gate)
        {
            _files.TryGetValue(attach.Name, out var file);
            if (file is { Role: VolumeRole.Primary } || (file is null && Store.TryGet(attach.Name, out _)))
            {
                if (file is null) throw new AttachRefused(PeerErrorCode.UnknownVolume, $"volume '{attach.Name}' exists on {_identity.Name} and is not a replica");
                // The peer still takes itself for the primary. Its side decides what to do (nothing syncs into a
                // primary); this side says what it sees, so a promoted host reports a split brain by itself too.
                var verdict = SyncDecision.Decide(file.Generations, attach.Generations);
                if (verdict is SyncVerdict.SplitBrain or SyncVerdict.LocalNewer)
                {
                    if (!_rivals.TryGetValue(attach.Name, out var known) || known.Peer != peer || known.Verdict != verdict)
                    {
                        if (verdict == SyncVerdict.SplitBrain) Log.SplitBrain(_logger, attach.Name, peer, file.Generations.Current, attach.Generations.Current);
                        else Log.RivalOutdated(_logger, attach.Name, peer);
                    }
                    _rivals[attach.Name] = (peer, verdict, DateTimeOffset.Now);
                }
                return (new PeerAttachAck(PeerAttachFlags.Primary, file.Generations), null);
            }
            if (file is null)
            {
                Store.Create(attach.Name, (long)attach.Size);
                // Generation "none" until the first complete sync: a partial copy is never mistaken for a generation.
                file = new ReplicationFile(1, VolumeRole.Replica, Guid.Empty, [], [], peer);
                file.Write(StatePath(attach.Name));
                _files[attach.Name] = file;
                flags |= PeerAttachFlags.Created;
                Log.ReplicaCreated(_logger, attach.Name, peer, (long)attach.Size);
            }
            else if (Store.Get(attach.Name).Size != (long)attach.Size)
                throw new AttachRefused(PeerErrorCode.OutOfRange, $"replica '{attach.Name}' is {Store.Get(attach.Name).Size} bytes, the primary's is {attach.Size}");
            else if (file.PrimaryPeer != peer)
            {
                file = file with { PrimaryPeer = peer };
                file.Write(StatePath(attach.Name));
                _files[attach.Name] = file;
            }
            generations = file.Generations;
            _sessions.TryGetValue(attach.Name, out previous);
            _sessions[attach.Name] = session;
        }
        if (previous is not null) await previous.StopAsync().ConfigureAwait(false);
        return (new PeerAttachAck(flags, generations, DivergedFor(attach.Name, generations, protocolVersion)), Store.Open(attach.Name));
    }

    /// <summary>
    /// What a split brain's loser tells its keeper on attach: the regions it wrote apart, until the keeper's copy
    /// completes (the replica has no generation until then; a reconnect in the middle sends them again).
    /// </summary>
    private IReadOnlyList<DivergedRange>? DivergedFor(string volume, DataGenerations generations, int protocolVersion)
    {
        if (generations.Current != Guid.Empty || protocolVersion < PeerProtocol.DivergedRegionsVersion) return null;
        if (LoadDiverged(volume) is not { } bitmap) return null;
        return [.. bitmap.DirtyRanges(PeerProtocol.MaxDivergedRanges).Select(r => new DivergedRange((ulong)r.Offset, (ulong)r.Length))];
    }

    internal void SessionEnded(string volume, ReplicaSession session)
    {
        lock (_gate)
            if (_sessions.TryGetValue(volume, out var s) && ReferenceEquals(s, session)) _sessions.Remove(volume);
    }

    /// <summary>False when the volume is no longer a replica here (promoted), so its frames must be refused.</summary>
    internal bool IsReplicaOf(string volume, ReplicaSession session)
    {
        lock (_gate)
            return _files.TryGetValue(volume, out var f) && f.Role == VolumeRole.Replica
                && _sessions.TryGetValue(volume, out var s) && ReferenceEquals(s, session);
    }

    internal void SetReplicaGenerations(string volume, DataGenerations generations)
    {
        lock (_gate)
        {
            if (!_files.TryGetValue(volume, out var file) || file.Role != VolumeRole.Replica) return;
            file = file.With(generations);
            file.Write(StatePath(volume));
            _files[volume] = file;
            // A generation means a complete copy from the primary: a split brain lost earlier is fully overwritten.
            if (generations.Current != Guid.Empty) DeleteDivergedFiles(volume);
        }
    }

    /// <summary>Why the volume's fence was closed (it lost its primary role here), if it was.</summary>
    internal string? FenceClosedReason(string volume)
    {
        lock (_gate) return _fences.TryGetValue(volume, out var fence) ? fence.ClosedReason : null;
    }

    /// <summary>The write fence of a primary exported without replication; a closed one (it lost its role) is replaced for new exports.</summary>
    internal WriteGate FenceOf(string volume)
    {
        lock (_gate)
        {
            if (!_fences.TryGetValue(volume, out var fence) || fence.ClosedReason is not null) _fences[volume] = fence = new WriteGate();
            return fence;
        }
    }

    internal (VolumeRole Role, ReplicatedVolume? Primary) Lookup(string volume)
    {
        lock (_gate)
        {
            if (_primaries.TryGetValue(volume, out var p)) return (VolumeRole.Primary, p);
            if (_files.TryGetValue(volume, out var f)) return (f.Role, null);
            return (VolumeRole.Primary, null);
        }
    }

    /// <summary>Clean shutdown: links and sessions closed, bitmaps saved, activity logs marked clean.</summary>
    public async ValueTask DisposeAsync() => await StopAsync(clean: true).ConfigureAwait(false);

    /// <summary>Tests: stop as a crash would (no bitmap save, activity logs left hot).</summary>
    internal ValueTask CrashAsync() => StopAsync(clean: false);

    private async ValueTask StopAsync(bool clean)
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0) return;
        await _stopping.CancelAsync().ConfigureAwait(false);
        Hooks.Resume();
        ReplicaSession[] sessions;
        lock (_gate) sessions = [.. _sessions.Values];
        foreach (var s in sessions) await s.StopAsync().ConfigureAwait(false);
        // Ends the sessions and tunnels still being served and waits for them.
        if (_server is not null) await _server.DisposeAsync().ConfigureAwait(false);
        Task[] settlers;
        lock (_gate) settlers = [.. _settlers];
        try { await Task.WhenAll(settlers).ConfigureAwait(false); }
        catch (Exception ex) when (ex is OperationCanceledException or ObjectDisposedException) { }
        ReplicatedVolume[] primaries;
        lock (_gate) primaries = [.. _primaries.Values];
        foreach (var p in primaries)
        {
            if (clean) await p.DisposeAsync().ConfigureAwait(false);
            else await p.AbandonAsync().ConfigureAwait(false);
        }
        _stopping.Dispose();
    }
}

/// <summary>Fault injection for tests: a stalled target stops reading its connections.</summary>
internal sealed class TestHooks
{
    private volatile TaskCompletionSource? _stall;

    /// <summary>Source side: a pause before each resync region (to catch a copy half-way).</summary>
    public TimeSpan ResyncPause { get; set; }

    /// <summary>Source side: the hand-over fails right after this step has been done.</summary>
    public HandOverStep? FailAfter { get; set; }

    /// <summary>Source side: the hand-over stops dead right after this step, as a process crash would (nothing cleaned up, nothing resolved).</summary>
    public HandOverStep? CrashAfter { get; set; }

    /// <summary>Source side: awaited just before that simulated crash (e.g. until the destination has acted on HandOver).</summary>
    public Func<Task>? BeforeCrash { get; set; }

    /// <summary>Target side: answer a HandOver frame with an Error (the promotion never happens).</summary>
    public bool RefuseHandOver { get; set; }

    /// <summary>Target side: promote, then drop the connection instead of acknowledging the HandOver.</summary>
    public bool DropBeforeHandOverAck { get; set; }

    public Task TargetGate => _stall?.Task ?? Task.CompletedTask;

    public void StallTargets() => _stall = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);

    public void Resume() => Interlocked.Exchange(ref _stall, null)?.TrySetResult();
}

internal sealed class AttachRefused(PeerErrorCode code, string message) : Exception(message)
{
    public PeerErrorCode Code { get; } = code;
}
