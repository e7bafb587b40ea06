using Roam.Hypervisor.Qmp;
using Roam.Testing;

namespace Roam.Hypervisor.Tests;

public class MigrationTests
{
    [ToolFact(TestQemu.Binary)]
    public async Task Migration_pauses_before_switchover_then_completes_and_the_destination_runs()
    {
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        var ct = cts.Token;
        await using var source = await TestQemu.StartBarePcAsync();
        await using var destination = await TestQemu.StartBarePcAsync(incomingDefer: true);
        Assert.Equal(RunState.InMigrate, (await destination.Qmp.QueryStatusAsync(ct)).Status);

        MigrationCapabilityStatus[] capabilities =
        [
            new(MigrationCapability.PauseBeforeSwitchover, true),
            new(MigrationCapability.Events, true),
        ];
        await destination.Qmp.MigrateSetCapabilitiesAsync(capabilities, ct);
        await source.Qmp.MigrateSetCapabilitiesAsync(capabilities, ct);

        var socket = $"/tmp/roam-mig-{Guid.NewGuid():N}.sock";
        using var cleanup = new DeleteOnDispose(socket);
        var uri = "unix:" + socket;
        await destination.Qmp.MigrateIncomingAsync(uri, ct);

        var paused = source.Qmp.WaitForEventAsync(QmpEvents.Migration, e => e.GetString("status") == MigrationStatus.PreSwitchover, ct);
        var completed = source.Qmp.WaitForEventAsync(QmpEvents.Migration, e => MigrationStatus.IsFinal(e.GetString("status")), ct);
        var resumed = destination.Qmp.WaitForEventAsync(QmpEvents.Resume, ct: ct);
        await source.Qmp.MigrateAsync(uri, ct);

        await paused;
        var atPause = await source.Qmp.QueryMigrateAsync(ct);
        Assert.Equal(MigrationStatus.PreSwitchover, atPause.Status);
        Assert.NotNull(atPause.Ram);
        Assert.True(atPause.Ram.Transferred > 0);
        Assert.False((await source.Qmp.QueryStatusAsync(ct)).Running);

        await source.Qmp.MigrateContinueAsync(ct: ct);
        Assert.Equal(MigrationStatus.Completed, (await completed).GetString("status"));
        // QEMU 7.2 sets "completed" (and sends the event) a moment before it fills in total-time (0 until then).
        var done = await source.Qmp.QueryMigrateAsync(ct);
        for (var i = 0; i < 100 && !(done.TotalTime > 0); i++)
        {
            await Task.Delay(20, ct);
            done = await source.Qmp.QueryMigrateAsync(ct);
        }
        Assert.Equal(MigrationStatus.Completed, done.Status);
        Assert.True(done.TotalTime > 0);
        Assert.NotNull(done.Downtime);

        await resumed;
        var status = await destination.Qmp.QueryStatusAsync(ct);
        Assert.True(status.Running);
        Assert.Equal(RunState.Running, status.Status);
        Assert.Equal(RunState.PostMigrate, (await source.Qmp.QueryStatusAsync(ct)).Status);
    }

    private sealed class DeleteOnDispose(string path) : IDisposable
    {
        public void Dispose() => File.Delete(path);
    }
}
