using System.Diagnostics;
using System.Net.Sockets;
using System.Text.Json;
using Microsoft.Extensions.Logging;
using Roam.Control;
using Roam.Daemon.Jobs;
using Roam.Daemon.Migration;
using Roam.Hypervisor.Qemu;
using Roam.Hypervisor.Qmp;
using Roam.Replication.Engine;
using Roam.Peers.Transport;
using Roam.Peers.Tunnel;
using Roam.Storage.Volumes;
using QmpMigrationStatus = Roam.Hypervisor.Qmp.MigrationStatus;

namespace Roam.Daemon.Vms;

// Source side of `roam vm migrate`: disk first (synchronous mirroring until in sync), then memory through a tunnel
// (QEMU -> unix socket -> this roamd -> mutual-TLS peer connection -> destination roamd -> its QEMU), paused before
// switch-over; the disk is handed over last, then QEMU finishes. Before the hand-over everything can be undone.
internal sealed partial class VmService
{
    /// <summary>The disk backlog's bound in the memory phase (see SetMigrationMirroring): it drains inside the pause,
    /// with the link to itself by then, in about half of this when the memory took half the link before.</summary>
    internal static readonly TimeSpan MemoryPhaseDiskLag = TimeSpan.FromMilliseconds(50);

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
        var reply = await AskAsync(peer, new VmTunnelRequest(VmTunnelOp.Prepare, vm.Definition, size, vm.Accelerator, BootFiles: bootFiles),
            cancellationToken).ConfigureAwait(false);
        if (!reply.Ok) throw new VmException(VmError.DestinationRefused, $"{peer} cannot take VM '{name}': {reply.Error}");

        return jobs.Start(VmJobKinds.Migrate, name, peer, "live", size, job => job.BeginMigration(peer),
            async (job, ct) =>
            {
                await MigrateAsync(vm, peer, bandwidth, downtimeLimitMs, bootFiles, job, ct).ConfigureAwait(false);
                return null;
            }, _ => Task.CompletedTask);
    }

    private Task<VmTunnelReply> AskAsync(string peer, VmTunnelRequest request, CancellationToken cancellationToken) =>
        AskAsync(peer, request, TimeSpan.FromSeconds(15), cancellationToken);

    private async Task<VmTunnelReply> AskAsync(string peer, VmTunnelRequest request, TimeSpan timeout, CancellationToken cancellationToken)
    {
        // Bounds the connect too (a link that drops packets rather than refusing).
        using var connectTimeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        connectTimeout.CancelAfter(timeout + TimeSpan.FromSeconds(5));
        try
        {
            await using var tunnel = await replication.OpenTunnelAsync(peer, VmTunnelJson.Serialize(request),
                timeout, connectTimeout.Token).ConfigureAwait(false);
            return ParseReply(peer, tunnel.Reply);
        }
        catch (PeerConnectException ex)
        {
            throw new VmException(VmError.PeerUnavailable, ex.Message);
        }
        catch (Exception ex) when (ex is IOException or OperationCanceledException && !cancellationToken.IsCancellationRequested)
        {
            throw new VmException(VmError.PeerUnavailable, $"{peer} did not answer about VMs: {ex.Message}");
        }
    }

    private static VmTunnelReply ParseReply(string peer, string json)
    {
        try { return VmTunnelJson.ParseReply(json); }
        catch (JsonException ex) { throw new IOException($"{peer} answered nonsense: {ex.Message}"); }
    }

    /// <summary>Sends the boot files the destination lacks (each once: it keeps them by content).</summary>
    private async Task SendBootFilesAsync(VmRuntime vm, string peer, long diskTotal, IReadOnlyList<BootFileOffer> bootFiles, CancellationToken ct)
    {
        foreach (var offer in bootFiles)
        {
            var request = new VmTunnelRequest(VmTunnelOp.BootFile, vm.Definition, diskTotal, vm.Accelerator, BootFiles: [offer]);
            await using var tunnel = await replication.OpenTunnelAsync(peer, VmTunnelJson.Serialize(request),
                TimeSpan.FromSeconds(30), ct).ConfigureAwait(false);
            var reply = ParseReply(peer, tunnel.Reply);
            if (!reply.Ok) throw new IOException($"{peer} does not take the boot file {offer.Path}: {reply.Error}");
            if (reply.NeedBootFiles is not { Count: > 0 }) continue;
            await BootFiles.SendAsync(offer, tunnel.Transport.Output, ct).ConfigureAwait(false);
            var json = await TunnelProtocol.ReadFrameAsync(tunnel.Transport.Input, ct).ConfigureAwait(false)
                ?? throw new IOException($"{peer} closed the tunnel while receiving the boot file {offer.Path}");
            var received = ParseReply(peer, json);
            if (!received.Ok) throw new IOException($"{peer} did not take the boot file {offer.Path}: {received.Error}");
        }
    }

    private async Task MigrateAsync(VmRuntime vm, string peer, MigrationBandwidth bandwidth, long? downtimeLimitMs, IReadOnlyList<BootFileOffer> bootFiles,
        Job job, CancellationToken ct)
    {
        var name = vm.Definition.Name;
        var volume = vm.Definition.Volume;
        _ = JitWarmup.PrepareAsync(typeof(VmService), typeof(QmpClient), typeof(TunnelRelay), typeof(TunnelChunkReader), typeof(TunnelChunkWriter));
        await vm.Gate.WaitAsync(ct).ConfigureAwait(false);
        var clock = Stopwatch.StartNew();
        string socketPath = Path.Combine("/tmp", $"roam-tun-{Guid.NewGuid():N}.sock");
        Socket? listener = null;
        TunnelConnection? tunnel = null;
        bool handedOver = false; // read by the relay (Volatile)
        // From the start of the hand-over on, a failing tunnel must not fail QEMU's migration (QEMU would resume the guest
        // here, and the disk may be the destination's by then): the relay drains QEMU's stream instead (read: Volatile).
        bool relayDrains = false;
        long diskTotal = store.Get(volume).Size;
        var view = new VmMigrationView(peer, VmMigrationPhases.Disk, diskTotal, 0, 0, 0, 0, 0, 0, 0, null, null, null, null, 0, null);
        void Set(VmMigrationView v) { lock (_lock) vm.Migration = view = v; }
        try
        {
            if (vm.Qemu is not { } qemu || vm.State != VmStates.Running) throw new IOException($"VM '{name}' is not running any more");
            vm.State = VmStates.Migrating;
            Set(view);

            // (0) The kernel and initrd, if the destination lacks them: its QEMU reads them when it starts.
            await SendBootFilesAsync(vm, peer, diskTotal, bootFiles, ct).ConfigureAwait(false);

            // (a) Storage: copy the disk while the VM writes; from in-sync on, every write is mirrored synchronously.
            // The disk copy keeps to the same limit as the memory (it comes first, so they never overlap); without
            // --bandwidth none, not what an earlier migration asked for.
            await replication.PrepareMigrationAsync(volume, peer, bandwidth.ForDiskCopy, ct).ConfigureAwait(false);
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
                            job.ReportMigration(Roam.Daemon.Migration.MigrationViews.View(s));
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
            job.ReportMigration(Roam.Daemon.Migration.MigrationViews.View(synced));
            Set(view with { DiskBytesTotal = synced.BytesTotal, DiskBytesDone = synced.BytesDone, DiskBytesOnWire = synced.BytesOnWire, Phase = VmMigrationPhases.Memory });

            // The disk is in sync: while the memory moves, writes are shipped in order without the guest waiting for the
            // link (it is full of memory pages); the hand-over catches up on what is in flight, inside the pause. So the
            // backlog is bounded in time: on a link too slow for both the memory and the guest's writes, a write waits
            // for its acknowledgement once the oldest is older than the bound, and the pause never holds more than that.
            replication.SetMigrationMirroring(volume, ReplicaMode.Async, MemoryPhaseDiskLag);

            // (b) The destination defines the VM and starts its QEMU with -incoming, on its replica's export.
            tunnel = await replication.OpenTunnelAsync(peer, VmTunnelJson.Serialize(
                new VmTunnelRequest(VmTunnelOp.Incoming, vm.Definition, diskTotal, vm.Accelerator,
                    replication.Options.Compression == WireCompression.Off ? null : TunnelCompression.Lz4, bootFiles, TunnelChunks.Checksum)),
                TimeSpan.FromSeconds(60), ct).ConfigureAwait(false);
            var reply = ParseReply(peer, tunnel.Reply);
            if (!reply.Ok) throw new IOException($"{peer} could not prepare the VM: {reply.Error}");
            // The stream goes only as chunks the destination verifies before they reach its QEMU.
            if (reply.StreamChecksum != TunnelChunks.Checksum)
                throw new IOException($"{peer} did not agree to verify the memory stream's checksums ({TunnelChunks.Checksum}; it answered " +
                                      $"{(reply.StreamChecksum is { } c ? $"'{c}'" : "none")}: is its roamd another version?); the VM keeps running here");
            bool compressed = reply.StreamCompression == TunnelCompression.Lz4;

            // (c) QEMU migrates to a unix socket only this roamd serves; the bytes go on inside the peer connection.
            listener = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
            listener.Bind(new UnixDomainSocketEndPoint(socketPath));
            if (!OperatingSystem.IsWindows()) File.SetUnixFileMode(socketPath, UnixFileMode.UserRead | UnixFileMode.UserWrite);
            listener.Listen(1);
            var open = tunnel;
            var accepting = listener;
            // Once the disk is handed over, a broken tunnel must not fail QEMU's migration here: QEMU resumes a guest
            // whose migration failed, and this host no longer holds its disk. The relay then swallows the rest of the
            // stream, QEMU completes and stays paused, and the destination's word decides (see ConfirmAsync).
            var meter = new TunnelMeter();
            var relay = Task.Run(async () =>
            {
                using var local = await accepting.AcceptAsync(ct).ConfigureAwait(false);
                return await TunnelRelay.RunCheckedAsync(open.Transport, local, localEndsIt: true, CancellationToken.None, open.ShutdownSendAsync,
                    () => Volatile.Read(ref relayDrains), compressed, CorruptionForTests(() => Volatile.Read(ref handedOver)), meter).ConfigureAwait(false);
            }, CancellationToken.None);
            var linkRate = new LinkRate();

            // (d) Pre-copy, paused before switch-over.
            var qmp = qemu.Qmp;
            await qmp.MigrateSetCapabilitiesAsync([new(MigrationCapability.PauseBeforeSwitchover, true), new(MigrationCapability.Events, true)], ct).ConfigureAwait(false);
            // Always both: QEMU keeps parameters across migrations, so a retry without --bandwidth must not inherit an earlier limit.
            var downtime = new DowntimeLimit(downtimeLimitMs);
            await qmp.MigrateSetParametersAsync(new MigrationParameters
            {
                MaxBandwidth = bandwidth.ForQemu,
                DowntimeLimit = downtime.Initial,
            }, ct).ConfigureAwait(false);
            var paused = qmp.WaitForEventAsync(QmpEvents.Migration,
                e => e.GetString("status") is QmpMigrationStatus.PreSwitchover or QmpMigrationStatus.Failed or QmpMigrationStatus.Cancelled, ct);
            await qmp.MigrateAsync("unix:" + socketPath, ct).ConfigureAwait(false);
            while (!paused.IsCompleted)
            {
                if (relay.IsFaulted) await relay.ConfigureAwait(false);
                var info = await qmp.QueryMigrateAsync(ct).ConfigureAwait(false);
                var backlog = replication.GetStatus(volume).Replicas.FirstOrDefault(r => r.Peer == peer);
                ReportMemory(job, info, diskTotal, synced.BytesOnWire, v => Set(v), view with
                {
                    DiskBacklogBytes = backlog is null ? 0 : backlog.PendingBytes + backlog.BytesToResync,
                    DiskLagMs = backlog is null ? 0 : Math.Round(backlog.Lag.TotalMilliseconds, 1),
                    LinkBytesPerSecond = linkRate.Update(meter.Sent + (backlog?.BytesSent ?? 0)),
                });
                if (info.Ram is { } ram && downtime.After(ram.DirtySyncCount) is { } raised)
                {
                    Log.VmDowntimeRaised(logger, name, raised, ram.DirtySyncCount, info.ExpectedDowntime);
                    try { await qmp.MigrateSetParametersAsync(new MigrationParameters { DowntimeLimit = raised }, ct).ConfigureAwait(false); }
                    catch (QmpException) { } // the migration just ended one way or the other
                }
                await Task.WhenAny(paused, Task.Delay(200, ct)).ConfigureAwait(false);
            }
            var status = (await paused.ConfigureAwait(false)).GetString("status");
            var switchover = Stopwatch.StartNew(); // the timeline of the pause, logged at the end
            if (status != QmpMigrationStatus.PreSwitchover)
            {
                var failed = await qmp.QueryMigrateAsync(ct).ConfigureAwait(false);
                string qemuSays = $"QEMU's migration {status}: {failed.ErrorDesc ?? "no reason given"}";
                Exception? broke = null;
                try { (_, _, broke) = await relay.WaitAsync(TimeSpan.FromSeconds(10), CancellationToken.None).ConfigureAwait(false); }
                catch (Exception e) when (e is TimeoutException or IOException or SocketException or OperationCanceledException) { }
                // The destination (or this relay) found the stream corrupt and ended it: its QEMU never got that chunk.
                if (broke is TunnelCorruptException corrupt)
                    throw new IOException($"{CorruptionText(corrupt, peer)}: the migration stopped before the hand-over ({qemuSays}); the VM keeps running here", corrupt);
                if (broke is not null && !await AnswersAsync(peer, vm.Definition, diskTotal).ConfigureAwait(false))
                    throw new IOException($"the link to {peer} broke during the memory copy ({JobManager.OneLine(broke.Message)}; {qemuSays}); the VM keeps running here");
                throw new IOException(qemuSays);
            }

            // The VM is paused with its disk flushed: hand the volume over (milliseconds), the last step before continue.
            // Everything else waits until QEMU was told to go on: every millisecond here is guest-visible.
            ct.ThrowIfCancellationRequested();
            // A stream already found corrupt cannot arrive: no hand-over (the undo resumes the VM here).
            if (relay is { IsCompletedSuccessfully: true } && relay.Result.TunnelFailure is TunnelCorruptException early)
                throw new IOException($"{CorruptionText(early, peer)}: the migration stopped before the hand-over; the VM keeps running here", early);
            Set(view with { Phase = VmMigrationPhases.Switchover });
            // Set before the hand-over can promote the destination, not after it did: a tunnel failing in between would
            // otherwise fail QEMU's migration and let it resume the guest here. If the hand-over does not take place, the
            // undo below cancels QEMU's migration (ending the drained stream) and resumes the guest itself.
            Volatile.Write(ref relayDrains, true);
            HandOverResult? handOver = null;
            // Paused: no more writes. The new primary's link back to this host is a sync one, as before the memory phase.
            replication.SetMigrationMirroring(volume, ReplicaMode.Sync);
            // QEMU may go on once the destination confirmed; this host steps down meanwhile (its writes stay stopped).
            // The continue is sent from the confirmation itself, not after a hop through the thread pool: it is in the pause.
            var promoted = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            using var guard = new CancellationTokenSource();
            Task? guarding = null, continuing = null;
            var finished = qmp.WaitForEventAsync(QmpEvents.Migration, e => QmpMigrationStatus.IsFinal(e.GetString("status")), CancellationToken.None);
            bool holdForTests = HoldRequested("after-handover");
            void ContinueQemu()
            {
                Volatile.Write(ref handedOver, true);
                // From here on the guest may run only at the destination (it holds the disk): a resume here is undone at once.
                guarding = KeepPausedAsync(vm, qemu, guard.Token);
                continuing = qmp.MigrateContinueAsync(ct: CancellationToken.None);
            }
            var handingOver = replication.HandOverAsync(volume, keepReplica: true, CancellationToken.None, () =>
            {
                if (!holdForTests) ContinueQemu();
                promoted.TrySetResult();
            });
            await Task.WhenAny(handingOver, promoted.Task).ConfigureAwait(false);
            if (!promoted.Task.IsCompleted)
            {
                try { handOver = await handingOver.ConfigureAwait(false); }
                catch (Exception ex) when (ex is Roam.Replication.ReplicationException or IOException or InvalidOperationException or TimeoutException)
                {
                    // Only a hand-over that certainly did not promote the destination may be undone (the VM resumes here).
                    // One that did, or may have (in doubt), leaves the disk's fate to the replication layer: the VM stays
                    // paused here until it is settled.
                    if (!await HandOverTookPlaceAsync(vm, volume, peer, ex.Message, v => Set(v), view).ConfigureAwait(false))
                        throw new IOException($"the disk hand-over to {peer} failed: {JobManager.OneLine(ex.Message)}; the VM keeps running here", ex);
                }
            }
            double handedOverMs = switchover.Elapsed.TotalMilliseconds;
            if (continuing is null)
            {
                // Settled the slow way (in doubt, then found promoted), or held by a test.
                Volatile.Write(ref handedOver, true);
                await HoldForTestsAsync("after-handover").ConfigureAwait(false);
                ContinueQemu();
            }
            await continuing!.ConfigureAwait(false);
            double continuedMs = switchover.Elapsed.TotalMilliseconds;
            if (handOver is null && promoted.Task.IsCompleted)
            {
                // The destination is primary whatever this host's stepping down says; a failure there is logged by it.
                try { handOver = await handingOver.ConfigureAwait(false); }
                catch (Exception ex) when (ex is Roam.Replication.ReplicationException or IOException or InvalidOperationException or TimeoutException) { }
            }
            if (handOver is not null) job.ReportHandOver(Roam.Daemon.Migration.MigrationViews.View(handOver));
            var end = (await finished.ConfigureAwait(false)).GetString("status");
            Log.VmSwitchover(logger, name, handedOverMs, continuedMs, switchover.Elapsed.TotalMilliseconds);
            var done = await qmp.QueryMigrateAsync(CancellationToken.None).ConfigureAwait(false);
            for (int i = 0; i < 100 && end == QmpMigrationStatus.Completed && !(done.TotalTime > 0); i++)
            {
                await Task.Delay(20, CancellationToken.None).ConfigureAwait(false);
                done = await qmp.QueryMigrateAsync(CancellationToken.None).ConfigureAwait(false);
            }
            if (end != QmpMigrationStatus.Completed)
            {
                Log.VmMigrationSafety(logger, name, $"QEMU's migration {end} after the disk hand-over ({done.ErrorDesc ?? "no reason given"}): keeping the VM paused here");
                await PauseAsync(qemu).ConfigureAwait(false);
            }
            long sent = 0;
            Exception? broken = null;
            try { (sent, _, broken) = await relay.WaitAsync(TimeSpan.FromSeconds(60), CancellationToken.None).ConfigureAwait(false); }
            catch (Exception e) when (e is TimeoutException or IOException or SocketException or OperationCanceledException) { broken = e; }
            // Closing the tunnel ends the stream at the destination, which then checks that its QEMU loaded the VM and runs.
            await tunnel.DisposeAsync().ConfigureAwait(false);

            // The destination decides: it holds the disk, and resumes the VM only if its QEMU loaded all of it. Until it
            // says so, the VM stays paused here, however long the link is down.
            var failure = await ConfirmAsync(vm, peer, diskTotal, broken, v => Set(v), view).ConfigureAwait(false);
            if (failure is not null)
            {
                // It did not arrive: the disk comes back, and the VM (paused here the whole time) resumes where it was.
                await TakeBackAsync(vm, peer, diskTotal, v => Set(v), view).ConfigureAwait(false);
                await guard.CancelAsync().ConfigureAwait(false);
                await guarding!.ConfigureAwait(false);
                await qmp.ContAsync(CancellationToken.None).ConfigureAwait(false);
                lock (_lock) vm.State = VmStates.Running;
                throw new HandedBackException($"the VM did not arrive at {peer} after the disk hand-over ({failure}); {peer} handed the disk back " +
                                              "and the VM runs here again");
            }
            await guard.CancelAsync().ConfigureAwait(false);
            await guarding!.ConfigureAwait(false);
            var final = view with
            {
                Phase = VmMigrationPhases.Completed,
                RamTotal = done.Ram?.Total ?? view.RamTotal,
                RamTransferred = done.Ram?.Transferred ?? view.RamTransferred,
                RamRemaining = 0,
                TotalSeconds = Math.Round(clock.Elapsed.TotalSeconds, 3),
                DowntimeMs = done.Downtime,
                WritePauseMs = handOver is null ? null : Math.Round(handOver.WritePause.TotalMilliseconds, 3),
                TunnelBytes = sent,
                Error = null,
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
            if (ex is HandedBackException) { }
            else if (!handedOver)
            {
                // (e) Undo: the VM keeps running here with its disk, the destination drops its QEMU and definition
                // (it sees the tunnel close without a completed migration).
                if (vm.Qemu is { } q && !q.HasExited)
                {
                    try { await q.Qmp.MigrateCancelAsync(CancellationToken.None).ConfigureAwait(false); } catch (Exception e) when (e is QmpException or IOException or TimeoutException) { }
                    await EnsureRunningAsync(q).ConfigureAwait(false);
                }
                if (replication.FindMigration(volume)?.Phase is Roam.Replication.Engine.VolumeMigrationPhase.Preparing or Roam.Replication.Engine.VolumeMigrationPhase.Copying
                    or Roam.Replication.Engine.VolumeMigrationPhase.InSync or Roam.Replication.Engine.VolumeMigrationPhase.Failed)
                {
                    try { await replication.AbortMigrationAsync(volume).ConfigureAwait(false); }
                    catch (Exception e) when (e is IOException or InvalidOperationException or Roam.Replication.ReplicationException) { error += $" (aborting the volume migration failed: {e.Message})"; }
                }
                lock (_lock) if (vm.Qemu is not null) vm.State = VmStates.Running;
            }
            else
            {
                // Not reached by a lost link (ConfirmAsync waits it out), but by a local failure after the hand-over:
                // the VM is kept paused here, never resumed, since the disk is at the destination.
                if (vm.Qemu is { } q && !q.HasExited) await PauseAsync(q).ConfigureAwait(false);
                error = $"the disk was handed over to {peer} but the migration did not finish: {error}; the VM is kept paused here " +
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
            MemoryPasses = ram.DirtySyncCount,
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

    /// <summary>Whether the peer answers a question through the peer channel (within a few seconds).</summary>
    private async Task<bool> AnswersAsync(string peer, VmDefinition definition, long size)
    {
        try
        {
            await AskAsync(peer, new VmTunnelRequest(VmTunnelOp.Status, definition, size, null), TimeSpan.FromSeconds(5), CancellationToken.None).ConfigureAwait(false);
            return true;
        }
        catch (VmException) { return false; }
    }

    /// <summary>
    /// After a hand-over that threw: true if the destination was promoted anyway (the migration goes on), false if it
    /// certainly was not (the VM may resume here). While that is in doubt the VM stays paused (QEMU sits in
    /// pre-switchover) and the replication layer asks the destination until it knows.
    /// </summary>
    private async Task<bool> HandOverTookPlaceAsync(VmRuntime vm, string volume, string peer, string error, Action<VmMigrationView> set, VmMigrationView view)
    {
        bool said = false;
        while (true)
        {
            var status = replication.GetStatus(volume);
            if (status.Role == VolumeRole.Replica)
            {
                Log.VmMigrationSafety(logger, vm.Definition.Name, $"the disk hand-over reported a failure ({error}) but {peer} took over: finishing the migration");
                return true;
            }
            if (status.HandOverPeer is null) return false;
            if (!said)
            {
                Log.VmMigrationSafety(logger, vm.Definition.Name, $"the disk hand-over to {peer} is in doubt ({error}): the VM stays paused here until it is settled");
                said = true;
            }
            set(view with
            {
                Phase = VmMigrationPhases.Switchover,
                Error = $"the disk hand-over to {peer} is in doubt ({JobManager.OneLine(error)}): the VM stays paused here until {peer} says whether it took over",
            });
            await Task.Delay(500).ConfigureAwait(false);
        }
    }

    /// <summary>
    /// Waits for the destination's word on the VM: null once it runs there, else why it did not arrive. The VM stays
    /// paused here meanwhile, for as long as the destination cannot be asked: it holds the disk, so it may be running.
    /// </summary>
    private async Task<string?> ConfirmAsync(VmRuntime vm, string peer, long size, Exception? streamBroken, Action<VmMigrationView> set, VmMigrationView view)
    {
        var name = vm.Definition.Name;
        string? said = null;
        while (true)
        {
            string waiting;
            try
            {
                var reply = await AskAsync(peer, new VmTunnelRequest(VmTunnelOp.Status, vm.Definition, size, null), TimeSpan.FromSeconds(10), CancellationToken.None)
                    .ConfigureAwait(false);
                if (reply.Status == VmTunnelStatus.Ok) return null;
                if (reply.Status is VmTunnelStatus.Failed or VmTunnelStatus.Refused) return reply.Error ?? "no reason given";
                waiting = $"{peer} is still loading it";
            }
            catch (VmException ex) { waiting = $"{peer} does not answer ({JobManager.OneLine(ex.Message)})"; }
            if (streamBroken is not null) waiting += $"; the memory stream broke: {JobManager.OneLine(streamBroken.Message)}";
            string note = $"waiting for {peer} to confirm that the VM runs there: {waiting}; the VM stays paused here (its disk is at {peer})";
            if (said is null) Log.VmMigrationSafety(logger, name, note);
            said = note;
            set(view with { Phase = VmMigrationPhases.Confirming, Error = note });
            await Task.Delay(500).ConfigureAwait(false);
        }
    }

    /// <summary>The VM did not arrive: asks the destination for the disk back until this host is its primary again.</summary>
    private async Task TakeBackAsync(VmRuntime vm, string peer, long size, Action<VmMigrationView> set, VmMigrationView view)
    {
        var volume = vm.Definition.Volume;
        while (true)
        {
            string waiting;
            try
            {
                var reply = await AskAsync(peer, new VmTunnelRequest(VmTunnelOp.Return, vm.Definition, size, null), TimeSpan.FromSeconds(180), CancellationToken.None)
                    .ConfigureAwait(false);
                waiting = reply.Ok ? "it handed the disk over, this host does not see itself primary yet" : reply.Error ?? "refused";
            }
            catch (VmException ex) { waiting = $"{peer} does not answer ({JobManager.OneLine(ex.Message)})"; }
            var status = replication.GetStatus(volume);
            if (status.Role == VolumeRole.Primary && status.HandOverPeer is null && !status.WritesRefused) return;
            string note = $"the VM did not arrive at {peer}; asking {peer} to hand its disk back: {waiting}; the VM stays paused here";
            Log.VmMigrationSafety(logger, vm.Definition.Name, note);
            set(view with { Phase = VmMigrationPhases.Confirming, Error = note });
            await Task.Delay(1000).ConfigureAwait(false);
        }
    }

    /// <summary>Until cancelled: the guest is paused again whenever QEMU resumes it (QEMU resumes a guest whose migration failed).</summary>
    private async Task KeepPausedAsync(VmRuntime vm, QemuProcess qemu, CancellationToken cancellationToken)
    {
        while (!cancellationToken.IsCancellationRequested && !qemu.HasExited)
        {
            try { await qemu.Qmp.WaitForEventAsync(QmpEvents.Resume, null, cancellationToken).ConfigureAwait(false); }
            catch (OperationCanceledException) { return; }
            catch (Exception e) when (e is QmpException or IOException or ObjectDisposedException) { return; }
            Log.VmMigrationSafety(logger, vm.Definition.Name, "QEMU resumed the guest after the disk hand-over: pausing it again");
            await PauseAsync(qemu).ConfigureAwait(false);
        }
    }

    /// <summary>Pauses the guest once QEMU's migration is over (QEMU resumes a guest when its migration fails).</summary>
    private static async Task PauseAsync(QemuProcess qemu)
    {
        for (int i = 0; i < 100; i++)
        {
            try
            {
                var migrate = await qemu.Qmp.QueryMigrateAsync(CancellationToken.None).ConfigureAwait(false);
                var status = await qemu.Qmp.QueryStatusAsync(CancellationToken.None).ConfigureAwait(false);
                if (status.Running) await qemu.Qmp.StopAsync(CancellationToken.None).ConfigureAwait(false);
                if (migrate.Status is not (QmpMigrationStatus.Cancelling or QmpMigrationStatus.Active or QmpMigrationStatus.PreSwitchover
                    or QmpMigrationStatus.Setup or QmpMigrationStatus.Device)) return;
            }
            catch (Exception e) when (e is QmpException or IOException or TimeoutException or ObjectDisposedException) { return; }
            await Task.Delay(20).ConfigureAwait(false);
        }
    }

    /// <summary>How a migration's error names a corrupt memory stream (the destination's, reported back as its reason).</summary>
    internal static string CorruptionText(TunnelCorruptException corrupt, string peer) =>
        $"memory stream corrupt at chunk {corrupt.Chunk} ({corrupt.ReasonText}{(corrupt.FoundByPeer ? $", found by {peer}" : "")})";

    private static int _corruptionsInjected;

    /// <summary>
    /// Fault injection for the end-to-end tests, off unless roamd's environment sets ROAM_TEST_CORRUPT_TUNNEL:
    /// "after-bytes:N" (the chunk of the outgoing memory stream that reaches past byte N) or "after-handover" (the first
    /// chunk sent once the disk was handed over) has one payload bit flipped after its checksum was computed. Only one
    /// migration per roamd process is corrupted, so a test's later migration runs clean.
    /// </summary>
    private static Func<long, bool>? CorruptionForTests(Func<bool> handedOver)
    {
        var spec = Environment.GetEnvironmentVariable("ROAM_TEST_CORRUPT_TUNNEL");
        if (string.IsNullOrEmpty(spec)) return null;
        Func<long, bool> when;
        if (spec == "after-handover") when = _ => handedOver();
        else if (spec.StartsWith("after-bytes:", StringComparison.Ordinal)
                 && long.TryParse(spec["after-bytes:".Length..], System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out long n))
            when = offset => offset > n;
        else return null;
        return offset => when(offset) && Interlocked.CompareExchange(ref _corruptionsInjected, 1, 0) == 0;
    }

    /// <summary>
    /// Fault injection for the end-to-end tests, off unless roamd's environment sets ROAM_TEST_HOLD_AT=STEP:PATH: at STEP
    /// ("after-handover": the disk handed over, QEMU not yet told to finish) this roamd creates PATH and waits until it
    /// is deleted, so a test can cut a link at exactly that point.
    /// </summary>
    private static bool HoldRequested(string step) =>
        Environment.GetEnvironmentVariable("ROAM_TEST_HOLD_AT") is { } hold && hold.StartsWith(step + ":", StringComparison.Ordinal);

    private static async Task HoldForTestsAsync(string step)
    {
        if (!HoldRequested(step)) return;
        var hold = Environment.GetEnvironmentVariable("ROAM_TEST_HOLD_AT")!;
        var path = hold[(step.Length + 1)..];
        await File.WriteAllTextAsync(path, step).ConfigureAwait(false);
        while (File.Exists(path)) await Task.Delay(20).ConfigureAwait(false);
    }
}

/// <summary>
/// The rate of the bytes a migration puts on the link (memory stream and disk mirror, as sent by this roamd), over the
/// last second or so: what the link carries while both fill it.
/// </summary>
internal sealed class LinkRate
{
    private readonly Queue<(long At, long Bytes)> _samples = new();

    /// <summary>Adds the byte count sent so far; returns the rate over the samples of the last ~second (0 at first).</summary>
    public long Update(long bytesSoFar)
    {
        long now = Stopwatch.GetTimestamp();
        _samples.Enqueue((now, bytesSoFar));
        while (_samples.Count > 2 && Stopwatch.GetElapsedTime(_samples.Peek().At, now) > TimeSpan.FromSeconds(1.2)) _samples.Dequeue();
        var (at, bytes) = _samples.Peek();
        double seconds = Stopwatch.GetElapsedTime(at, now).TotalSeconds;
        return seconds < 0.1 ? 0 : (long)((bytesSoFar - bytes) / seconds);
    }
}

/// <summary>A VM migration that failed after the disk hand-over, with the disk given back and the VM running here again.</summary>
internal sealed class HandedBackException(string message) : IOException(message);
