using Roam.Nbd.Server;
using System.Net;
using Roam.Replication.Engine;
using Roam.Peers.Identity;
using Roam.Peers.Trust;
using Roam.Storage.Devices;
using Roam.Storage.Volumes;

namespace Roam.Testing.Replication;

/// <summary>One simulated roamd with replication: data dir, identity, trust, volume store and service; restartable on the same dir and port.</summary>
public sealed class ReplNode : IAsyncDisposable
{
    private readonly TestDirectory _dir = new();
    private readonly ReplicationOptions _options;
    private int _port;

    private ReplNode(string name, ReplicationOptions options)
    {
        Name = name;
        _options = options;
        Identity = HostIdentity.LoadOrCreate(_dir.Path, name);
    }

    public string Name { get; }
    public HostIdentity Identity { get; }
    public TrustStore Trust { get; private set; } = null!;
    public VolumeStore Store { get; private set; } = null!;
    public ReplicationService Service { get; private set; } = null!;
    public TestLog Log { get; } = new();
    public int Port => _port;
    public bool Running { get; private set; }

    public static ReplicationOptions TestOptions => new()
    {
        SyncTimeout = TimeSpan.FromSeconds(5),
        ReconnectMinDelay = TimeSpan.FromMilliseconds(50),
        ReconnectMaxDelay = TimeSpan.FromMilliseconds(300),
        BitmapSaveInterval = TimeSpan.FromMilliseconds(200),
        AttachTimeout = TimeSpan.FromSeconds(5),
        HandOverRetryInterval = TimeSpan.FromMilliseconds(300),
    };

    public static async Task<(ReplNode Primary, ReplNode Replica)> PairAsync(ReplicationOptions? options = null)
    {
        var a = new ReplNode("alpha", options ?? TestOptions);
        var b = new ReplNode("beta", options ?? TestOptions);
        await a.StartAsync();
        await b.StartAsync();
        a.Trust.Add("beta", $"127.0.0.1:{b.Port}", b.Identity.Fingerprint.ToString());
        b.Trust.Add("alpha", $"127.0.0.1:{a.Port}", a.Identity.Fingerprint.ToString());
        return (a, b);
    }

    /// <summary>Started nodes with these names, each trusting all the others.</summary>
    public static async Task<ReplNode[]> MeshAsync(ReplicationOptions options, params string[] names)
    {
        var nodes = names.Select(n => new ReplNode(n, options)).ToArray();
        foreach (var node in nodes) await node.StartAsync();
        foreach (var node in nodes)
            foreach (var other in nodes.Where(o => o != node))
                node.Trust.Add(other.Name, $"127.0.0.1:{other.Port}", other.Identity.Fingerprint.ToString());
        return nodes;
    }

    /// <summary>The replica of <paramref name="volume"/> on <paramref name="peer"/>, as this (primary) host sees it.</summary>
    public ReplicaStatus Replica(string volume, string peer) => Service.GetStatus(volume).Replicas.Single(r => r.Peer == peer);

    public async Task WaitInSyncAsync(string volume, string peer, TimeSpan? timeout = null)
    {
        var deadline = DateTime.UtcNow + (timeout ?? TimeSpan.FromSeconds(20));
        while (true)
        {
            var r = Service.GetStatus(volume).Replicas.FirstOrDefault(r => r.Peer == peer);
            if (r is { State: ReplicaState.InSync, BytesOutOfSync: 0, PendingBytes: 0 }) return;
            if (DateTime.UtcNow > deadline)
                throw new TimeoutException($"{volume} not in sync on {peer}: {r?.ToString() ?? "no such replica"}; log: "
                    + string.Join(" | ", Log.Entries.TakeLast(15).Select(e => e.Message)));
            await Task.Delay(20);
        }
    }

    public async Task StartAsync()
    {
        Trust = TrustStore.Open(_dir.Path);
        Store = new VolumeStore(_dir.Path, Log);
        Service = new ReplicationService(Identity, Trust, Store, _dir.Path, Log, _options);
        await Service.StartAsync(new IPEndPoint(IPAddress.Loopback, _port));
        _port = Service.ListenEndPoint!.Port;
        Running = true;
    }

    public async Task StopAsync(bool crash = false)
    {
        if (!Running) return;
        Running = false;
        if (crash) await Service.CrashAsync();
        else await Service.DisposeAsync();
        Store.Dispose();
    }

    public async Task RestartAsync(bool crash = false)
    {
        await StopAsync(crash);
        await StartAsync();
    }

    /// <summary>The node's NBD exports, composed as roamd composes them (Roam.Daemon's Exports/VolumeExports).</summary>
    public INbdExportProvider Exports => new VolumeExportProvider(Store, Service.ComposeExport);

    public IBlockDevice Open(string volume, out bool readOnly)
    {
        var export = Exports.Open(volume) ?? throw new InvalidOperationException($"no export {volume}");
        readOnly = export.ReadOnly;
        return export.Device;
    }

    public byte[] ReadRaw(string volume)
    {
        using var stream = new FileStream(Store.DataPath(volume), FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
        var bytes = new byte[stream.Length];
        stream.ReadExactly(bytes);
        return bytes;
    }

    public Task StartAgainAsync() => StartAsync();

    public string DataDir => _dir.Path;

    public ReplicaStatus Replica(string volume) => Service.GetStatus(volume).Replicas.Single();

    public async Task WaitInSyncAsync(string volume, TimeSpan? timeout = null)
    {
        var deadline = DateTime.UtcNow + (timeout ?? TimeSpan.FromSeconds(20));
        while (true)
        {
            var r = Replica(volume);
            if (r.State == ReplicaState.InSync && r.BytesOutOfSync == 0 && r.PendingBytes == 0) return;
            if (DateTime.UtcNow > deadline)
                throw new TimeoutException($"{volume} not in sync: {r}; log: {string.Join(" | ", Log.Entries.TakeLast(15).Select(e => e.Message))}");
            await Task.Delay(20);
        }
    }

    public async ValueTask DisposeAsync()
    {
        await StopAsync();
        Identity.Dispose();
        _dir.Dispose();
    }
}
