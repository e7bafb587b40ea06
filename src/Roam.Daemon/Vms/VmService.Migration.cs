using Roam.Control;
using Roam.Daemon.Jobs;
using Roam.Daemon.Migration;
using Roam.Daemon.Network;
using Roam.Hypervisor.Qemu;
using Roam.Hypervisor.Qmp;
using Roam.Peers.Tunnel;
using Roam.Replication.Engine;

namespace Roam.Daemon.Vms;

// VM migration's entry points here; the migration itself is in Migration/ (VmMigrationSource, VmMigrationDestination,
// VmMigrationRecovery), which reach the VMs through IVmHost.
internal sealed partial class VmService : IVmHost
{
    private readonly Dictionary<string, VmMigrationView> _departed = new(StringComparer.Ordinal);

    public VmMigrationView GetMigration(string name)
    {
        lock (_lock)
        {
            if (_vms.TryGetValue(name, out var vm) && vm.Migration is { } m) return m;
            if (_departed.TryGetValue(name, out var d)) return d;
        }
        throw new VmException(VmError.NoMigration, $"no migration of VM '{name}' is known here");
    }

    public async Task<Job> StartMigrationAsync(string name, string? to, MigrationBandwidth bandwidth, long? downtimeLimitMs, CancellationToken cancellationToken)
    {
        var vm = Get(name);
        var peer = to;
        if (string.IsNullOrWhiteSpace(peer)) throw new VmException(VmError.InvalidRequest, "a destination is required: --to HOST (see: roam host list)");
        if (trust.Find(peer) is null)
            throw new VmException(VmError.UnknownPeer, $"no trusted peer is named {peer}; add it first with: roam host add {peer} ADDR:PORT --fingerprint FP");
        if (downtimeLimitMs is < 1 or > 600_000) throw new VmException(VmError.InvalidRequest, "the downtime limit must be between 1 and 600000 ms");
        if (vm.State != VmStates.Running) throw new VmException(VmError.WrongState, $"VM '{name}' is {vm.State}, not running: start it, or move its volume with roam volume migrate");
        if (jobs.FindRunning(VmJobKinds.Migrate, name) is { } running)
            throw new VmException(VmError.AlreadyMigrating, $"VM '{name}' is already being migrated by job {running.Id}");
        var volume = vm.Definition.Volume;
        long size = store.Get(volume).Size;

        // Up front, through the authenticated peer channel: reachability and trust both ways (the tunnel's TLS), then
        // what the destination itself knows (name, volume, disk space, memory, kernel files).
        List<BootFileOffer> bootFiles;
        try { bootFiles = [.. BootFiles.Of(vm.Definition).Select(_bootFiles.Describe)]; }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            throw new VmException(VmError.DestinationRefused, $"VM '{name}' cannot be sent: {ex.Message}");
        }
        var reply = await _peers.AskAsync(peer, new VmTunnelRequest(VmTunnelOp.Prepare, vm.Definition, size, vm.Accelerator, BootFiles: bootFiles),
            cancellationToken).ConfigureAwait(false);
        if (!reply.Ok) throw new VmException(VmError.DestinationRefused, $"{peer} cannot take VM '{name}': {reply.Error}");

        return jobs.Start(VmJobKinds.Migrate, name, peer, "live", size, job => job.BeginMigration(peer),
            async (job, ct) =>
            {
                await MigrateAsync(vm, peer, bandwidth, downtimeLimitMs, bootFiles, size, job, ct).ConfigureAwait(false);
                return null;
            }, _ => Task.CompletedTask);
    }

    private async Task MigrateAsync(VmRuntime vm, string peer, MigrationBandwidth bandwidth, long? downtimeLimitMs, IReadOnlyList<BootFileOffer> bootFiles,
        long size, Job job, CancellationToken ct)
    {
        _ = JitWarmup.PrepareAsync(typeof(VmService), typeof(VmMigrationSource), typeof(VmMigration), typeof(QmpClient), typeof(TunnelRelay), typeof(TunnelChunkReader),
            typeof(TunnelChunkWriter));
        await vm.Gate.WaitAsync(ct).ConfigureAwait(false);
        VmMigrationSource source;
        try { source = new VmMigrationSource(new VmMigration(vm, peer, bandwidth, downtimeLimitMs, bootFiles, job, size, _runRecords.MigrationSocketOf(vm.Definition.Name), _lock), this, replication, _peers, logger); }
        catch
        {
            vm.Gate.Release();
            throw;
        }
        // From here on RunAsync owns the gate and releases it whatever happens.
        await source.RunAsync(ct).ConfigureAwait(false);
    }

    Lock IVmHost.Lock => _lock;

    VmRuntime? IVmHost.Find(string name) => _vms.GetValueOrDefault(name);

    VmRuntime? IVmHost.FindByVolume(string volume) => _vms.Values.FirstOrDefault(v => v.Definition.Volume == volume);

    void IVmHost.Add(VmRuntime vm) => _vms[vm.Definition.Name] = vm;

    void IVmHost.SaveDefinition(VmDefinition definition) => _definitions.Save(definition);

    Task<QemuProcess> IVmHost.LaunchAsync(VmRuntime vm, Accelerator accelerator, bool incoming, CancellationToken cancellationToken) =>
        LaunchAsync(vm, accelerator, incoming, cancellationToken);

    void IVmHost.Forget(VmRuntime vm) => Forget(vm);

    void IVmHost.Departed(VmRuntime vm, VmMigrationView final)
    {
        lock (_lock) _departed[vm.Definition.Name] = final;
        Forget(vm);
    }

    string IVmHost.MigrationSocketOf(string name) => _runRecords.MigrationSocketOf(name);

    void IVmHost.CheckNetwork(VmNic nic) => _networks.Check(nic);

    string IVmHost.NetworkHere(VmNic nic) => _networks.Where(nic);

    void IVmHost.DeleteRunRecord(string name) => _runRecords.Delete(name);
}
