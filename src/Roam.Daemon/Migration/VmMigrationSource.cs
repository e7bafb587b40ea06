using System.Diagnostics;
using System.Net.Sockets;
using Microsoft.Extensions.Logging;
using Roam.Control;
using Roam.Daemon.Jobs;
using Roam.Daemon.Vms;
using Roam.Hypervisor.Qmp;
using Roam.Peers.Tunnel;
using Roam.Replication.Engine;
using QmpMigrationStatus = Roam.Hypervisor.Qmp.MigrationStatus;

namespace Roam.Daemon.Migration;

// Source side of `roam vm migrate`: disk first (synchronous mirroring until in sync), then memory through a tunnel
// (QEMU -> unix socket -> this roamd -> mutual-TLS peer connection -> destination roamd -> its QEMU), paused before
// switch-over; the disk is handed over last, then QEMU finishes. Before the hand-over everything can be undone.

/// <summary>
/// One VM migration at its source, phase by phase (<see cref="VmMigrationPhase"/>). A failure is undone by whoever owns
/// the roll-back in the phase it happened in (<see cref="VmMigrationPhaseRules.RollbackOwner"/>). The caller holds the
/// VM's gate; <see cref="RunAsync"/> releases it.
/// </summary>
internal sealed partial class VmMigrationSource(VmMigration m, IVmHost host, ReplicationService replication, VmPeerChannel peers, ILogger logger)
{
    /// <summary>The disk backlog's bound in the memory phase (see SetMigrationMirroring): it drains inside the pause,
    /// with the link to itself by then, in about half of this when the memory took half the link before.</summary>
    internal static readonly TimeSpan MemoryPhaseDiskLag = TimeSpan.FromMilliseconds(50);

    /// <summary>How long a VM migration's disk phase waits for a destination whose link is down before it fails.</summary>
    public static readonly TimeSpan DestinationLossTimeout = TimeSpan.FromSeconds(15);

    public async Task RunAsync(CancellationToken ct)
    {
        try
        {
            await PrepareAsync(ct).ConfigureAwait(false);
            await CopyDiskAsync(ct).ConfigureAwait(false);
            await MigrateMemoryAsync(ct).ConfigureAwait(false);
            await HandOverAsync(ct).ConfigureAwait(false);
            await FinishMemoryAsync().ConfigureAwait(false);
            await ConfirmAsync().ConfigureAwait(false);
            await CompleteAsync().ConfigureAwait(false);
        }
        catch (Exception ex)
        {
            string error = await RollBackAsync(ex).ConfigureAwait(false);
            throw new IOException(error, ex);
        }
        finally
        {
            if (m.Tunnel is not null) await m.Tunnel.DisposeAsync().ConfigureAwait(false);
            m.Listener?.Dispose();
            VmSocketPaths.DeleteStale(m.SocketPath);
            m.Guard.Dispose();
            m.Vm.Gate.Release();
        }
    }

    /// <summary>Preparing: the VM is still running here; the destination gets the boot files it lacks.</summary>
    private async Task PrepareAsync(CancellationToken ct)
    {
        var vm = m.Vm;
        if (vm.Qemu is not { } qemu || vm.State != VmStates.Running) throw new IOException($"VM '{m.Name}' is not running any more");
        m.Qemu = qemu;
        vm.State = VmStates.Migrating;
        m.MoveTo(VmMigrationPhase.Preparing);

        // (0) The kernel and initrd, if the destination lacks them: its QEMU reads them when it starts.
        await peers.SendBootFilesAsync(vm, m.Peer, m.DiskTotal, m.BootFiles, ct).ConfigureAwait(false);
    }

    /// <summary>Copying the disk, until it is in sync with the destination's replica.</summary>
    private async Task CopyDiskAsync(CancellationToken ct)
    {
        m.MoveTo(VmMigrationPhase.CopyingDisk);
        // (a) Storage: copy the disk while the VM writes; from in-sync on, every write is mirrored synchronously.
        // The disk copy keeps to the same limit as the memory (it comes first, so they never overlap); without
        // --bandwidth none, not what an earlier migration asked for.
        await replication.PrepareMigrationAsync(m.Volume, m.Peer, m.Bandwidth.ForDiskCopy, ct).ConfigureAwait(false);
        using (var polling = CancellationTokenSource.CreateLinkedTokenSource(ct))
        using (var lost = CancellationTokenSource.CreateLinkedTokenSource(ct))
        {
            // A VM migration does not wait for a destination that went away (a volume migration may): after
            // DestinationLossTimeout without a link, it fails and the VM goes on here.
            var poll = Task.Run(async () =>
            {
                var away = Stopwatch.StartNew();
                while (!polling.IsCancellationRequested)
                {
                    if (replication.FindMigration(m.Volume) is { } s)
                    {
                        m.Job.ReportMigration(MigrationViews.View(s));
                        m.Report(v => v with { DiskBytesTotal = s.BytesTotal, DiskBytesDone = s.BytesDone, DiskBytesOnWire = s.BytesOnWire });
                    }
                    var link = replication.GetStatus(m.Volume).Replicas.FirstOrDefault(r => r.Peer == m.Peer);
                    if (link?.State is ReplicaState.Syncing or ReplicaState.InSync) away.Restart();
                    else if (away.Elapsed > DestinationLossTimeout) { await lost.CancelAsync().ConfigureAwait(false); return; }
                    await Task.Delay(200, polling.Token).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
                }
            }, CancellationToken.None);
            try { await replication.WaitInSyncAsync(m.Volume, lost.Token).ConfigureAwait(false); }
            catch (OperationCanceledException) when (lost.IsCancellationRequested && !ct.IsCancellationRequested)
            {
                throw new InvalidOperationException(
                    $"lost the destination {m.Peer} during the disk copy (no link for {DestinationLossTimeout.TotalSeconds:0} s); the VM keeps running here");
            }
            finally
            {
                await polling.CancelAsync().ConfigureAwait(false);
                await poll.ConfigureAwait(false);
            }
        }
        m.SyncedDisk = replication.GetMigration(m.Volume);
        m.Job.ReportMigration(MigrationViews.View(m.SyncedDisk));
    }

    /// <summary>Migrating the memory: the destination's QEMU waits for it, QEMU's pre-copy goes through the tunnel until QEMU pauses before the switch-over.</summary>
    private async Task MigrateMemoryAsync(CancellationToken ct)
    {
        var synced = m.SyncedDisk!;
        m.MoveTo(VmMigrationPhase.MigratingMemory,
            v => v with { DiskBytesTotal = synced.BytesTotal, DiskBytesDone = synced.BytesDone, DiskBytesOnWire = synced.BytesOnWire });

        // The disk is in sync: while the memory moves, writes are shipped in order without the guest waiting for the
        // link (it is full of memory pages); the hand-over catches up on what is in flight, inside the pause. So the
        // backlog is bounded in time: on a link too slow for both the memory and the guest's writes, a write waits
        // for its acknowledgement once the oldest is older than the bound, and the pause never holds more than that.
        replication.SetMigrationMirroring(m.Volume, ReplicaMode.Async, MemoryPhaseDiskLag);

        await OpenIncomingAsync(ct).ConfigureAwait(false);
        StartRelay(ct);
        await PreCopyAsync(ct).ConfigureAwait(false);
    }

    /// <summary>(b) The destination defines the VM and starts its QEMU with -incoming, on its replica's export.</summary>
    private async Task OpenIncomingAsync(CancellationToken ct)
    {
        var vm = m.Vm;
        m.Tunnel = await replication.OpenTunnelAsync(m.Peer, VmTunnelJson.Serialize(
            new VmTunnelRequest(VmTunnelOp.Incoming, vm.Definition, m.DiskTotal, vm.Accelerator,
                replication.Options.Compression == WireCompression.Off ? null : TunnelCompression.Lz4, m.BootFiles, TunnelChunks.Checksum,
                // Where its NIC is here: a destination on another network makes the guest see its link go down and up.
                NetworkThere: vm.Definition.Nic is { } nic ? host.NetworkHere(nic) : null)),
            TimeSpan.FromSeconds(60), ct).ConfigureAwait(false);
        var reply = VmPeerChannel.ParseReply(m.Peer, m.Tunnel.Reply);
        if (!reply.Ok) throw new IOException($"{m.Peer} could not prepare the VM: {reply.Error}");
        // The stream goes only as chunks the destination verifies before they reach its QEMU.
        if (reply.StreamChecksum != TunnelChunks.Checksum)
            throw new IOException($"{m.Peer} did not agree to verify the memory stream's checksums ({TunnelChunks.Checksum}; it answered " +
                                  $"{(reply.StreamChecksum is { } c ? $"'{c}'" : "none")}: is its roamd another version?); the VM keeps running here");
        m.Compressed = reply.StreamCompression == TunnelCompression.Lz4;
    }

    /// <summary>(c) QEMU migrates to a unix socket only this roamd serves; the bytes go on inside the peer connection.</summary>
    private void StartRelay(CancellationToken ct)
    {
        var listener = m.Listener = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        VmSocketPaths.DeleteStale(m.SocketPath); // left by a roamd killed mid-migration
        listener.Bind(new UnixDomainSocketEndPoint(m.SocketPath));
        if (!OperatingSystem.IsWindows()) File.SetUnixFileMode(m.SocketPath, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        listener.Listen(1);
        var open = m.Tunnel!;
        // Once the disk is handed over, a broken tunnel must not fail QEMU's migration here: QEMU resumes a guest
        // whose migration failed, and this host no longer holds its disk. The relay then swallows the rest of the
        // stream, QEMU completes and stays paused, and the destination's word decides (see ConfirmAsync). It drains
        // from the start of the hand-over on (VmMigrationPhaseRules.RelayDrains), read from the phase (volatile).
        m.Relay = Task.Run(async () =>
        {
            using var local = await listener.AcceptAsync(ct).ConfigureAwait(false);
            return await TunnelRelay.RunCheckedAsync(open.Transport, local, localEndsIt: true, CancellationToken.None, open.ShutdownSendAsync,
                () => m.Phase.RelayDrains(), m.Compressed, VmMigrationTestHooks.CorruptionForTests(() => m.Phase.DiskHandedOver()), m.Meter)
                .ConfigureAwait(false);
        }, CancellationToken.None);
    }

    /// <summary>(d) Pre-copy, paused before switch-over.</summary>
    private async Task PreCopyAsync(CancellationToken ct)
    {
        var qmp = m.Qemu!.Qmp;
        var relay = m.Relay!;
        var linkRate = new LinkRate();
        await qmp.MigrateSetCapabilitiesAsync([new(MigrationCapability.PauseBeforeSwitchover, true), new(MigrationCapability.Events, true)], ct).ConfigureAwait(false);
        // Always both: QEMU keeps parameters across migrations, so a retry without --bandwidth must not inherit an earlier limit.
        await qmp.MigrateSetParametersAsync(new MigrationParameters
        {
            MaxBandwidth = m.Bandwidth.ForQemu,
            DowntimeLimit = m.Downtime.Initial,
        }, ct).ConfigureAwait(false);
        var paused = qmp.WaitForEventAsync(QmpEvents.Migration,
            e => e.GetString("status") is QmpMigrationStatus.PreSwitchover or QmpMigrationStatus.Failed or QmpMigrationStatus.Cancelled, ct);
        await qmp.MigrateAsync("unix:" + m.SocketPath, ct).ConfigureAwait(false);
        while (!paused.IsCompleted)
        {
            if (relay.IsFaulted) await relay.ConfigureAwait(false);
            var info = await qmp.QueryMigrateAsync(ct).ConfigureAwait(false);
            var backlog = replication.GetStatus(m.Volume).Replicas.FirstOrDefault(r => r.Peer == m.Peer);
            long linkBytesPerSecond = linkRate.Update(m.Meter.Sent + (backlog?.BytesSent ?? 0));
            ReportMemory(info, backlog is null ? 0 : backlog.PendingBytes + backlog.BytesToResync,
                backlog is null ? 0 : Math.Round(backlog.Lag.TotalMilliseconds, 1), linkBytesPerSecond);
            if (info.Ram is { } ram && m.Downtime.After(ram.DirtySyncCount) is { } raised)
            {
                Log.VmDowntimeRaised(logger, m.Name, raised, ram.DirtySyncCount, info.ExpectedDowntime);
                try { await qmp.MigrateSetParametersAsync(new MigrationParameters { DowntimeLimit = raised }, ct).ConfigureAwait(false); }
                catch (QmpException) { } // the migration just ended one way or the other
            }
            await Task.WhenAny(paused, Task.Delay(200, ct)).ConfigureAwait(false);
        }
        var status = (await paused.ConfigureAwait(false)).GetString("status");
        if (status != QmpMigrationStatus.PreSwitchover) throw await MemoryCopyFailedAsync(status, ct).ConfigureAwait(false);
    }

    /// <summary>Why QEMU's pre-copy ended without pausing before the switch-over, as the error to fail with.</summary>
    private async Task<Exception> MemoryCopyFailedAsync(string? status, CancellationToken ct)
    {
        var failed = await m.Qemu!.Qmp.QueryMigrateAsync(ct).ConfigureAwait(false);
        string qemuSays = $"QEMU's migration {status}: {failed.ErrorDesc ?? "no reason given"}";
        Exception? broke = null;
        try { (_, _, broke) = await m.Relay!.WaitAsync(TimeSpan.FromSeconds(10), CancellationToken.None).ConfigureAwait(false); }
        catch (Exception e) when (e is TimeoutException or IOException or SocketException or OperationCanceledException) { }
        // The destination (or this relay) found the stream corrupt and ended it: its QEMU never got that chunk.
        if (broke is TunnelCorruptException corrupt)
            return new IOException($"{VmMigration.CorruptionText(corrupt, m.Peer)}: the migration stopped before the hand-over ({qemuSays}); the VM keeps running here", corrupt);
        if (broke is not null && !await peers.AnswersAsync(m.Peer, m.Vm.Definition, m.DiskTotal).ConfigureAwait(false))
            return new IOException($"the link to {m.Peer} broke during the memory copy ({JobManager.OneLine(broke.Message)}; {qemuSays}); the VM keeps running here");
        return new IOException(qemuSays);
    }

    private void ReportMemory(MigrationInfo info, long diskBacklogBytes, double diskLagMs, long linkBytesPerSecond)
    {
        if (info.Ram is not { } ram) return;
        m.Report(v => v with
        {
            DiskBacklogBytes = diskBacklogBytes,
            DiskLagMs = diskLagMs,
            LinkBytesPerSecond = linkBytesPerSecond,
            RamTotal = ram.Total,
            RamTransferred = ram.Transferred,
            RamRemaining = ram.Remaining,
            DirtyPagesRate = ram.DirtyPagesRate,
            MemoryPasses = ram.DirtySyncCount,
            Mbps = ram.Mbps,
            ExpectedDowntimeMs = info.ExpectedDowntime,
        });
        long diskTotal = m.DiskTotal, diskOnWire = m.SyncedDisk!.BytesOnWire;
        m.Job.ReportMigration(new MigrationView(m.Job.Volume, m.Peer, "Memory", diskTotal + ram.Total,
            diskTotal + ram.Transferred, ram.Remaining, diskOnWire + ram.Transferred, ram.Mbps * 1e6 / 8, null, null));
    }
}

/// <summary>A VM migration that failed after the disk hand-over, with the disk given back and the VM running here again.</summary>
internal sealed class HandedBackException(string message) : IOException(message);
