using Roam.Hypervisor.Qemu;
using Roam.Hypervisor.Qmp;
using QmpMigrationStatus = Roam.Hypervisor.Qmp.MigrationStatus;

namespace Roam.Daemon.Migration;

/// <summary>Where a migration leaves a source QEMU's guest: running again (rolled back), or paused (the disk is elsewhere).</summary>
internal static class VmQemuControl
{
    /// <summary>Once QEMU's migration is over (cancelled), the guest runs: QEMU is told to continue if it did not by itself.</summary>
    public static async Task EnsureRunningAsync(QemuProcess qemu)
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

    /// <summary>Pauses the guest once QEMU's migration is over (QEMU resumes a guest when its migration fails).</summary>
    public static async Task PauseAsync(QemuProcess qemu)
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
}
