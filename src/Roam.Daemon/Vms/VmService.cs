using Microsoft.Extensions.Logging;
using Roam.Control;
using Roam.Daemon.Hosting;
using Roam.Daemon.Jobs;
using Roam.Daemon.Migration;
using Roam.Hypervisor.Qemu;
using Roam.Replication.Engine;
using Roam.Peers.Trust;
using Roam.Storage.Volumes;

using Roam.Daemon.Network;

namespace Roam.Daemon.Vms;

/// <summary>One VM here: its definition and, while it runs, its supervised QEMU.</summary>
internal sealed class VmRuntime(VmDefinition definition)
{
    public VmDefinition Definition { get; set; } = definition;
    public SemaphoreSlim Gate { get; } = new(1, 1);
    public QemuProcess? Qemu { get; set; }
    public string State { get; set; } = VmStates.Stopped;
    public string? Accelerator { get; set; }
    public QemuExit? LastExit { get; set; }
    public string? Error { get; set; }

    /// <summary>Set before roamd ends QEMU on purpose (stop, kill, migrated away): its exit is then no crash.</summary>
    public bool ExitExpected { get; set; }

    public VmMigrationView? Migration { get; set; }

    /// <summary>What roamd did to this VM on its own, e.g. took it over or cold-started it after a restart.</summary>
    public string? Notice { get; set; }
}

/// <summary>
/// roamd's VMs: definitions in DATA_DIR/vms, one supervised QEMU per running VM with its disk on this roamd's own NBD
/// socket and its serial console in DATA_DIR/vms/NAME.serial. A QEMU that dies unasked makes the VM "crashed" (exit
/// code and stderr tail kept). VMs outlive roamd: on shutdown they are left running, and taken over again on start
/// (VmService.Restart.cs).
/// </summary>
internal sealed partial class VmService(
    RoamdOptions options,
    VolumeStore store,
    ReplicationService replication,
    TrustStore trust,
    JobManager jobs,
    VmNetworks networks,
    ILogger<VmService> logger) : IHostedService
{
    public static readonly TimeSpan ShutdownPowerdownTimeout = TimeSpan.FromSeconds(5);
    public const string AcceleratorEnvironmentVariable = "ROAM_VM_ACCELERATOR";

    private readonly Dictionary<string, VmRuntime> _vms = new(StringComparer.Ordinal);
    private readonly Lock _lock = new();
    private readonly VmDefinitionStore _definitions = new(options.DataDir);
    private readonly VmRunRecordStore _runRecords = new(options.DataDir);
    private readonly BootFiles _bootFiles = new(options.DataDir);
    private readonly VmNetworks _networks = networks;
    private readonly VmPeerChannel _peers = new(replication);
    private VmMigrationDestination? _destination;
    private VmMigrationRecovery? _recovery;

    /// <summary>The destination side of migrations to this host (see Migration/VmMigrationDestination.cs).</summary>
    private VmMigrationDestination Destination =>
        LazyInitializer.EnsureInitialized(ref _destination, () => new VmMigrationDestination(options, store, replication, _bootFiles, this, logger));

    /// <summary>What a roamd restart does about migrations it cut (see Migration/VmMigrationRecovery.cs).</summary>
    private VmMigrationRecovery Recovery => LazyInitializer.EnsureInitialized(ref _recovery, () => new VmMigrationRecovery(this, replication, logger));

    public async Task StartAsync(CancellationToken cancellationToken)
    {
        PrepareStart();
        replication.TunnelHandler = Destination.HandleTunnelAsync;
        await AdoptAllAsync().ConfigureAwait(false);
    }

    public async Task StopAsync(CancellationToken cancellationToken)
    {
        replication.TunnelHandler = null;
        foreach (var job in jobs.List().Where(j => j.Kind == VmJobKinds.Migrate && !j.IsFinished)) job.Cancellation.Cancel();
        await Task.WhenAll(jobs.List().Where(j => j.Kind == VmJobKinds.Migrate).Select(j => j.Completion))
            .WaitAsync(TimeSpan.FromSeconds(30), CancellationToken.None).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
        VmRuntime[] all;
        lock (_lock) all = [.. _vms.Values];
        await Task.WhenAll(all.Where(v => v.Qemu is not null).Select(LeaveRunningAsync)).ConfigureAwait(false);
    }

    public IReadOnlyList<VmView> List()
    {
        VmRuntime[] all;
        lock (_lock) all = [.. _vms.Values.OrderBy(v => v.Definition.Name, StringComparer.Ordinal)];
        return [.. all.Select(View)];
    }

    public VmRuntime Get(string name)
    {
        lock (_lock)
            return _vms.TryGetValue(name, out var vm) ? vm : throw new VmException(VmError.NotFound, $"no VM is named '{name}' here (see: roam vm list)");
    }

    public VmView View(VmRuntime vm)
    {
        var d = vm.Definition;
        var qemu = vm.Qemu;
        return new VmView(d.Name, d.Volume, vm.State, d.MemoryMiB, d.Cpus, d.Kernel, d.Initrd, d.Append, _definitions.SerialPathOf(d.Name),
            qemu is { HasExited: false } ? qemu.Pid : null, vm.Accelerator,
            vm.State == VmStates.Running ? null : vm.LastExit?.ExitCode,
            vm.State == VmStates.Crashed ? vm.LastExit?.StderrTail : null,
            vm.Error, vm.Migration, vm.Notice)
        {
            StampedSerialPath = _definitions.StampedSerialPathOf(d.Name),
            Network = d.Nic?.Network,
            Mac = d.Nic?.Mac,
            Tap = d.Nic is not null && qemu is { HasExited: false } ? _networks.TapOf(d.Name) : null,
        };
    }

    public VmView Create(CreateVmRequest request)
    {
        var name = request.Name ?? "";
        if (!VolumeName.IsValid(name)) throw new VmException(VmError.InvalidRequest, $"'{name}' is not a valid VM name (letters, digits, '.', '_', '-'; at most 64)");
        var volume = request.Volume;
        if (string.IsNullOrEmpty(volume)) throw new VmException(VmError.InvalidRequest, "a volume is required: the VM's disk (see: roam volume list)");
        store.Get(volume); // 404 for a missing volume
        long memory = request.Memory is null ? 256L << 20 : ByteSize.TryParse(request.Memory, out var m) ? m
            : throw new VmException(VmError.InvalidRequest, $"'{request.Memory}' is not a memory size (like 256M or 1G)");
        if (memory < 16L << 20 || memory % (1 << 20) != 0) throw new VmException(VmError.InvalidRequest, "memory must be a whole number of MiB, at least 16M");
        int cpus = request.Cpus ?? 1;
        if (cpus is < 1 or > 64) throw new VmException(VmError.InvalidRequest, $"cpus must be between 1 and 64, not {cpus}");
        string? kernel = request.Kernel is null ? null : Path.GetFullPath(request.Kernel);
        string? initrd = request.Initrd is null ? null : Path.GetFullPath(request.Initrd);
        if (kernel is null && (initrd is not null || request.Append is not null))
            throw new VmException(VmError.InvalidRequest, "--initrd and --append need --kernel");
        foreach (var file in new[] { kernel, initrd })
            if (file is not null && !File.Exists(file)) throw new VmException(VmError.InvalidRequest, $"{file} does not exist");
        var nic = VmNic.From(request.Network, request.Mac, options.VmNetwork);
        if (nic is not null) _networks.Check(nic);
        var definition = new VmDefinition(name, volume, (int)(memory >> 20), cpus, kernel, initrd, request.Append, DateTimeOffset.UtcNow, nic);
        VmRuntime vm;
        lock (_lock)
        {
            if (_vms.ContainsKey(name)) throw new VmException(VmError.AlreadyExists, $"a VM named '{name}' already exists");
            if (_vms.Values.FirstOrDefault(v => v.Definition.Volume == volume) is { } other)
                throw new VmException(VmError.AlreadyExists, $"volume '{volume}' is already the disk of VM '{other.Definition.Name}'");
            _definitions.Save(definition);
            _vms[name] = vm = new VmRuntime(definition);
        }
        Log.VmCreated(logger, name, volume, definition.MemoryMiB, cpus);
        return View(vm);
    }

    public async Task DeleteAsync(string name)
    {
        var vm = Get(name);
        await vm.Gate.WaitAsync().ConfigureAwait(false);
        try
        {
            if (vm.Qemu is not null) throw new VmException(VmError.WrongState, $"VM '{name}' is {vm.State}; stop it first (roam vm stop {name})");
            Forget(vm);
        }
        finally { vm.Gate.Release(); }
    }

    private void Forget(VmRuntime vm)
    {
        lock (_lock)
        {
            if (_vms.TryGetValue(vm.Definition.Name, out var current) && ReferenceEquals(current, vm)) _vms.Remove(vm.Definition.Name);
            _runRecords.Delete(vm.Definition.Name);
            try { _definitions.Delete(vm.Definition.Name); }
            catch (IOException) { }
        }
    }

    public async Task<VmView> StartAsync(string name, CancellationToken cancellationToken)
    {
        var vm = Get(name);
        await vm.Gate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            if (vm.Qemu is not null) throw new VmException(VmError.WrongState, $"VM '{name}' is already {vm.State}");
            var role = replication.GetStatus(vm.Definition.Volume);
            if (role.Role == VolumeRole.Replica)
                throw new VmException(VmError.WrongState,
                    $"volume '{vm.Definition.Volume}' is a replica here (its primary is {role.PrimaryPeer ?? "elsewhere"}); the VM runs where the primary is");
            var accelerator = await ChooseAcceleratorAsync(vm.Definition, cancellationToken).ConfigureAwait(false);
            await LaunchAsync(vm, accelerator, incoming: false, cancellationToken).ConfigureAwait(false);
            return View(vm);
        }
        finally { vm.Gate.Release(); }
    }

    private QemuCommandLine CommandLine(VmDefinition d, Accelerator accelerator, bool incoming)
    {
        var line = new QemuCommandLine { Machine = "q35", Accelerator = accelerator, MemoryMiB = d.MemoryMiB, Cpus = d.Cpus, Name = d.Name }
            .WithSerialSocket(ConsoleRecorder.SocketPathFor(_definitions.Directory, d.Name), _definitions.SerialPathOf(d.Name))
            .WithQmpSocket(_runRecords.QmpSocketOf(d.Name))
            // DATA_DIR/nbd.sock is the same path for every roamd on this data dir: QEMU reconnects to the next one.
            .WithNbdDisk(options.NbdSocket, d.Volume, reconnectDelaySeconds: NbdReconnectDelaySeconds)
            .WithArguments("-no-reboot"); // a guest that reboots or panics ends its QEMU: roamd reports it
        if (d.Kernel is not null) line.WithKernel(d.Kernel, d.Initrd, d.Append);
        // An arriving VM stays paused once loaded (-S: no autostart): roamd resumes it only as the volume's primary
        // (Migration/VmMigrationDestination), so a stream that ends early or a source that kept the disk never yields a second runner.
        if (incoming) line.WithIncomingDefer().WithArguments("-S");
        return line;
    }

    /// <summary>Starts QEMU for <paramref name="vm"/> (its gate held) and supervises it.</summary>
    private async Task<QemuProcess> LaunchAsync(VmRuntime vm, Accelerator accelerator, bool incoming, CancellationToken cancellationToken)
    {
        var name = vm.Definition.Name;
        EnsureNoStrayQemu(vm);
        var line = CommandLine(vm.Definition, accelerator, incoming);
        // The tap first: QEMU opens it by name as it starts.
        if (vm.Definition.Nic is { } nic) line.WithTapNic(await _networks.AttachAsync(name, nic, cancellationToken).ConfigureAwait(false), nic.Mac);
        var acceleratorName = accelerator.ToString().ToLowerInvariant();
        var started = DateTimeOffset.UtcNow;
        var logPath = _runRecords.LogPathOf(name);
        QemuProcess qemu;
        // See ReplicationService.SetVmDisk: the VM's one NBD connection follows the volume's role (replicated for a
        // migration, promoted on arrival).
        replication.SetVmDisk(vm.Definition.Volume, true);
        // roamd reads the console (host-time stamps per line): listening before QEMU starts, so nothing is lost.
        var console = new ConsoleRecorder(ConsoleRecorder.SocketPathFor(_definitions.Directory, vm.Definition.Name),
            _definitions.StampedSerialPathOf(vm.Definition.Name));
        try
        {
            // Recorded before QEMU starts (pid 0: not known yet), so a roamd that dies right after starting it still
            // finds it, by its QMP socket path, on its next start.
            _runRecords.Save(name, new VmRunRecord(0, 0, "", line.QmpSocketPath!, logPath, acceleratorName, incoming, started));
            qemu = await QemuProcess.StartAsync(line, new QemuProcessOptions { Logger = logger, LogPath = logPath }, cancellationToken).ConfigureAwait(false);
            var id = qemu.Identity;
            _runRecords.Save(name, new VmRunRecord(id.Pid, id.StartTime, id.BootId, qemu.QmpSocketPath, logPath, acceleratorName, incoming, started));
        }
        catch (Exception ex) when (ex is not QemuExitedException)
        {
            _runRecords.Delete(name);
            replication.SetVmDisk(vm.Definition.Volume, false);
            await console.DisposeAsync().ConfigureAwait(false);
            await DetachNetworkAsync(vm.Definition).ConfigureAwait(false);
            throw;
        }
        catch (QemuExitedException ex)
        {
            _runRecords.Delete(name);
            replication.SetVmDisk(vm.Definition.Volume, false);
            await console.DisposeAsync().ConfigureAwait(false);
            await DetachNetworkAsync(vm.Definition).ConfigureAwait(false);
            vm.LastExit = ex.Exit;
            vm.State = VmStates.Crashed;
            vm.Error = JobManager.OneLine(ex.Message);
            Log.VmCrashed(logger, vm.Definition.Name, ex.Exit.ExitCode, JobManager.OneLine(ex.Exit.StderrTail));
            throw new VmException(VmError.QemuFailed, $"QEMU for VM '{vm.Definition.Name}' failed to start: {vm.Error}");
        }
        vm.Qemu = qemu;
        vm.Accelerator = acceleratorName;
        vm.State = incoming ? VmStates.Incoming : VmStates.Running;
        vm.ExitExpected = false;
        vm.Error = null;
        vm.LastExit = null;
        vm.Notice = null;
        Log.VmStarted(logger, vm.Definition.Name, qemu.Pid, vm.Accelerator, incoming ? " (incoming migration)" : "");
        _ = SuperviseAsync(vm, qemu, console);
        return qemu;
    }

    private async Task SuperviseAsync(VmRuntime vm, QemuProcess qemu, ConsoleRecorder console)
    {
        var exit = await qemu.Exited.ConfigureAwait(false);
        await console.DisposeAsync().ConfigureAwait(false);
        lock (_lock)
        {
            if (!ReferenceEquals(vm.Qemu, qemu)) return; // left running by a roamd that stops, or replaced
            vm.Qemu = null;
            // Seen ending while roamd watched: stopped or crashed, it is not to be started again by a roamd restart.
            _runRecords.Delete(vm.Definition.Name);
            replication.SetVmDisk(vm.Definition.Volume, false);
            vm.LastExit = exit;
            if (vm.ExitExpected || vm.State == VmStates.Migrating && vm.Migration?.Phase == VmMigrationPhases.Completed) vm.State = VmStates.Stopped;
            else
            {
                vm.State = VmStates.Crashed;
                vm.Error = exit.ExitCodeKnown ? $"QEMU exited unexpectedly with code {exit.ExitCode}" : $"QEMU (pid {qemu.Pid}) exited unexpectedly";
                Log.VmCrashed(logger, vm.Definition.Name, exit.ExitCode, JobManager.OneLine(exit.StderrTail));
            }
        }
        await qemu.DisposeAsync().ConfigureAwait(false);
        // QEMU has ended here (stopped, crashed, or gone to another host): its tap goes, and the default network with the last one.
        await DetachNetworkAsync(vm.Definition).ConfigureAwait(false);
    }

    private Task DetachNetworkAsync(VmDefinition definition) =>
        definition.Nic is { } nic ? _networks.DetachAsync(definition.Name, nic) : Task.CompletedTask;

    public async Task<VmView> StopAsync(string name, TimeSpan timeout, bool kill)
    {
        var vm = Get(name);
        await vm.Gate.WaitAsync().ConfigureAwait(false);
        try
        {
            if (vm.Qemu is null) throw new VmException(VmError.WrongState, $"VM '{name}' is not running ({vm.State})");
            if (kill) await KillAsync(vm).ConfigureAwait(false);
            else await StopAsync(vm, timeout).ConfigureAwait(false);
            return View(vm);
        }
        finally { vm.Gate.Release(); }
    }

    private async Task KillAsync(VmRuntime vm)
    {
        if (vm.Qemu is not { } qemu) return;
        vm.ExitExpected = true;
        var exit = await qemu.KillAsync().ConfigureAwait(false);
        await WaitSupervisedAsync(vm, qemu).ConfigureAwait(false);
        Log.VmStopped(logger, vm.Definition.Name, "killed", exit.ExitCode);
    }

    /// <summary>ACPI power-down; SIGKILL if the guest has not powered off within <paramref name="timeout"/>.</summary>
    private async Task StopAsync(VmRuntime vm, TimeSpan timeout)
    {
        if (vm.Qemu is not { } qemu) return;
        vm.ExitExpected = true;
        string how = "powered off";
        try
        {
            using var cts = new CancellationTokenSource(timeout);
            await qemu.Qmp.SystemPowerdownAsync(cts.Token).ConfigureAwait(false);
            await qemu.Exited.WaitAsync(cts.Token).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is OperationCanceledException or TimeoutException or IOException or Roam.Hypervisor.Qmp.QmpException)
        {
            how = $"killed (no power-off within {timeout.TotalSeconds:0.#} s)";
            await qemu.KillAsync().ConfigureAwait(false);
        }
        var exit = await qemu.Exited.ConfigureAwait(false);
        await WaitSupervisedAsync(vm, qemu).ConfigureAwait(false);
        Log.VmStopped(logger, vm.Definition.Name, how, exit.ExitCode);
    }

    private static async Task WaitSupervisedAsync(VmRuntime vm, QemuProcess qemu)
    {
        for (int i = 0; i < 200 && ReferenceEquals(vm.Qemu, qemu); i++) await Task.Delay(10).ConfigureAwait(false);
    }

    /// <summary>
    /// KVM only where it is proven to boot this VM's kernel (AcceleratorProbe: a bounded test boot, cached per kernel);
    /// else TCG. ROAM_VM_ACCELERATOR=kvm|tcg in roamd's environment skips the probe.
    /// </summary>
    private async Task<Accelerator> ChooseAcceleratorAsync(VmDefinition d, CancellationToken cancellationToken)
    {
        switch (Environment.GetEnvironmentVariable(AcceleratorEnvironmentVariable)?.ToLowerInvariant())
        {
            case "tcg": return Accelerator.Tcg;
            case "kvm": return Accelerator.Kvm;
        }
        var result = await AcceleratorProbe.ProbeAsync(new AcceleratorProbeOptions
        {
            KernelPath = d.Kernel,
            InitrdPath = d.Initrd,
            // The kernel's last boot line before userspace: the guest got that far under KVM.
            Marker = d.Kernel is null ? null : "Run /init",
            Logger = logger,
        }, cancellationToken).ConfigureAwait(false);
        return result.Accelerator;
    }
}

internal static class VmJobKinds
{
    public const string Migrate = "vm-migrate";
}
