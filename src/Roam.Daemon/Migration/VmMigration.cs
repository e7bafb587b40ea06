using System.Diagnostics;
using System.Net.Sockets;
using Roam.Control;
using Roam.Daemon.Jobs;
using Roam.Daemon.Vms;
using Roam.Hypervisor.Qemu;
using Roam.Hypervisor.Qmp;
using Roam.Peers.Tunnel;
using Roam.Replication.Engine;

namespace Roam.Daemon.Migration;

/// <summary>
/// One VM migration at its source, in one place: what was asked (VM, destination, bandwidth, downtime limit, boot
/// files), where it stands (<see cref="Phase"/>, and the API's view of it, <see cref="VmRuntime.Migration"/>), and
/// what it holds while it runs (tunnel, unix socket, relay, QEMU's events) for the phases and the roll-back to share.
/// </summary>
internal sealed class VmMigration
{
    private readonly Lock _vmLock;
    private volatile VmMigrationPhase _phase = VmMigrationPhase.Preparing;
    private VmMigrationView _view;

    /// <param name="vmLock">The lock that guards the VMs' runtime state (VmService's): the view is published under it.</param>
    public VmMigration(VmRuntime vm, string peer, MigrationBandwidth bandwidth, long? downtimeLimitMs, IReadOnlyList<BootFileOffer> bootFiles, Job job,
        long diskTotal, string socketPath, Lock vmLock)
    {
        SocketPath = socketPath;
        Vm = vm;
        Peer = peer;
        Bandwidth = bandwidth;
        Downtime = new DowntimeLimit(downtimeLimitMs);
        BootFiles = bootFiles;
        Job = job;
        DiskTotal = diskTotal;
        _vmLock = vmLock;
        _view = new VmMigrationView(peer, _phase.ToWire(), diskTotal, 0, 0, 0, 0, 0, 0, 0, null, null, null, null, 0, null);
    }

    public VmRuntime Vm { get; }
    public string Name => Vm.Definition.Name;
    public string Volume => Vm.Definition.Volume;
    public string Peer { get; }
    public MigrationBandwidth Bandwidth { get; }
    public DowntimeLimit Downtime { get; }
    public IReadOnlyList<BootFileOffer> BootFiles { get; }
    public Job Job { get; }

    /// <summary>The volume's size, as the migration started.</summary>
    public long DiskTotal { get; }

    /// <summary>Since the migration got the VM's gate.</summary>
    public Stopwatch Clock { get; } = Stopwatch.StartNew();

    /// <summary>Where it stands; a volatile read, so the relay's thread sees a hand-over as soon as it starts.</summary>
    public VmMigrationPhase Phase => _phase;

    /// <summary>The API's view of the migration, as last published.</summary>
    public VmMigrationView View
    {
        get { lock (_vmLock) return _view; }
    }

    /// <summary>The unix socket QEMU migrates to, served only by this roamd (DATA_DIR/vms/NAME.migration.sock).</summary>
    public string SocketPath { get; }

    /// <summary>The source QEMU, running the VM when the migration began.</summary>
    public QemuProcess? Qemu { get; set; }

    public TunnelConnection? Tunnel { get; set; }
    public Socket? Listener { get; set; }

    /// <summary>Whether the destination agreed to take the memory stream compressed.</summary>
    public bool Compressed { get; set; }

    /// <summary>The relay from QEMU's socket into the tunnel: what it sent, received, and how the tunnel failed if it did.</summary>
    public Task<(long Sent, long Received, Exception? TunnelFailure)>? Relay { get; set; }

    /// <summary>The memory stream's bytes as the relay put them on the link.</summary>
    public TunnelMeter Meter { get; } = new();

    /// <summary>The disk copy as it stood once in sync.</summary>
    public Roam.Replication.Engine.MigrationStatus? SyncedDisk { get; set; }

    /// <summary>The timeline of the pause, from QEMU's pre-switchover event on (logged at the end).</summary>
    public Stopwatch? Switchover { get; set; }

    /// <summary>QEMU's migration reaching a final status, watched from the hand-over on.</summary>
    public Task<QmpEvent>? Finished { get; set; }

    /// <summary>When, in the switch-over's timeline, the disk was handed over and QEMU told to go on.</summary>
    public double HandedOverMs { get; set; }
    public double ContinuedMs { get; set; }

    /// <summary>What the replication layer said of the hand-over, if it said it.</summary>
    public HandOverResult? HandOver { get; set; }

    /// <summary>Keeps the guest paused from the hand-over on (see VmMigrationSource.KeepPausedAsync) until cancelled.</summary>
    public CancellationTokenSource Guard { get; } = new();
    public Task? Guarding { get; set; }

    /// <summary>QEMU's migrate-continue, sent once the destination is primary.</summary>
    public Task? Continuing { get; set; }

    /// <summary>QEMU's account of the finished migration (totals, downtime).</summary>
    public MigrationInfo? Done { get; set; }

    /// <summary>The memory stream's bytes through the tunnel, and how the tunnel broke if it did, once the relay ended.</summary>
    public long TunnelBytes { get; set; }
    public Exception? StreamBroken { get; set; }

    /// <summary>
    /// Moves to <paramref name="phase"/> (forward only, see <see cref="VmMigrationPhaseRules.CanMoveTo"/>) and publishes the
    /// view with its API name, changed by <paramref name="update"/> too if given. The same API name, already published,
    /// without an update publishes nothing: the hand-over's confirmation moves on without taking the lock (it is inside
    /// the guest's pause).
    /// </summary>
    public void MoveTo(VmMigrationPhase phase, Func<VmMigrationView, VmMigrationView>? update = null)
    {
        var from = _phase;
        if (!from.CanMoveTo(phase)) throw new InvalidOperationException($"a VM migration does not go from {from} to {phase}");
        _phase = phase;
        string wire = phase.ToWire();
        if (update is null && Volatile.Read(ref _view) is var published && published.Phase == wire && ReferenceEquals(Vm.Migration, published)) return;
        lock (_vmLock)
        {
            var view = _view with { Phase = wire };
            Vm.Migration = _view = update is null ? view : update(view);
        }
    }

    /// <summary>Publishes the view changed by <paramref name="update"/>, in the same phase.</summary>
    public void Report(Func<VmMigrationView, VmMigrationView> update)
    {
        lock (_vmLock) Vm.Migration = _view = update(_view);
    }

    /// <summary>How a migration's error names a corrupt memory stream (the destination's, reported back as its reason).</summary>
    public static string CorruptionText(TunnelCorruptException corrupt, string peer) =>
        $"memory stream corrupt at chunk {corrupt.Chunk} ({corrupt.ReasonText}{(corrupt.FoundByPeer ? $", found by {peer}" : "")})";
}
