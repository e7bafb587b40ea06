using Roam.Storage.Layers;
using System.Net;
using Microsoft.Extensions.Logging;
using Roam.Peers.Identity;
using Roam.Peers.Protocol;
using Roam.Peers.Transport;
using Roam.Peers.Trust;
using Roam.Peers.Tunnel;
using Roam.Replication.HandOver;
using Roam.Replication.Source;
using Roam.Replication.SplitBrain;
using Roam.Replication.Target;
using Roam.Replication.Volumes;
using Roam.Storage.Devices;
using Roam.Storage.Volumes;

namespace Roam.Replication.Engine;

/// <summary>
/// Volume replication for one roamd: the registry of replicated volumes (one <see cref="VolumeReplication"/>
/// each), their start and stop, and the peer listener. The work lives in rooms: Source/ (replicas of a primary),
/// Target/ (replicas here, promotion), HandOver/ (volume migration), SplitBrain/ (resolve). State lives in
/// DATA_DIR/replication (see <see cref="ReplicationPaths"/>); a volume without a NAME.json is a plain primary
/// with no replicas.
/// </summary>
public sealed partial class ReplicationService : IAsyncDisposable
{
    private readonly HostIdentity _identity;
    private readonly TrustStore _trust;
    private readonly ILogger _logger;
    private readonly PeerConnector _connector;
    private readonly CancellationTokenSource _stopping = new();
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
        Paths = new ReplicationPaths(dataDir);
        _connector = new PeerConnector(identity, trust, new PeerConnectorOptions { Timeout = Options.AttachTimeout }, logger);
        Peers = new PeerRequests(this, _connector);
        Replicas = new ReplicaAdmin(this);
        Replica = new ReplicaTarget(this);
        Diverged = new DivergedRegions(this);
        SplitBrains = new SplitBrainResolver(this);
        Migrations = new MigrationSource(this);
        HandOvers = new HandOverSource(this);
        Doubts = new HandOverDoubts(this);
        HandOverTarget = new HandOverTarget(this);
    }

    public ReplicationOptions Options { get; }

    /// <summary>
    /// The path an export of <paramref name="volume"/> takes over its local file <paramref name="local"/>: through
    /// replication's layers as its role requires, read-only on a replica (see <see cref="Volumes.ExportPaths"/>).
    /// </summary>
    public (IBlockDevice Device, bool ReadOnly) ComposeExport(string volume, IBlockDevice local) => ExportPaths.Compose(this, volume, local);

    /// <summary>The peer listener's bound endpoint (with the real port when 0 was asked for), once started.</summary>
    public IPEndPoint? ListenEndPoint => _server?.LocalEndPoint;

    // The rooms' shared context.
    internal VolumeStore Store { get; }
    internal HostIdentity Identity => _identity;
    internal TrustStore Trust => _trust;
    internal ILogger Logger => _logger;
    internal TestHooks Hooks { get; } = new();
    internal ReplicationPaths Paths { get; }
    internal VolumeRegistry Volumes { get; } = new();
    /// <summary>Serializes the administrative operations (add, remove, promote, hand over, resolve, settle, forget).</summary>
    internal SemaphoreSlim Admin { get; } = new(1, 1);
    internal CancellationToken Stopping => _stopping.Token;

    // The rooms.
    internal PeerRequests Peers { get; }
    internal ReplicaAdmin Replicas { get; }
    internal ReplicaTarget Replica { get; }
    internal DivergedRegions Diverged { get; }
    internal SplitBrainResolver SplitBrains { get; }
    internal MigrationSource Migrations { get; }
    internal HandOverSource HandOvers { get; }
    internal HandOverDoubts Doubts { get; }
    internal HandOverTarget HandOverTarget { get; }

    /// <summary>Activity-log transactions written for a primary volume since it opened (tests).</summary>
    internal long ActivityLogTransactions(string volume) => Volumes.Find(volume)!.Lookup().Primary!.ActivityLog.Transactions;

    /// <summary>Loads the replication state, opens replicated primaries (replaying their activity logs) and listens for peers.</summary>
    public Task StartAsync(IPEndPoint? peerListen, CancellationToken cancellationToken = default)
    {
        foreach (var temp in Directory.EnumerateFiles(Paths.Directory, "*" + DurableFile.TempSuffix)) File.Delete(temp);
        foreach (var path in Directory.EnumerateFiles(Paths.Directory, "*.json"))
        {
            var name = Path.GetFileNameWithoutExtension(path);
            if (!Store.TryGet(name, out _))
            {
                Log.StateWithoutVolume(_logger, name);
                continue;
            }
            var file = ReplicationFile.Read(path);
            var entry = Volumes.Get(name);
            lock (entry.Gate) entry.File = file;
            if (file.Role == VolumeRole.Primary && (file.Peers.Count > 0 || file.HandOver is not null))
            {
                var volume = ReplicatedVolume.Open(this, Store.Open(name), file, _logger);
                lock (entry.Gate) entry.Primary = volume;
                if (file.HandOver is { } pending) Doubts.OpenInDoubt(volume, pending);
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
    public Task<ReplicationStatus> AddReplicaAsync(string volume, string peerName, ReplicaMode mode, long bandwidth = 0,
        CancellationToken cancellationToken = default) => Replicas.AddReplicaAsync(volume, peerName, mode, bandwidth, cancellationToken);

    /// <inheritdoc cref="ReplicaAdmin.RemoveReplicaAsync"/>
    public Task<ReplicaRemoval> RemoveReplicaAsync(string volume, string peer, CancellationToken cancellationToken = default) =>
        Replicas.RemoveReplicaAsync(volume, peer, cancellationToken);

    /// <inheritdoc cref="ReplicaAdmin.ForgetVolumeAsync"/>
    public Task ForgetVolumeAsync(string volume, CancellationToken cancellationToken = default) => Replicas.ForgetVolumeAsync(volume, cancellationToken);

    public ReplicationStatus GetStatus(string volume)
    {
        Store.Get(volume);
        return Volumes.Find(volume)?.Status(_identity.Name) ?? VolumeReplication.PlainStatus(volume);
    }

    /// <inheritdoc cref="ReplicaTarget.PromoteAsync"/>
    public Task<ReplicationStatus> PromoteAsync(string volume, bool force, CancellationToken cancellationToken = default) =>
        Replica.PromoteAsync(volume, force, cancellationToken);

    /// <inheritdoc cref="SplitBrainResolver.ResolveAsync"/>
    public Task<ReplicationStatus> ResolveAsync(string volume, string keepHost, CancellationToken cancellationToken = default) =>
        SplitBrains.ResolveAsync(volume, keepHost, cancellationToken);

    internal Task<AttachedConnection> AttachAsync(ReplicatedVolume volume, string peer, CancellationToken cancellationToken) =>
        Peers.AttachAsync(volume, peer, cancellationToken);

    /// <summary>Target side: one connection from a primary, for as long as it replicates a volume here.</summary>
    private async Task ServeReplicaAsync(PeerConnection connection, CancellationToken stopping)
    {
        // This service stops its sessions before the server's token is cancelled (see StopAsync).
        using var link = CancellationTokenSource.CreateLinkedTokenSource(stopping, _stopping.Token);
        await new ReplicaSession(this, connection, _logger).RunAsync(link.Token).ConfigureAwait(false);
    }

    /// <summary>Why the volume's fence was closed (it lost its primary role here), if it was.</summary>
    internal string? FenceClosedReason(string volume) => Volumes.Find(volume)?.FenceClosedReason();

    /// <summary>The write fence of a primary exported without replication; a closed one (it lost its role) is replaced for new exports.</summary>
    internal WriteFence FenceOf(string volume) => Volumes.Get(volume).FenceOf();

    internal (VolumeRole Role, ReplicatedVolume? Primary) Lookup(string volume) =>
        Volumes.Find(volume) is { } entry ? entry.Lookup() : (VolumeRole.Primary, null);

    /// <summary>Clean shutdown: links and sessions closed, bitmaps saved, activity logs marked clean.</summary>
    public async ValueTask DisposeAsync() => await StopAsync(clean: true).ConfigureAwait(false);

    /// <summary>Tests: stop as a crash would (no bitmap save, activity logs left hot).</summary>
    internal ValueTask CrashAsync() => StopAsync(clean: false);

    private async ValueTask StopAsync(bool clean)
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0) return;
        await _stopping.CancelAsync().ConfigureAwait(false);
        Hooks.Resume();
        foreach (var s in Snapshot(v => v.Session)) await s.StopAsync().ConfigureAwait(false);
        // Ends the sessions and tunnels still being served and waits for them.
        if (_server is not null) await _server.DisposeAsync().ConfigureAwait(false);
        await Doubts.WaitSettlersAsync().ConfigureAwait(false);
        foreach (var p in Snapshot(v => v.Primary))
        {
            if (clean) await p.DisposeAsync().ConfigureAwait(false);
            else await p.AbandonAsync().ConfigureAwait(false);
        }
        _stopping.Dispose();
    }

    private List<T> Snapshot<T>(Func<VolumeReplication, T?> pick) where T : class
    {
        var found = new List<T>();
        foreach (var v in Volumes.All)
            lock (v.Gate)
                if (pick(v) is { } item) found.Add(item);
        return found;
    }
}
