using Microsoft.Extensions.Logging;
using Roam.Control;
using Roam.Daemon.Jobs;
using Roam.Daemon.Vms;
using Roam.Hypervisor.Qemu;
using Roam.Hypervisor.Qmp;
using Roam.Replication.Engine;
using QmpMigrationStatus = Roam.Hypervisor.Qmp.MigrationStatus;

namespace Roam.Daemon.Migration;

/// <summary>
/// A migration in flight dies with roamd (see VmService.Restart.cs). On start, a source QEMU still migrating is
/// cancelled and resumed here if this host still holds the primary; if the disk was already handed over, it is left
/// paused and reported (it must not write to a replica, and its memory may be the only copy of the guest). A
/// destination QEMU still waiting for its incoming migration is killed (the VM still runs at the source) and forgotten.
/// </summary>
internal sealed class VmMigrationRecovery(IVmHost host, ReplicationService replication, ILogger logger)
{
    /// <summary>Whether a QEMU that ended while roamd was away was a destination's whose disk was never handed over here.</summary>
    public bool IsCutArrival(VmRunRecord record, string volume) => record.Incoming && replication.GetStatus(volume).Role == VolumeRole.Replica;

    /// <summary>Forgets a VM whose arrival a roamd restart cut (see <see cref="IsCutArrival"/>).</summary>
    public void DropCutArrival(VmRuntime vm, int pid, QemuExit exit)
    {
        // A destination QEMU that ended (its stream broke with the old roamd) before the disk was handed over here:
        // the VM never ran on this host and still runs at the source. Forgotten, so that a later migration may come.
        Log.VmIncomingDropped(logger, vm.Definition.Name, pid);
        Log.VmDiedWhileAway(logger, vm.Definition.Name, pid, JobManager.OneLine(exit.StderrTail));
        host.Forget(vm);
    }

    /// <summary>
    /// Settles what an interrupted migration left of a QEMU just taken over: the notice to report with it ("" if none),
    /// or null if the QEMU was ended and the VM is done with here.
    /// </summary>
    public async Task<string?> SettleAsync(VmRuntime vm, VmRunRecord record, QemuProcess qemu, int pid)
    {
        var name = vm.Definition.Name;
        var volume = vm.Definition.Volume;
        var status = await qemu.Qmp.QueryStatusAsync().ConfigureAwait(false);
        var migration = await qemu.Qmp.QueryMigrateAsync().ConfigureAwait(false);
        var role = replication.GetStatus(volume).Role;
        if (status.Status == RunState.InMigrate || record.Incoming && status.Status is RunState.Prelaunch)
        {
            // A destination whose incoming migration never finished: the stream died with the old roamd.
            vm.ExitExpected = true;
            await qemu.KillAsync().ConfigureAwait(false);
            await qemu.DisposeAsync().ConfigureAwait(false);
            if (role == VolumeRole.Replica)
            {
                host.Forget(vm);
                Log.VmIncomingDropped(logger, name, pid);
            }
            else
            {
                host.DeleteRunRecord(name);
                lock (host.Lock)
                {
                    vm.State = VmStates.Crashed;
                    vm.Error = $"roamd stopped during this VM's incoming migration; its QEMU (pid {pid}) never received the VM and was killed";
                }
            }
            return null;
        }
        if (role == VolumeRole.Replica)
        {
            if (status.Status == RunState.PostMigrate)
            {
                // Migrated away completely; roamd died before ending the source QEMU.
                vm.ExitExpected = true;
                await qemu.QuitAsync(TimeSpan.FromSeconds(5)).ConfigureAwait(false);
                await qemu.DisposeAsync().ConfigureAwait(false);
                host.Forget(vm);
                Log.VmMigratedWhileAway(logger, name, pid);
                return null;
            }
            // The disk was handed over (this host holds a replica now) but the migration did not finish: this QEMU
            // must not write, and it may hold the only copy of the guest's memory. Keep it, paused.
            if (status.Running) await qemu.Qmp.StopAsync().ConfigureAwait(false);
            lock (host.Lock)
            {
                vm.State = VmStates.Paused;
                vm.Error = $"roamd stopped in the middle of migrating this VM, after handing its disk over (volume '{volume}' is a replica here now); " +
                           $"QEMU (pid {pid}) is kept paused here. See roam vm show {name} on the destination; if the VM does not run there, " +
                           "its memory is only here";
            }
            return "re-adopted, paused (interrupted migration)";
        }
        else if (migration.Status is QmpMigrationStatus.Setup or QmpMigrationStatus.Active or QmpMigrationStatus.PreSwitchover
                 or QmpMigrationStatus.Device or QmpMigrationStatus.Cancelling)
        {
            // A migration died with the old roamd before the hand-over: the VM stays here, with its disk.
            try { await qemu.Qmp.MigrateCancelAsync(CancellationToken.None).ConfigureAwait(false); }
            catch (QmpException) { }
            await VmQemuControl.EnsureRunningAsync(qemu).ConfigureAwait(false);
            if (replication.FindMigration(volume)?.Phase is VolumeMigrationPhase.Preparing or VolumeMigrationPhase.Copying or VolumeMigrationPhase.InSync)
            {
                try { await replication.AbortMigrationAsync(volume).ConfigureAwait(false); }
                catch (Exception e) when (e is IOException or InvalidOperationException or Roam.Replication.ReplicationException) { }
            }
            return $"a migration (QEMU status {migration.Status}) was under way when roamd stopped: cancelled, the VM goes on here";
        }
        else
        {
            // A VM paused by an interrupted migration that QEMU already gave up on resumes; otherwise as found.
            if (!status.Running && status.Status is RunState.Paused or RunState.PostMigrate or RunState.FinishMigrate
                && migration.Status is QmpMigrationStatus.Failed or QmpMigrationStatus.Cancelled)
                await qemu.Qmp.ContAsync().ConfigureAwait(false);
            return "";
        }
    }
}
