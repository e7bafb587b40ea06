using System.Text.Json;
using Microsoft.Extensions.Logging;
using Roam.Control;
using Roam.Daemon.Jobs;
using Roam.Hypervisor.Qemu;
using Roam.Hypervisor.Qmp;
using Roam.Replication.Engine;
using QmpMigrationStatus = Roam.Hypervisor.Qmp.MigrationStatus;

namespace Roam.Daemon.Vms;

// VMs outlive roamd, the way libvirt's guests outlive libvirtd: QEMU runs in its own session with its output in a file
// (QemuProcessOptions.LogPath), roamd keeps in DATA_DIR/vms/NAME.run what it needs to find it again, and:
// - roamd stopping (SIGTERM, an upgrade, systemd) leaves every VM running: it only lets go of QMP. `roam vm stop` stops
//   a VM. While roamd is away the guest's disk requests wait (QEMU's NBD reconnect-delay, NbdReconnectDelaySeconds)
//   and go on when roamd serves DATA_DIR/nbd.sock again.
// - roamd starting takes over every VM whose QEMU still runs (same pid: QMP reconnected, supervision resumed), and
//   reports it running with a notice. A QEMU that died while roamd was away is reported (exit status unknown, its
//   last output kept) and, since NAME.run says the VM was meant to run, cold-started (the guest boots afresh),
//   unless its volume is a replica here (then it runs elsewhere, or must be started by hand).
// - A migration in flight dies with roamd. On start, a source QEMU still migrating is cancelled and resumed here if
//   this host still holds the primary; if the disk was already handed over, it is left paused and reported (it must
//   not write to a replica, and its memory may be the only copy of the guest). A destination QEMU still waiting for
//   its incoming migration is killed (the VM still runs at the source) and forgotten.
internal sealed partial class VmService
{
    /// <summary>
    /// QEMU's NBD reconnect-delay: how long the guest's disk requests wait for roamd to serve them again before they
    /// fail. A restart (systemd's, or an upgrade's) takes seconds; on this 2-core test machine under load, roamd starts
    /// in 1-5 s, and QEMU retries at 1, 2, 4, 8, 16 s after the loss, then every 16 s, so requests may wait ~16 s more
    /// than roamd's own absence. 300 s covers a slow upgrade or a few systemd restart attempts with margin, while a
    /// roamd that is gone for good still ends in I/O errors the guest can see (rather than a disk hung forever). A
    /// guest kernel waits that long without giving up (virtio-blk requests have no timeout; the hung-task watchdog
    /// only warns after 120 s).
    /// </summary>
    public const uint NbdReconnectDelaySeconds = 300;

    /// <summary>
    /// How long a surviving QEMU may take to answer QMP. Its main loop can be held up until its NBD client is back (a
    /// drain, e.g. a migration stopping the VM, waits for the disk requests in flight), and QEMU retries NBD only every
    /// 16 s after a long absence: so more than that.
    /// </summary>
    private static readonly TimeSpan AttachTimeout = TimeSpan.FromSeconds(30);

    private readonly Dictionary<string, VmRunRecord> _recordsAtStart = new(StringComparer.Ordinal);
    private bool _prepared;

    /// <summary>
    /// Before NBD listens: loads the VMs and marks the disks of those meant to be running as VM disks, so that their
    /// QEMU, reconnecting as soon as nbd.sock is back, gets the export a VM needs (ReplicationService.SetVmDisk).
    /// </summary>
    public void PrepareStart()
    {
        if (_prepared) return;
        _prepared = true;
        foreach (var definition in _definitions.LoadAll())
        {
            lock (_lock) _vms[definition.Name] = new VmRuntime(definition);
            if (_runRecords.Load(definition.Name) is { } record)
            {
                _recordsAtStart[definition.Name] = record;
                replication.SetVmDisk(definition.Volume, true);
            }
        }
    }

    /// <summary>Takes over the QEMUs that still run; the VMs whose QEMU died are cold-started in the background.</summary>
    private async Task AdoptAllAsync()
    {
        var adoptions = new List<Task<bool>>();
        var runtimes = new List<(VmRuntime Vm, VmRunRecord Record)>();
        foreach (var (name, record) in _recordsAtStart)
        {
            VmRuntime vm;
            lock (_lock) vm = _vms[name];
            runtimes.Add((vm, record));
            adoptions.Add(AdoptAsync(vm, record));
        }
        _recordsAtStart.Clear();
        var results = await Task.WhenAll(adoptions).ConfigureAwait(false);
        for (int i = 0; i < results.Length; i++)
            if (!results[i]) _ = ColdStartAsync(runtimes[i].Vm, runtimes[i].Record.Accelerator);
    }

    /// <summary>False if the VM's QEMU is gone and the VM should be started again.</summary>
    private async Task<bool> AdoptAsync(VmRuntime vm, VmRunRecord record)
    {
        var name = vm.Definition.Name;
        var volume = vm.Definition.Volume;
        // Pid 0: roamd died between starting QEMU and recording its pid; the QMP socket path on its command line names it.
        var identity = record.Pid > 0 ? new ProcessIdentity(record.Pid, record.StartTime, record.BootId)
            : ProcessIdentity.FindByArgument(record.QmpSocket).FirstOrDefault();
        QemuProcess qemu;
        try
        {
            if (identity is null)
                throw new QemuExitedException(new QemuExit(QemuExit.UnknownExitCode, QemuProcess.ReadTail(record.LogPath, 40)), "QEMU did not start");
            qemu = await QemuProcess.AttachAsync(identity, record.QmpSocket,
                new QemuProcessOptions { Logger = logger, LogPath = record.LogPath, StartTimeout = AttachTimeout }).ConfigureAwait(false);
        }
        catch (QemuExitedException ex) when (Recovery.IsCutArrival(record, volume))
        {
            Recovery.DropCutArrival(vm, identity?.Pid ?? record.Pid, ex.Exit);
            return true;
        }
        catch (QemuExitedException ex)
        {
            lock (_lock)
            {
                vm.State = VmStates.Crashed;
                vm.LastExit = ex.Exit;
                vm.Error = $"its QEMU (pid {(identity?.Pid ?? record.Pid)}) ended while roamd was not running (exit status unknown)";
            }
            Log.VmDiedWhileAway(logger, name, identity?.Pid ?? record.Pid, JobManager.OneLine(ex.Exit.StderrTail));
            return false;
        }
        catch (Exception ex) when (identity is not null && ex is TimeoutException or IOException or QmpException)
        {
            // It runs but does not answer: never kill a VM roamd cannot see into. The user decides.
            lock (_lock)
            {
                vm.State = VmStates.Unreachable;
                vm.Error = $"its QEMU (pid {identity.Pid}) still runs but its QMP socket {record.QmpSocket} does not answer ({JobManager.OneLine(ex.Message)}); " +
                           $"roamd leaves it alone: restart roamd to try again, or end it with kill {identity.Pid}";
            }
            Log.VmAdoptFailed(logger, name, identity.Pid, JobManager.OneLine(ex.Message));
            return true;
        }

        string notice;
        try
        {
            // Whatever a migration cut by the restart left: settled here, or the QEMU ended and the VM done with.
            if (await Recovery.SettleAsync(vm, record, qemu, identity.Pid).ConfigureAwait(false) is not { } settled) return true;
            notice = settled;
        }
        catch (Exception ex) when (ex is QmpException or IOException or TimeoutException)
        {
            notice = $"(could not query QEMU after taking it over: {JobManager.OneLine(ex.Message)})";
        }

        var adopted = $"taken over at {DateTimeOffset.Now:yyyy-MM-dd HH:mm:ss} after roamd restarted: QEMU pid {identity.Pid} (started {record.Started.ToLocalTime():yyyy-MM-dd HH:mm:ss}) kept running";
        lock (_lock)
        {
            vm.Qemu = qemu;
            vm.Accelerator = record.Accelerator;
            if (vm.State != VmStates.Paused)
            {
                vm.State = VmStates.Running;
                vm.Error = null;
            }
            vm.ExitExpected = false;
            vm.LastExit = null;
            vm.Notice = notice.Length == 0 ? adopted : $"{adopted}; {notice}";
        }
        Log.VmAdopted(logger, name, identity.Pid, notice.Length == 0 ? "" : $" ({notice})");
        // QEMU's serial chardev reconnects to this socket by itself (every second); the logs go on where they were.
        var console = new ConsoleRecorder(ConsoleRecorder.SocketPathFor(_definitions.Directory, name),
            _definitions.StampedSerialPathOf(name), append: true);
        _ = SuperviseAsync(vm, qemu, console);
        // Its tap outlived roamd with QEMU; what the default network runs beside it (dnsmasq, NAT) is put back if it went.
        if (vm.Definition.Nic is { Bridge: null })
        {
            try { await _networks.Default.EnsureAsync(CancellationToken.None).ConfigureAwait(false); }
            catch (Network.NetworkException ex) { Log.VmMigrationSafety(logger, name, $"its network could not be checked after the restart: {ex.Message}"); }
        }
        return true;
    }

    /// <summary>A VM meant to be running whose QEMU died while roamd was away: boots it again, and says so.</summary>
    private async Task ColdStartAsync(VmRuntime vm, string? accelerator)
    {
        var name = vm.Definition.Name;
        await vm.Gate.WaitAsync().ConfigureAwait(false);
        try
        {
            if (vm.Qemu is not null) return;
            var died = vm.Error ?? "its QEMU ended while roamd was not running";
            var tail = vm.LastExit?.StderrTail ?? "";
            // Keep the dead QEMU's output: the new one truncates the log.
            var log = _runRecords.LogPathOf(name);
            try { if (File.Exists(log)) File.Move(log, log + ".1", overwrite: true); }
            catch (IOException) { }
            if (replication.GetStatus(vm.Definition.Volume).Role == VolumeRole.Replica)
            {
                _runRecords.Delete(name);
                lock (_lock) vm.Error = $"{died}; not started again: volume '{vm.Definition.Volume}' is a replica here";
                return;
            }
            Log.VmColdStarting(logger, name, died);
            try
            {
                // The accelerator that ran this VM here before is proven: no probe (a KVM probe can take its full timeout).
                var chosen = accelerator switch
                {
                    "kvm" => Accelerator.Kvm,
                    "tcg" => Accelerator.Tcg,
                    _ => await ChooseAcceleratorAsync(vm.Definition, CancellationToken.None).ConfigureAwait(false),
                };
                await LaunchAsync(vm, chosen, incoming: false, CancellationToken.None).ConfigureAwait(false);
                lock (_lock)
                    vm.Notice = $"cold-started at {DateTimeOffset.Now:yyyy-MM-dd HH:mm:ss} because {died}; the guest booted afresh (what was only in " +
                                $"its memory is lost)" + (tail.Length > 0 ? $"; the old QEMU's last output is in {log}.1" : "");
            }
            catch (Exception ex) when (ex is not OutOfMemoryException)
            {
                _runRecords.Delete(name);
                lock (_lock)
                {
                    vm.State = VmStates.Crashed;
                    vm.Error = $"{died}; starting it again failed: {JobManager.OneLine(ex.Message)}";
                }
                Log.VmColdStartFailed(logger, name, JobManager.OneLine(ex.Message));
            }
        }
        finally { vm.Gate.Release(); }
    }

    /// <summary>roamd is stopping: every VM goes on without it (see the top of this file).</summary>
    private async Task LeaveRunningAsync(VmRuntime vm)
    {
        await vm.Gate.WaitAsync().ConfigureAwait(false);
        try
        {
            if (vm.Qemu is not { } qemu || qemu.HasExited) return;
            await qemu.DetachAsync().ConfigureAwait(false);
            Log.VmLeftRunning(logger, vm.Definition.Name, qemu.Pid);
        }
        finally { vm.Gate.Release(); }
    }

    /// <summary>Refuses to start a second QEMU on a VM's disk while one that roamd lost track of still runs.</summary>
    private void EnsureNoStrayQemu(VmRuntime vm)
    {
        if (ProcessIdentity.FindByArgument(_runRecords.QmpSocketOf(vm.Definition.Name)).FirstOrDefault() is { } stray)
            throw new VmException(VmError.WrongState,
                $"a QEMU for VM '{vm.Definition.Name}' still runs (pid {stray.Pid}) though roamd does not supervise it; end it first (kill {stray.Pid})");
    }
}

/// <summary>
/// What roamd needs to find a VM's QEMU again after a restart; present exactly while the VM is meant to be running
/// here (written before QEMU starts, with pid 0 until it is known; removed when the VM stops, crashes while watched,
/// or leaves). Start time and boot id make a reused pid harmless.
/// </summary>
internal sealed record VmRunRecord(int Pid, ulong StartTime, string BootId, string QmpSocket, string LogPath, string? Accelerator, bool Incoming,
    DateTimeOffset Started);

/// <summary>DATA_DIR/vms/NAME.run, written crash-safely (temp file, fsync, rename, fsync of the directory).</summary>
internal sealed class VmRunRecordStore(string dataDir)
{
    public string Directory { get; } = Path.Combine(dataDir, "vms");

    public string PathOf(string name) => Path.Combine(Directory, name + ".run"); // not *.json: those are definitions

    public string LogPathOf(string name) => Path.Combine(Directory, name + ".qemu.log");

    /// <summary>The VM's QMP socket (see <see cref="VmSocketPaths"/>).</summary>
    public string QmpSocketOf(string name) => VmSocketPaths.For(Directory, name + ".qmp");

    /// <summary>The socket the VM's memory stream passes through while it migrates, here as source or destination.</summary>
    public string MigrationSocketOf(string name) => VmSocketPaths.For(Directory, name + ".migration.sock");

    public VmRunRecord? Load(string name)
    {
        try { return JsonSerializer.Deserialize(File.ReadAllBytes(PathOf(name)), VmRunJsonContext.Default.VmRunRecord); }
        catch (Exception ex) when (ex is IOException or JsonException or UnauthorizedAccessException) { return null; }
    }

    public void Save(string name, VmRunRecord record)
    {
        System.IO.Directory.CreateDirectory(Directory);
        var path = PathOf(name);
        var temp = path + ".tmp";
        using (var file = new FileStream(temp, FileMode.Create, FileAccess.Write, FileShare.None))
        {
            JsonSerializer.Serialize(file, record, VmRunJsonContext.Default.VmRunRecord);
            file.Flush(flushToDisk: true);
        }
        File.Move(temp, path, overwrite: true);
        SyncDirectory();
    }

    public void Delete(string name)
    {
        try
        {
            if (!File.Exists(PathOf(name))) return;
            File.Delete(PathOf(name));
            SyncDirectory();
        }
        catch (IOException) { }
    }

    private void SyncDirectory()
    {
        try
        {
            using var handle = File.OpenHandle(Directory, FileMode.Open, FileAccess.Read);
            RandomAccess.FlushToDisk(handle);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException) { }
    }
}

[System.Text.Json.Serialization.JsonSourceGenerationOptions(JsonSerializerDefaults.Web)]
[System.Text.Json.Serialization.JsonSerializable(typeof(VmRunRecord))]
internal sealed partial class VmRunJsonContext : System.Text.Json.Serialization.JsonSerializerContext;
