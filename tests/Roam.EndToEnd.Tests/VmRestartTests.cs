using System.Diagnostics;
using System.Text.Json;
using Roam.EndToEnd.Tests.Infrastructure;
using static Roam.EndToEnd.Tests.Infrastructure.Guest;
using Xunit.Abstractions;

namespace Roam.EndToEnd.Tests;

/// <summary>
/// A VM outlives its roamd, the way libvirt's guests outlive libvirtd: the real guest (its workload writing checksummed
/// records to its disk, a heartbeat every 10 ms) keeps running, with the same QEMU, while roamd is killed with -9 or
/// stopped with SIGTERM; its disk requests wait meanwhile and go on when roamd is back, which takes the VM over. A QEMU
/// that died while roamd was away is reported and cold-started. The disk verifies record by record at the end.
/// </summary>
public sealed class VmRestartTests(ITestOutputHelper output) : IAsyncLifetime
{
    private const string Vol = "vol";
    private readonly TestDirectory _dir = new();
    private readonly List<RoamdProcess> _roamds = [];
    private string _guest = "";

    private string DataDir => Path.Combine(_dir.Path, "data");

    private string Serial => Path.Combine(DataDir, "vms", "vm.serial");

    public async Task InitializeAsync() => _guest = await BuildGuestAsync();

    public async Task DisposeAsync()
    {
        foreach (var roamd in _roamds) await roamd.DisposeAsync(); // and the data dir's QEMUs
        Assert.Empty(DataDirQemus.Find(DataDir));
        _dir.Dispose();
    }

    private async Task<RoamdProcess> StartRoamdAsync()
    {
        var roamd = await RoamdProcess.StartAsync(DataDir);
        _roamds.Add(roamd);
        return roamd;
    }

    /// <summary>roamd with the guest running and writing; returns roamd and QEMU's pid.</summary>
    private async Task<(RoamdProcess Roamd, int Pid)> StartGuestAsync()
    {
        var roamd = await StartRoamdAsync();
        (await RoamRunner.RunAsync(roamd.ControlSocket, "volume", "create", Vol, "--size", "64M")).ShouldSucceed();
        (await RoamRunner.RunAsync(roamd.ControlSocket, "vm", "create", "vm", "--volume", Vol, "--memory", "256M",
            "--kernel", Path.Combine(_guest, "vmlinuz"), "--initrd", Path.Combine(_guest, "initrd.img"),
            "--append", "console=ttyS0 quiet panic=-1")).ShouldSucceed();
        (await RoamRunner.RunAsync(roamd.ControlSocket, "vm", "start", "vm")).ShouldSucceed();
        var show = await ShowAsync(roamd);
        int pid = show.GetProperty("pid").GetInt32();
        var clock = Stopwatch.StartNew();
        var hb = await WaitHeartbeatsAsync(Serial, hb => hb.Seq >= 50 && hb.Records >= 20, TimeSpan.FromSeconds(120), "guest boot");
        output.WriteLine($"guest writing after {clock.Elapsed.TotalSeconds:0.0} s (QEMU pid {pid}, hb {hb.Seq}, {hb.Records} records)");
        return (roamd, pid);
    }

    private static async Task<JsonElement> ShowAsync(RoamdProcess roamd) =>
        (await RoamRunner.RunAsync(roamd.ControlSocket, "vm", "show", "vm", "--json")).ShouldSucceed().Json;

    private static bool Alive(int pid) => DataDirQemus.State(pid) is { } state && state != "Z";

    /// <summary>
    /// With roamd gone: the same QEMU runs on and the guest keeps beating for a second of its time (~100 heartbeats),
    /// long enough for its workload (200 records/s) to have disk requests waiting on the lost NBD connection.
    /// </summary>
    private async Task<(long Seq, long Records)> GuestRunsWithoutRoamdAsync(int pid)
    {
        Assert.True(Alive(pid), $"QEMU (pid {pid}) died with roamd");
        var gone = LastHeartbeat(Serial)!.Value;
        var later = await WaitHeartbeatsAsync(Serial, hb => hb.Seq > gone.Seq + 100, TimeSpan.FromSeconds(60), "heartbeats without roamd");
        Assert.True(Alive(pid), $"QEMU (pid {pid}) died while roamd was away");
        output.WriteLine($"without roamd: hb {gone.Seq} -> {later.Seq}, records {gone.Records} -> {later.Records}");
        return later;
    }

    /// <summary>The restarted roamd reports the very same QEMU running, and the workload's writes go on without an error.</summary>
    private async Task TakenOverAsync(RoamdProcess restarted, int pid, (long Seq, long Records) beforeRestart)
    {
        var show = await ShowAsync(restarted);
        Assert.Equal("running", show.GetProperty("state").GetString());
        Assert.Equal(pid, show.GetProperty("pid").GetInt32());
        Assert.Contains("taken over", show.GetProperty("notice").GetString());
        var text = (await RoamRunner.RunAsync(restarted.ControlSocket, "vm", "show", "vm")).ShouldSucceed().Stdout;
        Assert.Contains($"QEMU pid {pid}", text);
        Assert.Contains("notice:", text);
        var list = (await RoamRunner.RunAsync(restarted.ControlSocket, "vm", "list", "--json")).ShouldSucceed().Json;
        Assert.Equal("running", list.EnumerateArray().Single().GetProperty("state").GetString());

        var clock = Stopwatch.StartNew();
        var after = await WaitHeartbeatsAsync(Serial, hb => hb.Records > beforeRestart.Records + 100, TimeSpan.FromSeconds(90), "writes after the restart");
        output.WriteLine($"writes resumed: {after.Records} records {clock.Elapsed.TotalSeconds:0.0} s after roamd was back");
        Assert.True(Alive(pid));
    }

    /// <summary>Stops the VM, then checks the whole serial log (heartbeats consecutive, no error) and every record on the disk.</summary>
    private async Task VerifyAsync(RoamdProcess roamd, bool heartbeatsSinceBoot = true)
    {
        (await RoamRunner.RunAsync(roamd.ControlSocket, "vm", "stop", "vm", "--timeout", "2")).ShouldSucceed();
        if (heartbeatsSinceBoot)
        {
            var stats = await Tools.RunAsync("python3", Path.Combine(RepoRoot(), "guest", "hb-stats.py"), Serial);
            output.WriteLine($"hb-stats: {stats.Stdout.Trim()} {stats.Stderr.Trim()}");
            stats.ShouldSucceed("hb-stats");
        }
        var verify = await Tools.RunAsync(Path.Combine(_guest, "workload"), "--verify", Path.Combine(DataDir, "volumes", Vol + ".raw"));
        output.WriteLine($"workload --verify: {verify.Stdout.Trim()} {verify.Stderr.Trim()}");
        verify.ShouldSucceed("workload --verify");
    }

    [ToolFact("qemu-system-x86_64", "python3")]
    public async Task Vm_keeps_running_and_writing_through_a_kill9_of_roamd_and_is_taken_over_on_restart()
    {
        var total = Stopwatch.StartNew();
        var (roamd, pid) = await StartGuestAsync();

        RoamdProcess.Signal(roamd.Process.Id, RoamdProcess.SigKill);
        await roamd.Process.WaitForExitAsync();
        var beforeRestart = await GuestRunsWithoutRoamdAsync(pid);

        var restarted = await StartRoamdAsync();
        await TakenOverAsync(restarted, pid, beforeRestart);
        Assert.Contains("taken over after a roamd restart", restarted.Output);
        await VerifyAsync(restarted);
        output.WriteLine($"total {total.Elapsed.TotalSeconds:0.0} s");
    }

    [ToolFact("qemu-system-x86_64", "python3")]
    public async Task Vm_keeps_running_and_writing_through_a_sigterm_of_roamd_and_is_taken_over_on_restart()
    {
        var total = Stopwatch.StartNew();
        var (roamd, pid) = await StartGuestAsync();

        Assert.Equal(0, await roamd.StopAsync(TimeSpan.FromSeconds(30)));
        Assert.Contains("left running for the next roamd", roamd.Output);
        var beforeRestart = await GuestRunsWithoutRoamdAsync(pid);

        var restarted = await StartRoamdAsync();
        await TakenOverAsync(restarted, pid, beforeRestart);
        await VerifyAsync(restarted);
        output.WriteLine($"total {total.Elapsed.TotalSeconds:0.0} s");
    }

    [ToolFact("qemu-system-x86_64", "python3")]
    public async Task Vm_whose_qemu_died_while_roamd_was_down_is_reported_and_cold_started()
    {
        var total = Stopwatch.StartNew();
        var (roamd, pid) = await StartGuestAsync();
        var beforeKill = LastHeartbeat(Serial)!.Value;

        Assert.Equal(0, await roamd.StopAsync(TimeSpan.FromSeconds(30)));
        await DataDirQemus.KillAsync(pid);

        var restarted = await StartRoamdAsync();
        var clock = Stopwatch.StartNew();
        JsonElement show;
        while (true)
        {
            show = await ShowAsync(restarted);
            if (show.GetProperty("state").GetString() == "running") break;
            Assert.True(clock.Elapsed < TimeSpan.FromSeconds(60), $"the VM was not started again: {show}\n{restarted.Output}");
            await Task.Delay(100);
        }
        output.WriteLine($"running again {clock.Elapsed.TotalSeconds:0.0} s after roamd was back");
        int newPid = show.GetProperty("pid").GetInt32();
        Assert.NotEqual(pid, newPid);
        var notice = show.GetProperty("notice").GetString()!;
        output.WriteLine($"notice: {notice}");
        Assert.Contains("cold-started", notice);
        Assert.Contains($"pid {pid}", notice);
        Assert.Contains("ended while roamd was not running", notice);
        Assert.Contains("COLD START", restarted.Output);
        Assert.Contains($"(pid {pid}) ended while roamd was not running", restarted.Output);

        // The guest boots again on the same disk: its workload finds the earlier records and continues after them.
        var hb = await WaitHeartbeatsAsync(Serial, hb => hb.Seq >= 50 && hb.Records > 20, TimeSpan.FromSeconds(120), "guest after the cold start");
        var start = System.Text.RegularExpressions.Regex.Match(ReadShared(Serial), @"WORKLOAD START .*next_seq=(\d+)");
        Assert.True(start.Success, ReadShared(Serial));
        Assert.True(long.Parse(start.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture) >= beforeKill.Records,
            $"the workload restarted at {start.Value}, but {beforeKill.Records} records had been written before");
        output.WriteLine($"cold-started: QEMU pid {newPid}, {start.Value}, hb {hb.Seq}");
        await VerifyAsync(restarted);
        output.WriteLine($"total {total.Elapsed.TotalSeconds:0.0} s");
    }
}

/// <summary>
/// The source roamd killed with -9 in the middle of `roam vm migrate` (the memory phase, stretched by a bandwidth
/// limit): the migration job dies with it, but the VM keeps running at the source, in the same QEMU, with its disk;
/// the restarted roamd takes it over, the destination drops its half-arrived VM, and the disk verifies.
/// </summary>
public sealed class VmRestartDuringMigrationTests(ITestOutputHelper output) : TwoHostsTest
{
    protected override bool FixedPorts => true;

    private string SerialA => Path.Combine(DataA, "vms", "vm.serial");

    private static async Task<JsonElement> VmAsync(RoamdProcess host) => (await Roam(host, "vm", "show", "vm", "--json")).ShouldSucceed().Json;

    [ToolFact("qemu-system-x86_64", "python3")]
    public async Task Kill9_of_the_source_roamd_in_the_memory_phase_leaves_the_vm_running_at_the_source_in_the_same_qemu()
    {
        var total = Stopwatch.StartNew();
        var guest = await BuildGuestAsync();
        await TrustEachOtherAsync();
        (await Roam(A, "volume", "create", Vol, "--size", "64M")).ShouldSucceed();
        (await Roam(A, "vm", "create", "vm", "--volume", Vol, "--memory", "256M", "--kernel", Path.Combine(guest, "vmlinuz"),
            "--initrd", Path.Combine(guest, "initrd.img"), "--append", "console=ttyS0 quiet panic=-1")).ShouldSucceed();
        (await Roam(A, "vm", "start", "vm")).ShouldSucceed();
        int pid = (await VmAsync(A)).GetProperty("pid").GetInt32();
        await WaitHeartbeatsAsync(SerialA, hb => hb.Seq >= 50 && hb.Records >= 20, TimeSpan.FromSeconds(120), "guest boot");

        // 1 MiB/s makes the memory phase last tens of seconds (the guest's non-zero memory is tens of MiB).
        var migrate = Roam(A, "vm", "migrate", "vm", "--to", "beta", "--bandwidth", "1M");
        var clock = Stopwatch.StartNew();
        while (true)
        {
            var vm = await VmAsync(A);
            if (vm.TryGetProperty("migration", out var m) && m.GetProperty("phase").GetString() == "memory" && m.GetProperty("ramTransferred").GetInt64() > 0) break;
            Assert.False(migrate.IsCompleted, $"the migration ended before its memory phase: {(migrate.IsCompleted ? migrate.Result.Stderr : "")}");
            Assert.True(clock.Elapsed < TimeSpan.FromSeconds(120), $"no memory phase within 120 s: {vm}");
            await Task.Delay(100);
        }
        output.WriteLine($"memory phase after {clock.Elapsed.TotalSeconds:0.0} s; killing alpha's roamd");
        var oldA = A;
        RoamdProcess.Signal(oldA.Process.Id, RoamdProcess.SigKill);
        await oldA.Process.WaitForExitAsync();
        Assert.NotEqual(0, (await migrate).ExitCode);

        // The guest may or may not run on meanwhile: paused before switch-over, it waits for a roamd to cancel the migration.
        var later = LastHeartbeat(SerialA)!.Value;
        Assert.True(DataDirQemus.State(pid) is { } state && state != "Z", $"QEMU (pid {pid}) died with the source roamd");

        A = await RoamdProcess.StartAsync(DataA, ArgumentsFor("alpha", PortA));
        var show = await VmAsync(A);
        output.WriteLine($"after the restart: {show}");
        Assert.Equal("running", show.GetProperty("state").GetString());
        Assert.Equal(pid, show.GetProperty("pid").GetInt32());
        Assert.Contains("taken over", show.GetProperty("notice").GetString());
        Assert.Equal("primary", (await ShowAsync(A)).GetProperty("replication").GetProperty("role").GetString());
        var after = await WaitHeartbeatsAsync(SerialA, hb => hb.Records > later.Records + 100, TimeSpan.FromSeconds(90), "writes after the restart");
        output.WriteLine($"writes go on at the source: {later.Records} -> {after.Records} records");

        // beta drops the VM whose memory never fully arrived.
        clock.Restart();
        while ((await Roam(B, "vm", "show", "vm")).ExitCode == 0)
        {
            Assert.True(clock.Elapsed < TimeSpan.FromSeconds(60), "beta still has the VM 60 s after the source's roamd died");
            await Task.Delay(200);
        }
        Assert.Empty(DataDirQemus.Find(DataB));

        (await Roam(A, "vm", "stop", "vm", "--timeout", "2")).ShouldSucceed();
        var stats = await Tools.RunAsync("python3", Path.Combine(RepoRoot(), "guest", "hb-stats.py"), SerialA);
        output.WriteLine($"hb-stats: {stats.Stdout.Trim()} {stats.Stderr.Trim()}");
        stats.ShouldSucceed("hb-stats");
        var verify = await Tools.RunAsync(Path.Combine(guest, "workload"), "--verify", Path.Combine(DataA, "volumes", Vol + ".raw"));
        output.WriteLine($"workload --verify: {verify.Stdout.Trim()} {verify.Stderr.Trim()}");
        verify.ShouldSucceed("workload --verify");
        output.WriteLine($"total {total.Elapsed.TotalSeconds:0.0} s");
    }
}
