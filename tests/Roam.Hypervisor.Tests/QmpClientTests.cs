using System.Text.Json;
using System.Text.Json.Nodes;
using Roam.Hypervisor.Qmp;
using Roam.Testing;

namespace Roam.Hypervisor.Tests;

public class QmpClientTests
{
    [ToolFact(TestQemu.Binary)]
    public async Task Connect_reads_the_greeting_and_negotiates_capabilities()
    {
        await using var qemu = await TestQemu.StartMachineNoneAsync();
        Assert.Equal(InstalledQemu(), qemu.Qmp.Greeting.Version.Qemu.ToString());
        Assert.Contains("oob", qemu.Qmp.Greeting.Capabilities);
        // A command only succeeds after qmp_capabilities left negotiation mode.
        Assert.True((await qemu.Qmp.QueryStatusAsync()).Running);
    }

    [ToolFact(TestQemu.Binary)]
    public async Task Query_version_returns_the_installed_qemu_version()
    {
        await using var qemu = await TestQemu.StartMachineNoneAsync();
        var version = await qemu.Qmp.QueryVersionAsync();
        // What `qemu-system-x86_64 --version` says (10.0.x from bootstrap.sh's backports pin; 7.2.x with ROAM_QEMU=distro).
        Assert.Equal(InstalledQemu(), version.Qemu.ToString());
        Assert.InRange(version.Qemu.Major, 7, 99);
        Assert.False(string.IsNullOrEmpty(version.Package));
    }

    /// <summary>"10.0.2" from "QEMU emulator version 10.0.2 (Debian ...)".</summary>
    private static string InstalledQemu()
    {
        var start = new System.Diagnostics.ProcessStartInfo("qemu-system-x86_64", "--version") { RedirectStandardOutput = true };
        using var process = System.Diagnostics.Process.Start(start)!;
        string first = process.StandardOutput.ReadLine() ?? "";
        process.WaitForExit();
        var match = System.Text.RegularExpressions.Regex.Match(first, @"version (\d+\.\d+\.\d+)");
        Assert.True(match.Success, $"qemu-system-x86_64 --version said: {first}");
        return match.Groups[1].Value;
    }

    [ToolFact(TestQemu.Binary)]
    public async Task Query_status_reports_running()
    {
        await using var qemu = await TestQemu.StartMachineNoneAsync();
        var status = await qemu.Qmp.QueryStatusAsync();
        Assert.True(status.Running);
        Assert.Equal(RunState.Running, status.Status);
    }

    [ToolFact(TestQemu.Binary)]
    public async Task Unknown_command_fails_with_CommandNotFound_and_the_connection_continues()
    {
        await using var qemu = await TestQemu.StartMachineNoneAsync();
        var ex = await Assert.ThrowsAsync<QmpException>(() => qemu.Qmp.ExecuteAsync("no-such-command"));
        Assert.Equal("CommandNotFound", ex.Class);
        Assert.Equal("no-such-command", ex.Command);
        Assert.True((await qemu.Qmp.QueryStatusAsync()).Running);
    }

    [ToolFact(TestQemu.Binary)]
    public async Task Bad_argument_fails_with_GenericError()
    {
        await using var qemu = await TestQemu.StartMachineNoneAsync();
        var ex = await Assert.ThrowsAsync<QmpException>(() =>
            qemu.Qmp.ExecuteAsync("migrate", new JsonObject { ["not-uri"] = "x" }));
        Assert.Equal("GenericError", ex.Class);
        Assert.Contains("uri", ex.Description);
    }

    [ToolFact(TestQemu.Binary)]
    public async Task Concurrent_commands_are_matched_to_their_replies_by_id()
    {
        await using var qemu = await TestQemu.StartMachineNoneAsync();
        var tasks = new List<Task<JsonElement>>();
        for (var i = 0; i < 40; i++)
            tasks.Add(i % 2 == 0 ? qemu.Qmp.ExecuteAsync("query-version") : qemu.Qmp.ExecuteAsync("query-status"));
        var failing = qemu.Qmp.ExecuteAsync("no-such-command");
        var replies = await Task.WhenAll(tasks);
        for (var i = 0; i < replies.Length; i++)
            Assert.Equal(i % 2 == 0, replies[i].TryGetProperty("qemu", out _));
        await Assert.ThrowsAsync<QmpException>(() => failing);
    }

    [ToolFact(TestQemu.Binary)]
    public async Task Stop_and_cont_raise_STOP_and_RESUME_events()
    {
        await using var qemu = await TestQemu.StartMachineNoneAsync();
        using var cts = new CancellationTokenSource(TestQemu.Patience);
        var stopped = qemu.Qmp.WaitForEventAsync(QmpEvents.Stop, ct: cts.Token);
        await qemu.Qmp.StopAsync();
        var stop = await stopped;
        Assert.NotEqual(default, stop.Timestamp);
        Assert.Equal(RunState.Paused, (await qemu.Qmp.QueryStatusAsync()).Status);

        var resumed = qemu.Qmp.WaitForEventAsync(QmpEvents.Resume, ct: cts.Token);
        await qemu.Qmp.ContAsync();
        await resumed;

        // Both also went to the Events channel, in order.
        Assert.Equal(QmpEvents.Stop, (await qemu.Qmp.Events.ReadAsync(cts.Token)).Name);
        Assert.Equal(QmpEvents.Resume, (await qemu.Qmp.Events.ReadAsync(cts.Token)).Name);
    }

    [ToolFact(TestQemu.Binary)]
    public async Task Pause_before_switchover_capability_is_accepted_and_reported()
    {
        await using var qemu = await TestQemu.StartMachineNoneAsync();
        await qemu.Qmp.MigrateSetCapabilitiesAsync(
            new MigrationCapabilityStatus(MigrationCapability.PauseBeforeSwitchover, true),
            new MigrationCapabilityStatus(MigrationCapability.Events, true));
        var capabilities = await qemu.Qmp.QueryMigrateCapabilitiesAsync();
        Assert.Contains(new MigrationCapabilityStatus(MigrationCapability.PauseBeforeSwitchover, true), capabilities);
        Assert.Contains(new MigrationCapabilityStatus(MigrationCapability.Events, true), capabilities);
        Assert.Contains(new MigrationCapabilityStatus(MigrationCapability.Multifd, false), capabilities);
    }

    [ToolFact(TestQemu.Binary)]
    public async Task Migration_parameters_are_sent_in_kebab_case()
    {
        await using var qemu = await TestQemu.StartMachineNoneAsync();
        await qemu.Qmp.MigrateSetParametersAsync(new MigrationParameters { MaxBandwidth = 12_345_678, DowntimeLimit = 123 });
        var parameters = await qemu.Qmp.QueryMigrateParametersAsync();
        Assert.Equal(12_345_678, parameters.GetProperty("max-bandwidth").GetInt64());
        Assert.Equal(123, parameters.GetProperty("downtime-limit").GetInt64());
        // Before any migration, query-migrate is {}.
        Assert.Null((await qemu.Qmp.QueryMigrateAsync()).Status);
    }

    [ToolFact(TestQemu.Binary)]
    public async Task A_command_to_a_stopped_qemu_times_out_naming_the_command()
    {
        await using var qemu = await TestQemu.StartMachineNoneAsync();
        TestQemu.Signal(qemu.Pid, "STOP");
        try
        {
            var ex = await Assert.ThrowsAsync<TimeoutException>(() =>
                qemu.Qmp.ExecuteAsync("query-status", null, TimeSpan.FromMilliseconds(200)));
            Assert.Contains("query-status", ex.Message);
        }
        finally
        {
            TestQemu.Signal(qemu.Pid, "CONT");
        }
        // The late reply is dropped (unknown id) and the connection still works.
        Assert.True((await qemu.Qmp.QueryStatusAsync()).Running);
    }

    [ToolFact(TestQemu.Binary)]
    public async Task Killing_qemu_fails_the_pending_command_and_later_ones_cleanly()
    {
        await using var qemu = await TestQemu.StartMachineNoneAsync();
        TestQemu.Signal(qemu.Pid, "STOP");
        var pending = qemu.Qmp.ExecuteAsync("query-status");
        var eventWait = qemu.Qmp.WaitForEventAsync(QmpEvents.Shutdown);
        await Task.Delay(50);
        Assert.False(pending.IsCompleted);
        TestQemu.Signal(qemu.Pid, "KILL");

        var ex = await Assert.ThrowsAsync<QmpConnectionClosedException>(() => pending).WaitAsync(TestQemu.Patience);
        Assert.Contains("query-status", ex.Message);
        await Assert.ThrowsAsync<QmpConnectionClosedException>(() => eventWait);
        await Assert.ThrowsAsync<QmpConnectionClosedException>(() => qemu.Qmp.ExecuteAsync("query-version"));

        var exit = await qemu.Exited.WaitAsync(TestQemu.Patience);
        Assert.Equal(128 + 9, exit.ExitCode);
        await qemu.Qmp.Closed.WaitAsync(TestQemu.Patience);
    }

    [ToolFact(TestQemu.Binary)]
    public async Task Quit_replies_then_qemu_exits_and_the_event_channel_completes()
    {
        await using var qemu = await TestQemu.StartMachineNoneAsync();
        await qemu.Qmp.QuitAsync();
        var exit = await qemu.Exited.WaitAsync(TestQemu.Patience);
        Assert.Equal(0, exit.ExitCode);
        var names = new List<string>();
        using var cts = new CancellationTokenSource(TestQemu.Patience);
        await foreach (var evt in qemu.Qmp.Events.ReadAllAsync(cts.Token)) names.Add(evt.Name);
        Assert.Contains(QmpEvents.Shutdown, names);
    }
}
