using System.Diagnostics;
using System.Net.Sockets;
using System.Text.Json;
using Microsoft.Extensions.Logging;
using Roam.Control;
using Roam.Daemon.Api;
using Roam.Daemon.Jobs;
using Roam.Hypervisor.Qemu;
using Roam.Hypervisor.Qmp;
using Roam.Replication.Engine;
using Roam.Replication.Transport;
using Roam.Replication.Tunnel;
using Roam.Storage.Volumes;
using QmpMigrationStatus = Roam.Hypervisor.Qmp.MigrationStatus;

namespace Roam.Daemon.Vms;

// Source side of `roam vm migrate`: disk first (synchronous mirroring until in sync), then memory through a tunnel
// (QEMU -> unix socket -> this roamd -> mutual-TLS peer connection -> destination roamd -> its QEMU), paused before
// switch-over; the disk is handed over last, then QEMU finishes. Before the hand-over everything can be undone.
internal sealed partial class VmService
{
    private readonly Dictionary<string, VmMigrationView> _departed = new(StringComparer.Ordinal);

    public VmMigrationView GetMigration(string name)
    {
        lock (_lock)
        {
            if (_vms.TryGetValue(name, out var vm) && vm.Migration is { } m) return m;
            if (_departed.TryGetValue(name, out var d)) return d;
        }
        throw new ApiException(ApiException.NotFound, $"no migration of VM '{name}' is known here");
    }

    public async Task<Job> StartMigrationAsync(string name, MigrateVmRequest request, CancellationToken cancellationToken)
    {
        var vm = Get(name);
        var peer = request.To;
        if (string.IsNullOrWhiteSpace(peer)) throw new ApiException(ApiException.BadRequest, "a destination is required: --to HOST (see: roam host list)");
        if (trust.Find(peer) is null)
            throw new ApiException(ApiException.NotFound, $"no trusted peer is named {peer}; add it first with: roam host add {peer} ADDR:PORT --fingerprint FP");
        long? bandwidth = null;
        if (request.Bandwidth is not null)
            bandwidth = ByteSize.TryParse(request.Bandwidth, out var b) && b > 0 ? b
                : throw new ApiException(ApiException.BadRequest, $"'{request.Bandwidth}' is not a bandwidth in bytes per second (like 100M)");
        if (request.DowntimeLimitMs is < 1 or > 600_000) throw new ApiException(ApiException.BadRequest, "the downtime limit must be between 1 and 600000 ms");
        if (vm.State != VmStates.Running) throw new ApiException(ApiException.Conflict, $"VM '{name}' is {vm.State}, not running: start it, or move its volume with roam volume migrate");
        if (jobs.FindRunning(VmJobKinds.Migrate, name) is { } running)
            throw new ApiException(ApiException.Conflict, $"VM '{name}' is already being migrated by job {running.Id}");
        var volume = vm.Definition.Volume;
        long size = store.Get(volume).Size;

        // Up front, through the authenticated peer channel: reachability and trust both ways (the tunnel's TLS), then
        // what the destination itself knows (name, volume, disk space, memory, kernel files).
        var reply = await AskAsync(peer, new VmTunnelRequest(VmTunnelOps.Prepare, vm.Definition, size, vm.Accelerator), cancellationToken).ConfigureAwait(false);
        if (!reply.Ok) throw new ApiException(ApiException.Conflict, $"{peer} cannot take VM '{name}': {reply.Error}");

        return jobs.Start(VmJobKinds.Migrate, name, peer, "live", size, job => job.BeginMigration(peer),
            async (job, ct) =>
            {
                await MigrateAsync(vm, peer, bandwidth, request.DowntimeLimitMs, job, ct).ConfigureAwait(false);
                return null;
            }, _ => Task.CompletedTask);
    }

    private async Task<VmTunnelReply> AskAsync(string peer, VmTunnelRequest request, CancellationToken cancellationToken)
    {
        try
        {
            await using var tunnel = await replication.OpenTunnelAsync(peer, JsonSerializer.Serialize(request, VmJsonContext.Default.VmTunnelRequest),
                TimeSpan.FromSeconds(15), cancellationToken).ConfigureAwait(false);
            return ParseReply(peer, tunnel.Reply);
        }
        catch (PeerConnectException ex)
        {
            throw new ApiException(ApiException.Unavailable, ex.Message);
        }
        catch (Exception ex) when (ex is IOException or OperationCanceledException && !cancellationToken.IsCancellationRequested)
        {
            throw new ApiException(ApiException.Unavailable, $"{peer} did not answer about VMs: {ex.Message}");
        }
    }

    private static VmTunnelReply ParseReply(string peer, string json)
    {
        try { return JsonSerializer.Deserialize(json, VmJsonContext.Default.VmTunnelReply) ?? throw new JsonException("null"); }
        catch (JsonException ex) { throw new IOException($"{peer} answered nonsense: {ex.Message}"); }
    }

    private async Task MigrateAsync(VmRuntime vm, string peer, long? bandwidth, long? downtimeLimitMs, Job job, CancellationToken ct)
    {
        var name = vm.Definition.Name;
        var volume = vm.Definition.Volume;
        await vm.Gate.WaitAsync(ct).ConfigureAwait(false);
        var clock = Stopwatch.StartNew();
        string socketPath = Path.Combine("/tmp", $"roam-tun-{Guid.NewGuid():N}.sock");
        Socket? listener = null;
        TunnelConnection? tunnel = null;
        bool handedOver = false;
        long diskTotal = store.Get(volume).Size;
        var view = new VmMigrationView(peer, VmMigrationPhases.Disk, diskTotal, 0, 0, 0, 0, 0, 0, 0, null, null, null, null, 0, null);
        void Set(VmMigrationView v) { lock (_lock) vm.Migration = view = v; }
        try
        {
            if (vm.Qemu is not { } qemu || vm.State != VmStates.Running) throw new IOException($"VM '{name}' is not running any more");
            vm.State = VmStates.Migrating;
            Set(view);

            // (a) Storage: copy the disk while the VM writes; from in-sync on, every write is mirrored synchronously.
            // The disk copy keeps to the same limit as the memory (it comes first, so they never overlap).
            await replication.PrepareMigrationAsync(volume, peer, bandwidth, ct).ConfigureAwait(false);
            using (var polling = CancellationTokenSource.CreateLinkedTokenSource(ct))
            using (var lost = CancellationTokenSource.CreateLinkedTokenSource(ct))
            {
                // A VM migration does not wait for a destination that went away (a volume migration may): after
                // DestinationLossTimeout without a link, it fails and the VM goes on here.
                var poll = Task.Run(async () =>
                {
                    var away = System.Diagnostics.Stopwatch.StartNew();
                    while (!polling.IsCancellationRequested)
                    {
                        if (replication.FindMigration(volume) is { } s)
                        {
                            job.ReportMigration(MigrationEndpoints.View(s));
                            Set(view with { DiskBytesTotal = s.BytesTotal, DiskBytesDone = s.BytesDone, DiskBytesOnWire = s.BytesOnWire });
                        }
                        var link = replication.GetStatus(volume).Replicas.FirstOrDefault(r => r.Peer == peer);
                        if (link?.State is ReplicaState.Syncing or ReplicaState.InSync) away.Restart();
                        else if (away.Elapsed > DestinationLossTimeout) { await lost.CancelAsync().ConfigureAwait(false); return; }
                        await Task.Delay(200, polling.Token).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
                    }
                }, CancellationToken.None);
                try { await replication.WaitInSyncAsync(volume, lost.Token).ConfigureAwait(false); }
                catch (OperationCanceledException) when (lost.IsCancellationRequested && !ct.IsCancellationRequested)
                {
                    throw new InvalidOperationException(
                        $"lost the destination {peer} during the disk copy (no link for {DestinationLossTimeout.TotalSeconds:0} s); the VM keeps running here");
                }
                finally
                {
                    await polling.CancelAsync().ConfigureAwait(false);
                    await poll.ConfigureAwait(false);
                }
            }
            var synced = replication.GetMigration(volume);
            job.ReportMigration(MigrationEndpoints.View(synced));
            Set(view with { DiskBytesTotal = synced.BytesTotal, DiskBytesDone = synced.BytesDone, DiskBytesOnWire = synced.BytesOnWire, Phase = VmMigrationPhases.Memory });

            // (b) The destination defines the VM and starts its QEMU with -incoming, on its replica's export.
            tunnel = await replication.OpenTunnelAsync(peer, JsonSerializer.Serialize(
                new VmTunnelRequest(VmTunnelOps.Incoming, vm.Definition, diskTotal, vm.Accelerator), VmJsonContext.Default.VmTunnelRequest),
                TimeSpan.FromSeconds(60), ct).ConfigureAwait(false);
            var reply = ParseReply(peer, tunnel.Reply);
            if (!reply.Ok) throw new IOException($"{peer} could not prepare the VM: {reply.Error}");

            // (c) QEMU migrates to a unix socket only this roamd serves; the bytes go on inside the peer connection.
            listener = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
            listener.Bind(new UnixDomainSocketEndPoint(socketPath));
            if (!OperatingSystem.IsWindows()) File.SetUnixFileMode(socketPath, UnixFileMode.UserRead | UnixFileMode.UserWrite);
            listener.Listen(1);
            var open = tunnel;
            var accepting = listener;
            var relay = Task.Run(async () =>
            {
                using var local = await accepting.AcceptAsync(ct).ConfigureAwait(false);
                return await TunnelRelay.RunAsync(open.Transport, local, localEndsIt: true, CancellationToken.None, open.ShutdownSendAsync).ConfigureAwait(false);
            }, CancellationToken.None);

            // (d) Pre-copy, paused before switch-over.
            var qmp = qemu.Qmp;
            await qmp.MigrateSetCapabilitiesAsync([new(MigrationCapability.PauseBeforeSwitchover, true), new(MigrationCapability.Events, true)], ct).ConfigureAwait(false);
            if (bandwidth is not null || downtimeLimitMs is not null)
                await qmp.MigrateSetParametersAsync(new MigrationParameters { MaxBandwidth = bandwidth, DowntimeLimit = downtimeLimitMs }, ct).ConfigureAwait(false);
            var paused = qmp.WaitForEventAsync(QmpEvents.Migration,
                e => e.GetString("status") is QmpMigrationStatus.PreSwitchover or QmpMigrationStatus.Failed or QmpMigrationStatus.Cancelled, ct);
            await qmp.MigrateAsync("unix:" + socketPath, ct).ConfigureAwait(false);
            while (!paused.IsCompleted)
            {
                if (relay.IsFaulted) await relay.ConfigureAwait(false);
                var info = await qmp.QueryMigrateAsync(ct).ConfigureAwait(false);
                ReportMemory(job, info, diskTotal, synced.BytesOnWire, v => Set(v), view);
                await Task.WhenAny(paused, Task.Delay(200, ct)).ConfigureAwait(false);
            }
            var status = (await paused.ConfigureAwait(false)).GetString("status");
            var atPause = await qmp.QueryMigrateAsync(ct).ConfigureAwait(false);
            ReportMemory(job, atPause, diskTotal, synced.BytesOnWire, v => Set(v), view);
            if (status != QmpMigrationStatus.PreSwitchover) throw new IOException($"QEMU's migration {status}: {atPause.ErrorDesc ?? "no reason given"}");

            // The VM is paused with its disk flushed: hand the volume over (milliseconds), the last step before continue.
            ct.ThrowIfCancellationRequested();
            Set(view with { Phase = VmMigrationPhases.Switchover });
            job.ReportMigration(new MigrationView(name, peer, "Switchover", diskTotal + (atPause.Ram?.Total ?? 0), diskTotal + (atPause.Ram?.Transferred ?? 0),
                atPause.Ram?.Remaining ?? 0, synced.BytesOnWire + (atPause.Ram?.Transferred ?? 0), 0, null, null));
            var handOver = await replication.HandOverAsync(volume, keepReplica: true, CancellationToken.None).ConfigureAwait(false);
            handedOver = true;
            job.ReportHandOver(MigrationEndpoints.View(handOver));

            var finished = qmp.WaitForEventAsync(QmpEvents.Migration, e => QmpMigrationStatus.IsFinal(e.GetString("status")), CancellationToken.None);
            await qmp.MigrateContinueAsync(ct: CancellationToken.None).ConfigureAwait(false);
            var end = (await finished.WaitAsync(TimeSpan.FromSeconds(120), CancellationToken.None).ConfigureAwait(false)).GetString("status");
            var done = await qmp.QueryMigrateAsync(CancellationToken.None).ConfigureAwait(false);
            for (int i = 0; i < 100 && end == QmpMigrationStatus.Completed && !(done.TotalTime > 0); i++)
            {
                await Task.Delay(20, CancellationToken.None).ConfigureAwait(false);
                done = await qmp.QueryMigrateAsync(CancellationToken.None).ConfigureAwait(false);
            }
            if (end != QmpMigrationStatus.Completed) throw new IOException($"QEMU's migration {end} after the hand-over: {done.ErrorDesc ?? "no reason given"}");
            var (sent, _) = await relay.WaitAsync(TimeSpan.FromSeconds(60), CancellationToken.None).ConfigureAwait(false);
            // Closing the tunnel ends the stream at the destination, which then checks that its QEMU loaded the VM and runs.
            await tunnel.DisposeAsync().ConfigureAwait(false);

            // The destination says whether the VM runs there (its QEMU resumed).
            var arrived = await WaitArrivedAsync(peer, vm.Definition, diskTotal).ConfigureAwait(false);
            var final = view with
            {
                Phase = VmMigrationPhases.Completed,
                RamTotal = done.Ram?.Total ?? view.RamTotal,
                RamTransferred = done.Ram?.Transferred ?? view.RamTransferred,
                RamRemaining = 0,
                TotalSeconds = Math.Round(clock.Elapsed.TotalSeconds, 3),
                DowntimeMs = done.Downtime,
                WritePauseMs = Math.Round(handOver.WritePause.TotalMilliseconds, 3),
                TunnelBytes = sent,
                Error = arrived ? null : $"{peer} did not confirm that the VM runs there",
            };
            Set(final);
            job.ReportMigration(new MigrationView(name, peer, "Completed", diskTotal + final.RamTransferred, diskTotal + final.RamTransferred, 0,
                final.DiskBytesOnWire + sent, 0, null, null));

            // The source QEMU is done: quit it; this host keeps the volume as a warm replica, not the VM.
            vm.ExitExpected = true;
            await qemu.QuitAsync(TimeSpan.FromSeconds(5), CancellationToken.None).ConfigureAwait(false);
            lock (_lock) _departed[name] = final;
            Forget(vm);
            Log.VmMigrated(logger, name, peer, final.TotalSeconds ?? 0, final.DowntimeMs, final.DiskBytesOnWire, final.RamTransferred);
        }
        catch (Exception ex)
        {
            string error = JobManager.OneLine(ex.Message);
            if (!handedOver)
            {
                // (e) Undo: the VM keeps running here with its disk, the destination drops its QEMU and definition
                // (it sees the tunnel close without a completed migration).
                if (vm.Qemu is { } q && !q.HasExited)
                {
                    try { await q.Qmp.MigrateCancelAsync(CancellationToken.None).ConfigureAwait(false); } catch (Exception e) when (e is QmpException or IOException or TimeoutException) { }
                    await EnsureRunningAsync(q).ConfigureAwait(false);
                }
                if (replication.FindMigration(volume)?.Phase is Roam.Replication.Engine.MigrationPhase.Preparing or Roam.Replication.Engine.MigrationPhase.Copying
                    or Roam.Replication.Engine.MigrationPhase.InSync)
                {
                    try { await replication.AbortMigrationAsync(volume).ConfigureAwait(false); }
                    catch (Exception e) when (e is IOException or InvalidOperationException or Roam.Replication.Source.ReplicationException) { error += $" (aborting the volume migration failed: {e.Message})"; }
                }
                lock (_lock) if (vm.Qemu is not null) vm.State = VmStates.Running;
            }
            else
            {
                error = $"the disk was handed over to {peer} but QEMU did not finish the migration: {error}; the VM cannot run here any more " +
                        $"(its volume is {peer}'s replica now); see roam vm show {name} on {peer}";
                lock (_lock) vm.Error = error;
            }
            Set(view with { Phase = VmMigrationPhases.Failed, Error = error, TotalSeconds = Math.Round(clock.Elapsed.TotalSeconds, 3) });
            Log.VmMigrationFailed(logger, name, peer, error);
            throw new IOException(error, ex);
        }
        finally
        {
            if (tunnel is not null) await tunnel.DisposeAsync().ConfigureAwait(false);
            listener?.Dispose();
            try { File.Delete(socketPath); } catch (IOException) { }
            vm.Gate.Release();
        }
    }

    private static void ReportMemory(Job job, MigrationInfo info, long diskTotal, long diskOnWire, Action<VmMigrationView> set, VmMigrationView view)
    {
        if (info.Ram is not { } ram) return;
        set(view with
        {
            Phase = VmMigrationPhases.Memory,
            RamTotal = ram.Total,
            RamTransferred = ram.Transferred,
            RamRemaining = ram.Remaining,
            DirtyPagesRate = ram.DirtyPagesRate,
            Mbps = ram.Mbps,
            ExpectedDowntimeMs = info.ExpectedDowntime,
        });
        job.ReportMigration(new MigrationView(job.Volume, view.Peer, "Memory", diskTotal + ram.Total,
            diskTotal + ram.Transferred, ram.Remaining, diskOnWire + ram.Transferred, ram.Mbps * 1e6 / 8, null, null));
    }

    private static async Task EnsureRunningAsync(QemuProcess qemu)
    {
        for (int i = 0; i < 50; i++)
        {
            try
            {
                var migrate = await qemu.Qmp.QueryMigrateAsync(CancellationToken.None).ConfigureAwait(false);
                if (migrate.Status is QmpMigrationStatus.Cancelling or QmpMigrationStatus.Active or QmpMigrationStatus.PreSwitchover or QmpMigrationStatus.Setup)
                {
                    await Task.Delay(50).ConfigureAwait(false);
                    continue;
                }
                var status = await qemu.Qmp.QueryStatusAsync(CancellationToken.None).ConfigureAwait(false);
                if (!status.Running) await qemu.Qmp.ContAsync(CancellationToken.None).ConfigureAwait(false);
                return;
            }
            catch (Exception e) when (e is QmpException or IOException or TimeoutException) { return; }
        }
    }

    private async Task<bool> WaitArrivedAsync(string peer, VmDefinition definition, long size)
    {
        var deadline = Stopwatch.StartNew();
        while (deadline.Elapsed < TimeSpan.FromSeconds(60))
        {
            try
            {
                var reply = await AskAsync(peer, new VmTunnelRequest(VmTunnelOps.Status, definition, size, null), CancellationToken.None).ConfigureAwait(false);
                if (reply.Ok) return true;
                if (reply.Error is { } e && e.StartsWith("failed", StringComparison.Ordinal)) return false;
            }
            catch (ApiException) { }
            await Task.Delay(100).ConfigureAwait(false);
        }
        return false;
    }
}
