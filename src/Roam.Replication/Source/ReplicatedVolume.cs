using Microsoft.Extensions.Logging;
using Roam.Replication.Engine;
using Roam.Peers.Protocol;
using Roam.Replication.Protocol;
using Roam.Storage.Devices;
using Roam.Storage.Layers;
using Roam.Storage.Tracking;
using Roam.Storage.Volumes;

namespace Roam.Replication.Source;

/// <summary>
/// A primary volume with replicas: its lease, activity log, per-replica links and persisted state.
/// </summary>
internal sealed class ReplicatedVolume : IAsyncDisposable
{
    private readonly ReplicationService _service;
    private readonly VolumeLease _lease;
    private readonly ILogger _logger;
    private readonly Lock _gate = new();
    private readonly List<PeerLink> _links = [];
    private PeerLink[] _linksSnapshot = []; // what the write path reads: replaced under _gate, never changed in place
    private readonly Timer _saver;
    private ReplicationFile _file;
    private long _savedVersions = -1;

    private ReplicatedVolume(ReplicationService service, VolumeLease lease, ReplicationFile file, ILogger logger)
    {
        _service = service;
        _lease = lease;
        _file = file;
        _logger = logger;
        Options = service.Options;
        Locks = new RegionLocks(Options.RegionSize);
        ActivityLog = ActivityLog.Open(service.Paths.ActivityLog(Name), out var hot, Options.ActivityLogExtentSize, Options.ActivityLogCapacity,
            beforeEvict: evicted => { SaveBitmapsCovering(evicted); return ValueTask.CompletedTask; });
        // Top to bottom, as a change meets them: the fence (a hand-over stops and drains changes here), the activity
        // log (the extents are named durably before the change goes on), the mirror (local write, then every replica).
        Device = new WriteFenceLayer(new ActivityLogLayer(new MirrorLayer(Local, this), ActivityLog), Gate);
        HotAtCrash = hot;
        _saver = new Timer(_ => SaveBitmapsIfChanged(), null, Options.BitmapSaveInterval, Options.BitmapSaveInterval);
    }

    public string Name => _lease.Info.Name;
    public Guid VolumeId => _lease.Info.Id;
    public long Size => _lease.Info.Size;
    public IBlockDevice Local => _lease.Device;
    public ReplicationOptions Options { get; }
    public RegionLocks Locks { get; }
    public ActivityLog ActivityLog { get; }
    /// <summary>The primary's stack of layers over its file, what its NBD exports write through.</summary>
    public IBlockDevice Device { get; }
    public IReadOnlyList<(long Offset, long Length)> HotAtCrash { get; }

    public DataGenerations Generations
    {
        get { lock (_gate) return _file.Generations; }
    }

    /// <summary>The replica links now: a snapshot taken without a lock or a copy (every write reads it).</summary>
    public IReadOnlyList<PeerLink> Links => Volatile.Read(ref _linksSnapshot);

    /// <summary>Publishes <see cref="_links"/> to the write path; call under _gate after each change.</summary>
    private void LinksChanged() => Volatile.Write(ref _linksSnapshot, [.. _links]);

    public static ReplicatedVolume Open(ReplicationService service, VolumeLease lease, ReplicationFile file, ILogger logger)
    {
        var volume = new ReplicatedVolume(service, lease, file, logger);
        foreach (var peer in file.Peers)
        {
            var bitmap = RegionBitmap.LoadOrAllDirty(service.Paths.Bitmap(volume.Name, peer.Peer), volume.Size, service.Options.RegionSize);
            volume._links.Add(new PeerLink(volume, peer.Peer, peer.Mode, peer.SyncedGeneration, bitmap, logger, service.Options) {
                Paused = peer.Paused,
                Bandwidth = peer.Bandwidth,
                Parted = peer.Parted,
                MergeDiverged = peer.MergeDiverged,
            });
        }
        lock (volume._gate) volume.LinksChanged();
        if (volume.HotAtCrash.Count > 0)
        {
            // A crash: the extents that were hot may hold writes no replica got (nor a parted link recorded).
            foreach (var link in volume._links)
                foreach (var (offset, length) in volume.HotAtCrash)
                    link.Bitmap.MarkDirty(offset, Math.Min(length, volume.Size - offset));
            Log.ActivityLogReplayed(logger, volume.Name, volume.HotAtCrash.Count);
            volume.SaveBitmaps();
        }
        return volume;
    }

    private int _linksStarted;

    /// <summary>Starts the links' connection loops (once).</summary>
    public void StartLinks()
    {
        if (Interlocked.Exchange(ref _linksStarted, 1) != 0) return;
        foreach (var link in Links)
            if (!link.Paused && !link.Parted) link.Start(null);
    }

    /// <summary>Why a hand-over in doubt keeps this volume read-only, as the last attempt to settle it found.</summary>
    public volatile string? Doubt;

    /// <summary>Opened with a hand-over in doubt: its links were not started (they start once it turns out it stays primary).</summary>
    public bool LinksDeferred { get; set; }

    public ReplicationService Service => _service;

    /// <summary>Changes admission: frozen and closed by a hand-over (the top layer of <see cref="Device"/>).</summary>
    public WriteFence Gate { get; } = new();

    /// <summary>Persists a replica's mode, flags and synced generation (the link applies them itself).</summary>
    public void SaveRecord(PeerLink link)
    {
        lock (_gate)
        {
            _file = _file with
            {
                Peers = [.. _file.Peers.Select(p => p.Peer == link.Peer
                    ? p with
                    {
                        Mode = link.Mode, Paused = link.Paused, Bandwidth = link.Bandwidth, SyncedGeneration = link.SyncedGeneration,
                        Parted = link.Parted, MergeDiverged = link.MergeDiverged,
                    }
                    : p)],
            };
            _file.Write(_service.Paths.State(Name));
        }
    }

    /// <summary>A split brain's resolution changed the link's bitmap and record: the bitmap is saved first, so a crash never keeps the record without the bits.</summary>
    public void SaveResolved(PeerLink link)
    {
        link.Bitmap.Save(_service.Paths.Bitmap(Name, link.Peer));
        SaveRecord(link);
    }

    public Task<AttachedConnection> ConnectAsync(string peer, CancellationToken ct) => _service.AttachAsync(this, peer, ct);

    public PeerLink AddLink(string peer, ReplicaMode mode, long bandwidth = 0)
    {
        lock (_gate)
        {
            if (_links.Any(l => l.Peer == peer)) throw new ReplicationException(ReplicationError.AlreadyReplicated, $"volume '{Name}' is already replicated to {peer}");
            var bitmap = new RegionBitmap(Size, Options.RegionSize);
            bitmap.MarkAllDirty();
            var link = new PeerLink(this, peer, mode, null, bitmap, _logger, Options) { Bandwidth = bandwidth };
            bitmap.Save(_service.Paths.Bitmap(Name, peer));
            _links.Add(link);
            LinksChanged();
            _file = _file with { Peers = [.. _file.Peers, new ReplicaRecord(peer, mode, null, Bandwidth: link.Bandwidth)] };
            _file.Write(_service.Paths.State(Name));
            return link;
        }
    }

    /// <summary>Forgets a (stopped) link: its record goes from the state file; the caller deletes its bitmap.</summary>
    public void RemoveLink(PeerLink link)
    {
        lock (_gate)
        {
            _links.Remove(link);
            LinksChanged();
            _file = _file with { Peers = [.. _file.Peers.Where(p => p.Peer != link.Peer)] };
            _file.Write(_service.Paths.State(Name));
        }
    }

    /// <summary>The hand-over this volume is in doubt about (persisted), or null.</summary>
    public PendingHandOver? PendingHandOver
    {
        get { lock (_gate) return _file.HandOver; }
    }

    /// <summary>Persists (before HandOver is sent) or clears a hand-over intent.</summary>
    public void SetPendingHandOver(PendingHandOver? handOver)
    {
        lock (_gate)
        {
            _file = _file with { HandOver = handOver };
            _file.Write(_service.Paths.State(Name));
        }
    }

    public void SetSynced(PeerLink link, Guid generation)
    {
        lock (_gate)
        {
            link.SyncedGeneration = generation;
            _file = _file with { Peers = [.. _file.Peers.Select(p => p.Peer == link.Peer ? p with { SyncedGeneration = generation } : p)] };
            _file.Write(_service.Paths.State(Name));
        }
        link.Bitmap.Save(_service.Paths.Bitmap(Name, link.Peer));
    }

    /// <summary>
    /// Before a write: a replica that was in sync at the current generation and is away now means the
    /// data is about to diverge from it, so start a new generation (and tell the replicas still attached).
    /// </summary>
    public void EnsureGeneration()
    {
        lock (_gate)
        {
            var current = _file.Generations;
            // A loop, not Any(): a lambda capturing the generation would allocate on every write.
            bool diverges = false;
            foreach (var link in _links)
                if (link.SyncedGeneration == current.Current && !link.IsMirroring) { diverges = true; break; }
            if (!diverges) return;
            var next = current.Next();
            _file = _file.With(next);
            _file.Write(_service.Paths.State(Name));
            Log.NewGeneration(_logger, Name, next.Current, current.Current);
            // The attached replicas get the new generation in order with the writes; their resync loop confirms it.
        }
    }

    public void SaveBitmaps()
    {
        foreach (var link in Links) link.Bitmap.Save(_service.Paths.Bitmap(Name, link.Peer));
    }

    /// <summary>
    /// Before the activity log forgets some extents: saves the bitmaps that hold a dirty bit there the
    /// file does not have yet. A replica in sync has no such bit (its writes were acknowledged), and a
    /// resync's regions were saved when it started, so most evictions write nothing.
    /// </summary>
    private void SaveBitmapsCovering(Eviction eviction)
    {
        foreach (var link in Links)
            if (eviction.Evicted.Any(e => link.Bitmap.HasUnsavedDirty(e.Offset, e.Length)))
                link.Bitmap.Save(_service.Paths.Bitmap(Name, link.Peer), eviction.StaysLogged);
    }

    private void SaveBitmapsIfChanged()
    {
        try
        {
            long versions = Links.Sum(l => l.Bitmap.Version);
            if (versions == Interlocked.Read(ref _savedVersions)) return;
            // The extents the log names are left out: their bits are mostly writes in flight, which would otherwise
            // stay in the file and be resynced after a crash on top of the log's own extents.
            ActivityLog.WhileLogged(logged =>
            {
                foreach (var link in Links) link.Bitmap.Save(_service.Paths.Bitmap(Name, link.Peer), logged);
            });
            Interlocked.Exchange(ref _savedVersions, versions);
        }
        catch (Exception ex) when (ex is IOException or ObjectDisposedException)
        {
            Log.BitmapSaveFailed(_logger, Name, ex.Message);
        }
    }

    public ReplicationStatus Status() =>
        new(Name, VolumeRole.Primary, Generations, [.. Links.Select(l => l.Status())], null, false);

    /// <summary>Clean stop: links down, bitmaps saved, the activity log marked clean.</summary>
    public async ValueTask DisposeAsync()
    {
        await _saver.DisposeAsync().ConfigureAwait(false);
        foreach (var link in Links) await link.DisposeAsync().ConfigureAwait(false);
        SaveBitmaps();
        ActivityLog.MarkClean();
        ActivityLog.Dispose();
        _lease.Dispose();
    }

    /// <summary>Stops as a crash would: nothing is saved, the activity log keeps its hot extents.</summary>
    public async ValueTask AbandonAsync()
    {
        await _saver.DisposeAsync().ConfigureAwait(false);
        foreach (var link in Links) await link.DisposeAsync().ConfigureAwait(false);
        ActivityLog.Dispose();
        _lease.Dispose();
    }
}
