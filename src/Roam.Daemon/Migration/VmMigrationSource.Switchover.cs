using System.Diagnostics;
using System.Net.Sockets;
using Microsoft.Extensions.Logging;
using Roam.Control;
using Roam.Daemon.Jobs;
using Roam.Hypervisor.Qmp;
using Roam.Peers.Tunnel;
using Roam.Replication.Engine;
using QmpMigrationStatus = Roam.Hypervisor.Qmp.MigrationStatus;

namespace Roam.Daemon.Migration;

// The source from QEMU's pause before the switch-over on: the disk hand-over, QEMU finishing, the destination's word,
// and the roll-back by whoever owns it.
internal sealed partial class VmMigrationSource
{
    /// <summary>Paused for the switch-over, then handing the disk over; QEMU is told to go on once the destination is primary.</summary>
    private async Task HandOverAsync(CancellationToken ct)
    {
        m.Switchover = Stopwatch.StartNew(); // the timeline of the pause, logged at the end
        var relay = m.Relay!;
        // The VM is paused with its disk flushed: hand the volume over (milliseconds), the last step before continue.
        // Everything else waits until QEMU was told to go on: every millisecond here is guest-visible.
        ct.ThrowIfCancellationRequested();
        // A stream already found corrupt cannot arrive: no hand-over (the undo resumes the VM here).
        if (relay is { IsCompletedSuccessfully: true } && relay.Result.TunnelFailure is TunnelCorruptException early)
            throw new IOException($"{VmMigration.CorruptionText(early, m.Peer)}: the migration stopped before the hand-over; the VM keeps running here", early);
        m.MoveTo(VmMigrationPhase.PausedForSwitchover);
        // Set before the hand-over can promote the destination, not after it did (the relay drains from HandingOver on): a
        // tunnel failing in between would otherwise fail QEMU's migration and let it resume the guest here. If the
        // hand-over does not take place, the undo cancels QEMU's migration (ending the drained stream) and resumes the
        // guest itself.
        m.MoveTo(VmMigrationPhase.HandingOver);
        // Paused: no more writes. The new primary's link back to this host is a sync one, as before the memory phase.
        replication.SetMigrationMirroring(m.Volume, ReplicaMode.Sync);
        // QEMU may go on once the destination confirmed; this host steps down meanwhile (its writes stay stopped).
        // The continue is sent from the confirmation itself, not after a hop through the thread pool: it is in the pause.
        var promoted = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        m.Finished = m.Qemu!.Qmp.WaitForEventAsync(QmpEvents.Migration, e => QmpMigrationStatus.IsFinal(e.GetString("status")), CancellationToken.None);
        bool holdForTests = VmMigrationTestHooks.HoldRequested("after-handover");
        var handingOver = replication.HandOverAsync(m.Volume, keepReplica: true, CancellationToken.None, () =>
        {
            if (!holdForTests) ContinueQemu();
            promoted.TrySetResult();
        });
        await Task.WhenAny(handingOver, promoted.Task).ConfigureAwait(false);
        if (!promoted.Task.IsCompleted)
        {
            try { m.HandOver = await handingOver.ConfigureAwait(false); }
            catch (Exception ex) when (ex is Roam.Replication.ReplicationException or IOException or InvalidOperationException or TimeoutException)
            {
                // Only a hand-over that certainly did not promote the destination may be undone (the VM resumes here).
                // One that did, or may have (in doubt), leaves the disk's fate to the replication layer: the VM stays
                // paused here until it is settled.
                if (!await HandOverTookPlaceAsync(ex.Message).ConfigureAwait(false))
                    throw new IOException($"the disk hand-over to {m.Peer} failed: {JobManager.OneLine(ex.Message)}; the VM keeps running here", ex);
            }
        }
        m.HandedOverMs = m.Switchover.Elapsed.TotalMilliseconds;
        if (m.Continuing is null)
        {
            // Settled the slow way (in doubt, then found promoted), or held by a test.
            m.MoveTo(VmMigrationPhase.HandedOver);
            await VmMigrationTestHooks.HoldForTestsAsync("after-handover").ConfigureAwait(false);
            ContinueQemu();
        }
        await m.Continuing!.ConfigureAwait(false);
        m.ContinuedMs = m.Switchover.Elapsed.TotalMilliseconds;
        if (m.HandOver is null && promoted.Task.IsCompleted)
        {
            // The destination is primary whatever this host's stepping down says; a failure there is logged by it.
            try { m.HandOver = await handingOver.ConfigureAwait(false); }
            catch (Exception ex) when (ex is Roam.Replication.ReplicationException or IOException or InvalidOperationException or TimeoutException) { }
        }
        if (m.HandOver is not null) m.Job.ReportHandOver(MigrationViews.View(m.HandOver));
    }

    /// <summary>Handed over: the destination holds the disk as primary, and QEMU is told to finish.</summary>
    private void ContinueQemu()
    {
        m.MoveTo(VmMigrationPhase.HandedOver);
        var qemu = m.Qemu!;
        // From here on the guest may run only at the destination (it holds the disk): a resume here is undone at once.
        m.Guarding = KeepPausedAsync(qemu, m.Guard.Token);
        m.Continuing = qemu.Qmp.MigrateContinueAsync(ct: CancellationToken.None);
    }

    /// <summary>QEMU sends the last of the memory and finishes; the relay ends and the tunnel closes.</summary>
    private async Task FinishMemoryAsync()
    {
        var qemu = m.Qemu!;
        var qmp = qemu.Qmp;
        var end = (await m.Finished!.ConfigureAwait(false)).GetString("status");
        Log.VmSwitchover(logger, m.Name, m.HandedOverMs, m.ContinuedMs, m.Switchover!.Elapsed.TotalMilliseconds);
        var done = await qmp.QueryMigrateAsync(CancellationToken.None).ConfigureAwait(false);
        for (int i = 0; i < 100 && end == QmpMigrationStatus.Completed && !(done.TotalTime > 0); i++)
        {
            await Task.Delay(20, CancellationToken.None).ConfigureAwait(false);
            done = await qmp.QueryMigrateAsync(CancellationToken.None).ConfigureAwait(false);
        }
        m.Done = done;
        if (end != QmpMigrationStatus.Completed)
        {
            Log.VmMigrationSafety(logger, m.Name, $"QEMU's migration {end} after the disk hand-over ({done.ErrorDesc ?? "no reason given"}): keeping the VM paused here");
            await VmQemuControl.PauseAsync(qemu).ConfigureAwait(false);
        }
        long sent = 0;
        Exception? broken = null;
        try { (sent, _, broken) = await m.Relay!.WaitAsync(TimeSpan.FromSeconds(60), CancellationToken.None).ConfigureAwait(false); }
        catch (Exception e) when (e is TimeoutException or IOException or SocketException or OperationCanceledException) { broken = e; }
        m.TunnelBytes = sent;
        m.StreamBroken = broken;
        // Closing the tunnel ends the stream at the destination, which then checks that its QEMU loaded the VM and runs.
        await m.Tunnel!.DisposeAsync().ConfigureAwait(false);
    }

    /// <summary>Confirming (or taking the disk back): the destination decides whether the VM runs there.</summary>
    private async Task ConfirmAsync()
    {
        // The destination decides: it holds the disk, and resumes the VM only if its QEMU loaded all of it. Until it
        // says so, the VM stays paused here, however long the link is down.
        var failure = await DestinationWordAsync().ConfigureAwait(false);
        if (failure is null) return;
        // It did not arrive: the disk comes back, and the VM (paused here the whole time) resumes where it was.
        await TakeBackAsync().ConfigureAwait(false);
        await m.Guard.CancelAsync().ConfigureAwait(false);
        await m.Guarding!.ConfigureAwait(false);
        await m.Qemu!.Qmp.ContAsync(CancellationToken.None).ConfigureAwait(false);
        lock (host.Lock) m.Vm.State = VmStates.Running;
        throw new HandedBackException($"the VM did not arrive at {m.Peer} after the disk hand-over ({failure}); {m.Peer} handed the disk back " +
                                      "and the VM runs here again");
    }

    /// <summary>Completed: the VM runs at the destination; the source QEMU quits and the VM is forgotten here.</summary>
    private async Task CompleteAsync()
    {
        await m.Guard.CancelAsync().ConfigureAwait(false);
        await m.Guarding!.ConfigureAwait(false);
        var done = m.Done!;
        var handOver = m.HandOver;
        m.MoveTo(VmMigrationPhase.Completed, v => v with
        {
            RamTotal = done.Ram?.Total ?? v.RamTotal,
            RamTransferred = done.Ram?.Transferred ?? v.RamTransferred,
            RamRemaining = 0,
            TotalSeconds = Math.Round(m.Clock.Elapsed.TotalSeconds, 3),
            DowntimeMs = done.Downtime,
            WritePauseMs = handOver is null ? null : Math.Round(handOver.WritePause.TotalMilliseconds, 3),
            TunnelBytes = m.TunnelBytes,
            Error = null,
        });
        var final = m.View;
        m.Job.ReportMigration(new MigrationView(m.Name, m.Peer, "Completed", m.DiskTotal + final.RamTransferred, m.DiskTotal + final.RamTransferred, 0,
            final.DiskBytesOnWire + m.TunnelBytes, 0, null, null));

        // The source QEMU is done: quit it; this host keeps the volume as a warm replica, not the VM.
        m.Vm.ExitExpected = true;
        await m.Qemu!.QuitAsync(TimeSpan.FromSeconds(5), CancellationToken.None).ConfigureAwait(false);
        host.Departed(m.Vm, final);
        Log.VmMigrated(logger, m.Name, m.Peer, final.TotalSeconds ?? 0, final.DowntimeMs, final.DiskBytesOnWire, final.RamTransferred);
    }

    /// <summary>
    /// After a failure: undone by the rollback owner of the phase it came in (<see cref="VmMigrationPhaseRules.RollbackOwner"/>),
    /// the outcome published; returns the error to fail the job with.
    /// </summary>
    private async Task<string> RollBackAsync(Exception ex)
    {
        string error = JobManager.OneLine(ex.Message);
        VmMigrationPhase outcome;
        if (ex is HandedBackException) outcome = VmMigrationPhase.HandedBack;
        else if (m.Phase.RollbackOwner() == RollbackOwner.Source)
        {
            error = await UndoAsync(error).ConfigureAwait(false);
            outcome = VmMigrationPhase.RolledBack;
        }
        else
        {
            // The destination owns it (or the migration had completed when the source QEMU's quit failed): the disk is there.
            error = await KeepPausedAfterFailureAsync(error).ConfigureAwait(false);
            outcome = VmMigrationPhase.Failed;
        }
        m.MoveTo(outcome, v => v with { Error = error, TotalSeconds = Math.Round(m.Clock.Elapsed.TotalSeconds, 3) });
        Log.VmMigrationFailed(logger, m.Name, m.Peer, error);
        return error;
    }

    /// <summary>Rolled back by the source, before the hand-over took place.</summary>
    private async Task<string> UndoAsync(string error)
    {
        var vm = m.Vm;
        // (e) Undo: the VM keeps running here with its disk, the destination drops its QEMU and definition
        // (it sees the tunnel close without a completed migration).
        if (vm.Qemu is { } q && !q.HasExited)
        {
            try { await q.Qmp.MigrateCancelAsync(CancellationToken.None).ConfigureAwait(false); } catch (Exception e) when (e is QmpException or IOException or TimeoutException) { }
            await VmQemuControl.EnsureRunningAsync(q).ConfigureAwait(false);
        }
        if (replication.FindMigration(m.Volume)?.Phase is VolumeMigrationPhase.Preparing or VolumeMigrationPhase.Copying
            or VolumeMigrationPhase.InSync or VolumeMigrationPhase.Failed)
        {
            try { await replication.AbortMigrationAsync(m.Volume).ConfigureAwait(false); }
            catch (Exception e) when (e is IOException or InvalidOperationException or Roam.Replication.ReplicationException) { error += $" (aborting the volume migration failed: {e.Message})"; }
        }
        lock (host.Lock) if (vm.Qemu is not null) vm.State = VmStates.Running;
        return error;
    }

    /// <summary>Failed after the hand-over: the guest kept paused, and the error, kept on the VM, that says where its disk is.</summary>
    private async Task<string> KeepPausedAfterFailureAsync(string error)
    {
        // Not reached by a lost link (ConfirmAsync waits it out), but by a local failure after the hand-over:
        // the VM is kept paused here, never resumed, since the disk is at the destination.
        if (m.Vm.Qemu is { } q && !q.HasExited) await VmQemuControl.PauseAsync(q).ConfigureAwait(false);
        error = $"the disk was handed over to {m.Peer} but the migration did not finish: {error}; the VM is kept paused here " +
                $"(its volume is {m.Peer}'s replica now); see roam vm show {m.Name} on {m.Peer}";
        lock (host.Lock) m.Vm.Error = error;
        return error;
    }
}
