using System.Diagnostics;
using System.Net.Sockets;
using Microsoft.Extensions.Logging;
using Roam.Control;
using Roam.Daemon.Jobs;
using Roam.Daemon.Hosting;
using Roam.Daemon.Vms;
using Roam.Hypervisor.Qemu;
using Roam.Hypervisor.Qmp;
using Roam.Replication.Engine;
using Roam.Peers.Tunnel;
using Roam.Storage.Volumes;
using QmpMigrationStatus = Roam.Hypervisor.Qmp.MigrationStatus;

namespace Roam.Daemon.Migration;

// Destination side: answers vm-prepare / vm-status, and for vm-incoming defines the VM, starts QEMU with -incoming
// on the replica's export and relays the memory stream from the tunnel into QEMU's migrate-incoming socket.
/// <summary>The destination side of VM migrations: the peer tunnel's VM requests (<see cref="VmTunnelOp"/>) and the arrivals they bring.</summary>
internal sealed class VmMigrationDestination(RoamdOptions options, VolumeStore store, ReplicationService replication, BootFiles bootFiles, IVmHost host,
    ILogger logger)
{
    private const long MemoryOverheadBytes = 64L << 20;
    private readonly Dictionary<string, VmArrival> _arrivals = new(StringComparer.Ordinal); // guarded by host.Lock

    public async Task HandleTunnelAsync(TunnelRequest tunnel)
    {
        var request = VmTunnelJson.TryParseRequest(tunnel.Json);
        if (request is null)
        {
            await ReplyAsync(tunnel, VmTunnelStatus.Refused, "not a VM request this roamd understands (is it another version?)").ConfigureAwait(false);
            return;
        }
        switch (request.Op)
        {
            case VmTunnelOp.Prepare:
                var refusal = CheckArrival(request, tunnel.Peer);
                var lacking = (request.BootFiles ?? []).Where(f => bootFiles.FindLocal(f) is null).Select(f => f.Sha256).ToList();
                await ReplyAsync(tunnel, refusal is null ? VmTunnelStatus.Ok : VmTunnelStatus.Refused, refusal, needBootFiles: lacking).ConfigureAwait(false);
                break;
            case VmTunnelOp.Status:
                VmArrival? arrival;
                lock (host.Lock)
                {
                    _arrivals.TryGetValue(request.Vm.Name, out arrival);
                    // No record of an arrival (this roamd restarted since): it runs here if a QEMU runs it, else it never will.
                    arrival ??= host.Find(request.Vm.Name) is { } here
                        ? new VmArrival(here.State == VmStates.Running ? VmTunnelStatus.Ok : VmTunnelStatus.Pending, null)
                        : new VmArrival(VmTunnelStatus.Failed, "this host has no VM of that name (its roamd restarted during the arrival)");
                }
                await ReplyAsync(tunnel, arrival.Status, arrival.Error).ConfigureAwait(false);
                break;
            case VmTunnelOp.Return:
                var returned = await ReturnVolumeAsync(request, tunnel.Peer).ConfigureAwait(false);
                await ReplyAsync(tunnel, returned is null ? VmTunnelStatus.Ok : VmTunnelStatus.Refused, returned).ConfigureAwait(false);
                break;
            case VmTunnelOp.Incoming:
                await IncomingAsync(request, tunnel).ConfigureAwait(false);
                break;
            case VmTunnelOp.BootFile:
                await ReceiveBootFileAsync(request, tunnel).ConfigureAwait(false);
                break;
            default:
                await ReplyAsync(tunnel, VmTunnelStatus.Refused, $"unknown request {request.Op}").ConfigureAwait(false);
                break;
        }
    }

    private async Task ReceiveBootFileAsync(VmTunnelRequest request, TunnelRequest tunnel)
    {
        if (request.BootFiles is not [var offer])
        {
            await ReplyAsync(tunnel, VmTunnelStatus.Refused, "a boot file request names exactly one file").ConfigureAwait(false);
            return;
        }
        if (bootFiles.FindLocal(offer) is not null)
        {
            await ReplyAsync(tunnel, VmTunnelStatus.Ok, null, needBootFiles: []).ConfigureAwait(false);
            return;
        }
        await ReplyAsync(tunnel, VmTunnelStatus.Ok, null, needBootFiles: [offer.Sha256]).ConfigureAwait(false);
        string? error = null;
        try
        {
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(tunnel.Stopping);
            timeout.CancelAfter(TimeSpan.FromMinutes(10));
            var kept = await bootFiles.ReceiveAsync(offer, tunnel.Transport.Input, timeout.Token).ConfigureAwait(false);
            Log.VmBootFileReceived(logger, request.Vm.Name, tunnel.Peer, offer.Path, offer.Size, kept);
        }
        catch (Exception ex) when (ex is IOException or InvalidDataException or OperationCanceledException or UnauthorizedAccessException)
        {
            error = $"receiving {offer.Path} failed: {ex.Message}";
        }
        await ReplyAsync(tunnel, error is null ? VmTunnelStatus.Ok : VmTunnelStatus.Failed, error).ConfigureAwait(false);
    }

    private static async Task ReplyAsync(TunnelRequest tunnel, VmTunnelStatus status, string? error, string? streamCompression = null, IReadOnlyList<string>? needBootFiles = null,
        string? streamChecksum = null)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(tunnel.Stopping);
        timeout.CancelAfter(TimeSpan.FromSeconds(10));
        var reply = new VmTunnelReply(status, status is VmTunnelStatus.Ok or VmTunnelStatus.Pending ? null : error, streamCompression, needBootFiles, streamChecksum);
        await tunnel.ReplyAsync(VmTunnelJson.Serialize(reply), timeout.Token).ConfigureAwait(false);
    }

    /// <summary>Why this host cannot take the VM, or null.</summary>
    private string? CheckArrival(VmTunnelRequest request, string peer)
    {
        var d = request.Vm;
        if (!Roam.Storage.Volumes.VolumeName.IsValid(d.Name) || !Roam.Storage.Volumes.VolumeName.IsValid(d.Volume)) return "invalid VM or volume name";
        if (d.Nic is { } nic)
        {
            // Its NIC joins the same kind of network here (this host's default network, or a bridge of that name).
            try { host.CheckNetwork(nic); }
            catch (Network.NetworkException ex) { return $"its network interface ({nic.Network}) cannot be given here: {ex.Message}"; }
        }
        lock (host.Lock)
        {
            if (host.Find(d.Name) is not null) return $"a VM named '{d.Name}' already exists on this host";
            if (host.FindByVolume(d.Volume) is { } other) return $"volume '{d.Volume}' is the disk of VM '{other.Definition.Name}' here";
        }
        if (store.TryGet(d.Volume, out _))
        {
            var status = replication.GetStatus(d.Volume);
            if (status.Role == VolumeRole.Primary) return $"volume '{d.Volume}' exists here and is not a replica of {peer}";
            if (status.PrimaryPeer is { } primary && primary != peer) return $"volume '{d.Volume}' here is a replica of {primary}, not of {peer}";
        }
        else
        {
            long free = new DriveInfo(Path.GetFullPath(options.DataDir)).AvailableFreeSpace;
            if (free < request.VolumeSize) return $"not enough disk space: volume '{d.Volume}' needs {request.VolumeSize} bytes, {free} are free";
        }
        long available = MemAvailable();
        long needed = ((long)d.MemoryMiB << 20) + MemoryOverheadBytes;
        if (available >= 0 && available < needed) return $"not enough memory: the VM needs {d.MemoryMiB} MiB (+64 MiB for QEMU), {available >> 20} MiB are available";
        if (request.BootFiles is null)
        {
            // An older source cannot send them: they must be here already.
            foreach (var file in BootFiles.Of(d))
                if (!File.Exists(file)) return $"{file} does not exist on this host";
        }
        else if (request.Op == VmTunnelOp.Incoming)
        {
            foreach (var file in request.BootFiles)
                if (bootFiles.FindLocal(file) is null) return $"this host lacks the VM's boot file {file.Path} ({file.Size} bytes, SHA-256 {file.Sha256})";
        }
        return null;
    }

    private static long MemAvailable()
    {
        try
        {
            foreach (var line in File.ReadLines("/proc/meminfo"))
                if (line.StartsWith("MemAvailable:", StringComparison.Ordinal))
                    return long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], System.Globalization.CultureInfo.InvariantCulture) * 1024;
        }
        catch (Exception ex) when (ex is IOException or FormatException or UnauthorizedAccessException) { }
        return -1;
    }

    private async Task IncomingAsync(VmTunnelRequest request, TunnelRequest tunnel)
    {
        // The hand-over and the resume come within seconds, inside the VM's pause: compile them now.
        _ = ReplicationService.WarmUpHandOver();
        _ = JitWarmup.PrepareAsync(typeof(VmMigrationDestination), typeof(VmService), typeof(QmpClient), typeof(TunnelRelay), typeof(TunnelChunkReader), typeof(TunnelChunkWriter));
        var d = request.Vm;
        var peer = tunnel.Peer;
        if (CheckArrival(request, peer) is { } refusal)
        {
            await ReplyAsync(tunnel, VmTunnelStatus.Refused, refusal).ConfigureAwait(false);
            return;
        }
        // Every chunk of the memory stream is verified before it reaches QEMU; a stream that cannot be is not taken.
        if (request.StreamChecksum != TunnelChunks.Checksum)
        {
            await ReplyAsync(tunnel, VmTunnelStatus.Refused, $"the memory stream from {peer} would carry {(request.StreamChecksum is { } c ? $"the checksum '{c}'" : "no checksum")}, " +
                $"and this host takes only streams checksummed with {TunnelChunks.Checksum} (is {peer}'s roamd another version?)").ConfigureAwait(false);
            return;
        }
        // The kernel and initrd as this host holds them (sent by the source when it lacked them).
        string? Local(string? path) => path is null ? null : request.BootFiles?.FirstOrDefault(f => f.Path == path) is { } offer ? bootFiles.FindLocal(offer) ?? path : path;
        d = d with { Kernel = Local(d.Kernel), Initrd = Local(d.Initrd) };
        if (!store.TryGet(d.Volume, out _))
        {
            await ReplyAsync(tunnel, VmTunnelStatus.Refused, $"volume '{d.Volume}' is not replicated here yet").ConfigureAwait(false);
            return;
        }
        var vm = new VmRuntime(d);
        lock (host.Lock)
        {
            host.Add(vm);
            _arrivals[d.Name] = new VmArrival(VmTunnelStatus.Pending, null);
        }
        bool replied = false;
        Task<(long Sent, long Received, Exception? TunnelFailure)>? relaying = null;
        string socketPath = host.MigrationSocketOf(d.Name);
        await vm.Gate.WaitAsync(tunnel.Stopping).ConfigureAwait(false);
        try
        {
            host.SaveDefinition(d);
            var accelerator = request.Accelerator == "kvm" ? Accelerator.Kvm : Accelerator.Tcg;
            var qemu = await host.LaunchAsync(vm, accelerator, incoming: true, tunnel.Stopping).ConfigureAwait(false);
            await qemu.Qmp.MigrateSetCapabilitiesAsync([new(MigrationCapability.Events, true)], tunnel.Stopping).ConfigureAwait(false);
            await qemu.Qmp.MigrateIncomingAsync("unix:" + socketPath, tunnel.Stopping).ConfigureAwait(false);
            using var local = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
            await local.ConnectAsync(new UnixDomainSocketEndPoint(socketPath), tunnel.Stopping).ConfigureAwait(false);
            using var loading = CancellationTokenSource.CreateLinkedTokenSource(tunnel.Stopping);
            var loaded = qemu.Qmp.WaitForEventAsync(QmpEvents.Migration, e => QmpMigrationStatus.IsFinal(e.GetString("status")), loading.Token);
            // The memory stream is compressed when the source offers it and this host does not refuse compression.
            bool compressed = request.StreamCompression == TunnelCompression.Lz4 && replication.Options.Compression != WireCompression.Off;
            await ReplyAsync(tunnel, VmTunnelStatus.Ok, null, compressed ? TunnelCompression.Lz4 : null, streamChecksum: TunnelChunks.Checksum).ConfigureAwait(false);
            replied = true;

            // QEMU's word that it loaded the stream comes first (it is resumed at once below); the relay's end (the
            // source closing the tunnel) comes a little later, or alone if the stream broke off. A corrupt chunk ends the
            // relay before any of it reaches QEMU: it then never has the whole stream, and is killed below, never resumed.
            relaying = TunnelRelay.RunCheckedAsync(tunnel.Transport, local, localEndsIt: false, tunnel.Stopping, compressed: compressed);
            await Task.WhenAny(relaying, loaded).ConfigureAwait(false);
            await loading.CancelAsync().ConfigureAwait(false);
            ThrowIfCorrupt(relaying);

            // The stream ended: the VM arrived if QEMU loaded all of it. QEMU keeps it paused (-S); it is resumed here
            // only once this host is the volume's primary: the source hands the disk over before it lets QEMU send the
            // last of the stream, and after that it never resumes the VM itself, so exactly one QEMU runs the guest.
            var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(60);
            var sinceLoaded = Stopwatch.StartNew();
            // The usual case, on the guest's pause: QEMU said it loaded everything (it sets the VM paused before it says
            // so) and this host is already primary. Resume without more questions; the loop below confirms it runs.
            if (loaded.IsCompletedSuccessfully && loaded.Result.GetString("status") == QmpMigrationStatus.Completed
                && replication.GetStatus(d.Volume) is { Role: VolumeRole.Primary, WritesRefused: false })
            {
                try
                {
                    await qemu.Qmp.ContAsync(tunnel.Stopping).ConfigureAwait(false);
                    Log.VmResumedAfterLoad(logger, d.Name, sinceLoaded.Elapsed.TotalMilliseconds);
                }
                catch (QmpException) { } // not yet after all: the loop below looks properly
            }
            while (true)
            {
                ThrowIfCorrupt(relaying);
                if (qemu.HasExited) throw new IOException($"QEMU exited: {JobManager.OneLine(qemu.StderrTail)}");
                var status = await qemu.Qmp.QueryStatusAsync(tunnel.Stopping).ConfigureAwait(false);
                if (status.Running) break;
                var migrate = await qemu.Qmp.QueryMigrateAsync(tunnel.Stopping).ConfigureAwait(false);
                if (migrate.Status == QmpMigrationStatus.Completed && status.Status != RunState.InMigrate)
                {
                    var role = replication.GetStatus(d.Volume);
                    if (role.Role == VolumeRole.Primary && !role.WritesRefused)
                    {
                        await qemu.Qmp.ContAsync(tunnel.Stopping).ConfigureAwait(false);
                        Log.VmResumedAfterLoad(logger, d.Name, sinceLoaded.Elapsed.TotalMilliseconds);
                        continue;
                    }
                }
                if (migrate.Status is QmpMigrationStatus.Failed or QmpMigrationStatus.Cancelled)
                    throw new IOException($"incoming migration {migrate.Status}: {migrate.ErrorDesc}");
                if (DateTime.UtcNow > deadline) throw new IOException($"the VM did not start within 60 s after the stream ended ({status.Status}, migration {migrate.Status})");
                await Task.Delay(20, tunnel.Stopping).ConfigureAwait(false);
            }
            lock (host.Lock)
            {
                vm.State = VmStates.Running;
                _arrivals[d.Name] = new VmArrival(VmTunnelStatus.Ok, null);
            }
            Log.VmArrived(logger, d.Name, peer);
            if (d.Nic is { } arrivedNic && request.NetworkThere is { } there && host.NetworkHere(arrivedNic) is var here && here != there)
                _ = FlapLinkAsync(qemu, d.Name, there, here);
            await relaying.ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is not OutOfMemoryException)
        {
            // QEMU exits by itself when an incoming stream breaks off: its own words say more than a closed QMP socket.
            // A corrupt stream says most: the source names it when the VM did not arrive.
            var corrupt = ex as TunnelCorruptException ?? (relaying is { IsCompletedSuccessfully: true } r ? r.Result.TunnelFailure as TunnelCorruptException : null);
            var error = JobManager.OneLine(corrupt is not null ? VmMigration.CorruptionText(corrupt, peer)
                : vm.Qemu is { HasExited: true } exited ? $"QEMU exited: {exited.StderrTail}" : ex.Message);
            Log.VmIncomingFailed(logger, d.Name, peer, error);
            vm.ExitExpected = true;
            if (vm.Qemu is { } q) await q.KillAsync().ConfigureAwait(false);
            host.Forget(vm);
            lock (host.Lock) _arrivals[d.Name] = new VmArrival(VmTunnelStatus.Failed, error);
            if (!replied)
            {
                try { await ReplyAsync(tunnel, VmTunnelStatus.Refused, error).ConfigureAwait(false); }
                catch (Exception e) when (e is IOException or OperationCanceledException or InvalidOperationException) { }
            }
        }
        finally
        {
            VmSocketPaths.DeleteStale(socketPath);
            vm.Gate.Release();
        }
    }

    private static void ThrowIfCorrupt(Task<(long Sent, long Received, Exception? TunnelFailure)> relaying)
    {
        if (relaying is { IsCompletedSuccessfully: true } && relaying.Result.TunnelFailure is TunnelCorruptException corrupt) throw corrupt;
    }

    /// <summary>
    /// vm-return: the VM's arrival from <paramref name="peer"/> failed after the disk was handed over here, and the
    /// source (which kept the VM paused) asks for the disk back. Null once <paramref name="peer"/> is the primary again.
    /// </summary>
    private async Task<string?> ReturnVolumeAsync(VmTunnelRequest request, string peer)
    {
        var d = request.Vm;
        lock (host.Lock)
        {
            if (host.Find(d.Name) is { Qemu: not null } here) return $"the VM '{d.Name}' has a QEMU here ({here.State}): it stays here";
            if (!_arrivals.TryGetValue(d.Name, out var arrival) || arrival.Status != VmTunnelStatus.Failed)
                return $"no failed arrival of VM '{d.Name}' is known here";
        }
        if (!store.TryGet(d.Volume, out _)) return $"volume '{d.Volume}' is not here";
        var status = replication.GetStatus(d.Volume);
        if (status.Role == VolumeRole.Replica) return status.PrimaryPeer == peer ? null : $"volume '{d.Volume}' here is a replica of {status.PrimaryPeer}";
        try
        {
            await replication.PrepareMigrationAsync(d.Volume, peer).ConfigureAwait(false);
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(120));
            await replication.WaitInSyncAsync(d.Volume, timeout.Token).ConfigureAwait(false);
            await replication.HandOverAsync(d.Volume, keepReplica: true).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is Roam.Replication.ReplicationException or IOException or InvalidOperationException or TimeoutException
            or OperationCanceledException)
        {
            if (replication.FindMigration(d.Volume)?.Phase is VolumeMigrationPhase.Preparing or VolumeMigrationPhase.Copying or VolumeMigrationPhase.InSync)
            {
                try { await replication.AbortMigrationAsync(d.Volume).ConfigureAwait(false); }
                catch (Exception e) when (e is Roam.Replication.ReplicationException or IOException or InvalidOperationException) { }
            }
            return $"handing volume '{d.Volume}' back failed: {JobManager.OneLine(ex.Message)}";
        }
        Log.VmVolumeReturned(logger, d.Name, d.Volume, peer);
        return null;
    }

    /// <summary>How long the NIC's link stays down after an arrival on another network: long enough for the guest to see it.</summary>
    internal static readonly TimeSpan LinkFlapDown = TimeSpan.FromMilliseconds(200);

    /// <summary>
    /// The VM runs here, on another network than the one it left (another subnet): its link goes down and up, as a
    /// laptop's cable moved to another socket, so that the guest drops its old address, takes a lease here and moves its
    /// MPTCP subflows to it. Same network (a bridge to one LAN): nothing to do, QEMU's self-announce moved the L2 path.
    /// </summary>
    private async Task FlapLinkAsync(QemuProcess qemu, string name, string there, string here)
    {
        try
        {
            await qemu.Qmp.SetLinkAsync(QemuCommandLine.NicId, up: false).ConfigureAwait(false);
            await Task.Delay(LinkFlapDown).ConfigureAwait(false);
            await qemu.Qmp.SetLinkAsync(QemuCommandLine.NicId, up: true).ConfigureAwait(false);
            Log.VmLinkFlapped(logger, name, there, here);
        }
        catch (Exception ex) when (ex is QmpException or IOException or ObjectDisposedException or OperationCanceledException)
        {
            Log.VmMigrationSafety(logger, name, $"its link could not be flapped after the arrival ({ex.Message}); the guest keeps its old address until its lease ends");
        }
    }
}


/// <summary>A VM's arrival here as the source's Status request learns it: Pending, Ok (it runs here) or Failed (why).</summary>
internal sealed record VmArrival(VmTunnelStatus Status, string? Error);
