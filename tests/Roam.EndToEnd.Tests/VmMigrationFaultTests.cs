using System.Diagnostics;
using System.Text.Json;
using Roam.EndToEnd.Tests.Infrastructure;
using static Roam.EndToEnd.Tests.Infrastructure.Guest;
using Xunit.Abstractions;

namespace Roam.EndToEnd.Tests;

/// <summary>
/// `roam vm migrate` that goes wrong: an untrusted destination, kill -9 of the destination roamd in the disk copy,
/// kill -9 of the destination QEMU in the memory phase. Each time the guest (scripts/build-guest.sh, checksummed
/// records + a 10 ms heartbeat on the serial console) keeps running on the source with its disk primary and writable;
/// a later migration succeeds. Peer links go through <see cref="LinkCutter"/>s (throttled to stretch the disk copy).
/// </summary>
public sealed partial class VmMigrationFaultTests(ITestOutputHelper output) : LinkedHostsTest(output)
{
    private string SerialA => Path.Combine(DataA, "vms", "vm.serial");

    private string SerialB => Path.Combine(DataB, "vms", "vm.serial");

    /// <summary>
    /// Starts `roam vm migrate vm --to beta` with QEMU's bandwidth at 2 MB/s, which stretches the memory phase, and
    /// returns once memory is moving (or the command ended, which the caller reports).
    /// </summary>
    private async Task<Task<CliResult>> MigrateIntoTheMemoryPhaseAsync()
    {
        var migrating = Roam(A, "vm", "migrate", "vm", "--to", "beta", "--bandwidth", "2M");
        await Wait.UntilAsync(async () =>
        {
            if (migrating.IsCompleted) return true;
            var vm = await VmAsync(A);
            return vm.TryGetProperty("migration", out var m) && m.GetProperty("phase").GetString() == "memory" && m.GetProperty("ramTransferred").GetInt64() > 0;
        }, TimeSpan.FromSeconds(90), "the memory phase");
        return migrating;
    }

    /// <summary>Creates the VM "vm" on alpha's volume and starts it; with <paramref name="waitForGuest"/>, until the workload writes.</summary>
    private async Task StartVmOnAAsync(string size, bool waitForGuest, Func<Task>? beforeStart = null)
    {
        var guest = await BuildGuestAsync();
        await TrustThroughCuttersAsync();
        (await Roam(A, "volume", "create", Vol, "--size", size)).ShouldSucceed();
        if (beforeStart is not null) await beforeStart();
        (await Roam(A, "vm", "create", "vm", "--volume", Vol, "--memory", "256M", "--kernel", Path.Combine(guest, "vmlinuz"),
            "--initrd", Path.Combine(guest, "initrd.img"), "--append", "console=ttyS0 quiet panic=-1")).ShouldSucceed();
        var started = Stopwatch.StartNew();
        (await Roam(A, "vm", "start", "vm")).ShouldSucceed();
        if (!waitForGuest) return;
        var hb = await WaitHeartbeatsAsync(SerialA, hb => hb.Seq >= 50 && hb.Records > 0, TimeSpan.FromSeconds(180), "heartbeats on alpha");
        Log.WriteLine($"guest up on alpha after {started.Elapsed.TotalSeconds:0.0} s (hb {hb.Seq}, {hb.Records} records)");
    }

    private static async Task<JsonElement> VmAsync(RoamdProcess host) => (await Roam(host, "vm", "show", "vm", "--json")).ShouldSucceed().Json;

    /// <summary>The VM runs on alpha, not migrating, its volume primary there, and the guest keeps writing and verifying.</summary>
    private async Task AssertStillRunningOnAAsync(string what)
    {
        var vm = await VmAsync(A);
        Assert.Equal("running", vm.GetProperty("state").GetString());
        Assert.Equal("primary", (await ReplicationOf(A)).GetProperty("role").GetString());
        await AssertGuestWritesOnAAsync(what);
    }

    private async Task AssertGuestWritesOnAAsync(string what)
    {
        var now = LastHeartbeat(SerialA)!.Value;
        var later = await WaitHeartbeatsAsync(SerialA, hb => hb.Seq > now.Seq + 100 && hb.Records > now.Records + 10, TimeSpan.FromSeconds(90),
            $"heartbeats and writes on alpha {what}");
        Log.WriteLine($"{what}: alpha still runs the VM (hb {now.Seq} -> {later.Seq}, records {now.Records} -> {later.Records})");
    }

    private async Task VerifyVolumeAsync(string file, string who)
    {
        var verify = await Tools.RunAsync(Path.Combine(RepoRoot(), ".cache", "guest", "workload"), "--verify", file);
        Log.WriteLine($"workload --verify on {who}'s volume: {verify.Stdout.Trim()} {verify.Stderr.Trim()}");
        verify.ShouldSucceed("workload --verify");
    }

    /// <summary>The migration command fails with a one-line reason (no stack trace) and alpha records it as failed.</summary>
    private async Task<CliResult> AssertMigrationFailsAsync(Task<CliResult> migrating, TimeSpan timeout)
    {
        var failed = await migrating.WaitAsync(timeout);
        Log.WriteLine($"the migration failed (exit {failed.ExitCode}): {failed.Stderr.Trim()}");
        Assert.NotEqual(0, failed.ExitCode);
        Assert.StartsWith("roam: ", failed.Stderr);
        Assert.DoesNotContain("   at ", failed.Stderr);
        var migration = (await VmAsync(A)).GetProperty("migration");
        Assert.Equal("failed", migration.GetProperty("phase").GetString());
        Log.WriteLine($"alpha's view: {migration}");
        return failed;
    }

    /// <summary>A later `roam vm migrate vm --to beta` succeeds: the guest goes on at beta, alpha forgets the VM, the disk verifies on beta.</summary>
    private async Task AssertALaterMigrationSucceedsAsync(string what)
    {
        var again = Stopwatch.StartNew();
        var result = (await Roam(A, "vm", "migrate", "vm", "--to", "beta")).ShouldSucceed();
        Log.WriteLine($"{what} took {again.Elapsed.TotalSeconds:0.0} s: {result.Stdout.Trim()}");
        var lastOnA = LastHeartbeat(SerialA)!.Value;
        var arrived = await VmAsync(B);
        Assert.True(arrived.GetProperty("state").GetString() == "running", $"beta: {arrived}");
        Assert.Equal("primary", (await ReplicationOf(B)).GetProperty("role").GetString());
        var onB = await WaitHeartbeatsAsync(SerialB, hb => hb.Seq > lastOnA.Seq + 20, TimeSpan.FromSeconds(90), "heartbeats on beta");
        Assert.True(onB.Records >= lastOnA.Records);
        (await Roam(A, "vm", "show", "vm")).ShouldFail(1, "no VM");
        (await Roam(B, "vm", "stop", "vm", "--timeout", "2")).ShouldSucceed();
        await VerifyVolumeAsync(FileB, "beta");
    }

    [ToolFact("qemu-system-x86_64")]
    public async Task Vm_migrate_to_an_untrusted_host_is_refused_and_leaves_the_vm_alone()
    {
        await StartVmOnAAsync("64M", waitForGuest: false);
        var before = await VmAsync(A);
        Assert.Equal("running", before.GetProperty("state").GetString());

        var clock = Stopwatch.StartNew();
        var refused = await Roam(A, "vm", "migrate", "vm", "--to", "gamma");
        Log.WriteLine($"refused in {clock.Elapsed.TotalMilliseconds:0} ms: {refused.Stderr.Trim()}");
        refused.ShouldFail(1, "no trusted peer is named gamma");
        Assert.Contains("roam host add gamma", refused.Stderr);

        var after = await VmAsync(A);
        Assert.Equal("running", after.GetProperty("state").GetString());
        Assert.Equal(before.GetProperty("pid").GetInt32(), after.GetProperty("pid").GetInt32());
        Assert.False(after.TryGetProperty("migration", out var m) && m.ValueKind != JsonValueKind.Null, $"a migration is recorded: {after}");
        Assert.Equal("primary", (await ReplicationOf(A)).GetProperty("role").GetString());
        Assert.Equal(0, (await ShowAsync(A)).GetProperty("replication").GetProperty("replicas").GetArrayLength());
        (await Roam(B, "vm", "show", "vm")).ShouldFail(1, "no VM");
    }

    [ToolFact("qemu-system-x86_64", "qemu-io")]
    public async Task Kill9_of_the_destination_roamd_mid_disk_copy_leaves_the_vm_running_on_the_source_and_a_retry_succeeds()
    {
        var total = Stopwatch.StartNew();
        // 64 MiB of random data beyond the workload's 32 MiB region, so the disk copy has something to carry that
        // compression cannot shrink (it is checked on beta at the end).
        var data = new byte[64 * MiB];
        new Random(5).NextBytes(data);
        var source = Path.Combine(DataA, "..", "random-64M");
        await File.WriteAllBytesAsync(source, data);
        await StartVmOnAAsync("128M", waitForGuest: true, beforeStart: async () =>
            (await Tools.RunAsync("qemu-io", "-f", "raw", UnixUri(A), "-c", $"write -s {source} 40M 64M")).ShouldSucceed("qemu-io write -s"));

        long start = ToB.BytesForwarded;
        ToB.BytesPerSecond = 4 * MiB;
        var migrating = Roam(A, "vm", "migrate", "vm", "--to", "beta");
        await Wait.UntilAsync(() => ToB.BytesForwarded - start >= 12 * MiB || migrating.IsCompleted, TimeSpan.FromSeconds(60), "12 MiB of the disk copy");
        Assert.False(migrating.IsCompleted, $"the migration ended before the kill: {(migrating.IsCompleted ? migrating.Result : null)}");
        var mid = (await VmAsync(A)).GetProperty("migration");
        Assert.Equal("disk", mid.GetProperty("phase").GetString());
        Log.WriteLine($"killing beta's roamd at {(ToB.BytesForwarded - start) / (double)MiB:0.0} MiB: {mid}");
        await KillAsync(B);
        ToB.BytesPerSecond = 0;

        // Without its destination the disk copy cannot finish: the job fails by itself after the destination-loss
        // timeout, with the reason, and the guest keeps writing on alpha the whole time.
        await Task.Delay(TimeSpan.FromSeconds(3));
        Assert.Equal("primary", (await ReplicationOf(A)).GetProperty("role").GetString());
        await AssertGuestWritesOnAAsync("while the migration waits for beta");
        var failed = await AssertMigrationFailsAsync(migrating, TimeSpan.FromSeconds(60));
        Assert.Contains("lost the destination beta", failed.Stderr);
        await AssertStillRunningOnAAsync("with beta's roamd killed");

        await RestartBAsync();
        await AssertALaterMigrationSucceedsAsync("the retry");
        using (var file = File.OpenHandle(FileB))
        {
            var onBeta = new byte[64 * MiB];
            Assert.Equal(onBeta.Length, RandomAccess.Read(file, onBeta, 40 * MiB));
            Assert.True(onBeta.AsSpan().SequenceEqual(data), "the data written before the migration is not on beta");
        }
        Log.WriteLine($"total {total.Elapsed.TotalSeconds:0.0} s");
    }

    [ToolFact("qemu-system-x86_64")]
    public async Task Kill9_of_the_destination_qemu_in_the_memory_phase_leaves_the_vm_running_on_the_source()
    {
        var total = Stopwatch.StartNew();
        await StartVmOnAAsync("64M", waitForGuest: true);

        var migrating = await MigrateIntoTheMemoryPhaseAsync();
        Assert.False(migrating.IsCompleted, $"the migration ended before the kill: {(migrating.IsCompleted ? migrating.Result : null)}");
        var onB = await VmAsync(B);
        int pid = onB.GetProperty("pid").GetInt32();
        Assert.Contains("qemu", File.ReadAllText($"/proc/{pid}/cmdline"));
        Log.WriteLine($"killing beta's QEMU (pid {pid}) at {(await VmAsync(A)).GetProperty("migration")}");
        RoamdProcess.Signal(pid, RoamdProcess.SigKill);

        await AssertMigrationFailsAsync(migrating, TimeSpan.FromSeconds(60));
        await AssertStillRunningOnAAsync("after beta's QEMU was killed");
        await Wait.UntilAsync(async () => (await Roam(B, "vm", "show", "vm")).ExitCode != 0, TimeSpan.FromSeconds(30), "beta to forget the VM");

        (await Roam(A, "vm", "stop", "vm", "--timeout", "2")).ShouldSucceed();
        await VerifyVolumeAsync(FileA, "alpha");
        Log.WriteLine($"total {total.Elapsed.TotalSeconds:0.0} s");
    }

    [ToolFact("qemu-system-x86_64")]
    public async Task Kill9_of_the_destination_roamd_in_the_memory_phase_leaves_the_vm_running_on_the_source_and_a_retry_succeeds()
    {
        var total = Stopwatch.StartNew();
        await StartVmOnAAsync("64M", waitForGuest: true);

        var migrating = await MigrateIntoTheMemoryPhaseAsync();
        Assert.False(migrating.IsCompleted, $"the migration ended before the kill: {(migrating.IsCompleted ? migrating.Result : null)}");
        int incoming = (await VmAsync(B)).GetProperty("pid").GetInt32();
        Log.WriteLine($"killing beta's roamd (its incoming QEMU is pid {incoming}) at {(await VmAsync(A)).GetProperty("migration")}");
        await KillAsync(B);

        // The memory stream ran through beta's roamd: QEMU's migration fails before any hand-over, and the VM goes on here.
        await AssertMigrationFailsAsync(migrating, TimeSpan.FromSeconds(90));
        await AssertStillRunningOnAAsync("with beta's roamd killed in the memory phase");

        // beta comes back: its half-arrived VM is gone (the QEMU that lost its stream ends, or is ended by the restart).
        await RestartBAsync();
        await Wait.UntilAsync(() => Task.FromResult(!IsAlive(incoming)), TimeSpan.FromSeconds(30), $"beta's incoming QEMU (pid {incoming}) to end");
        await Wait.UntilAsync(async () => (await Roam(B, "vm", "show", "vm")).ExitCode != 0, TimeSpan.FromSeconds(30), "beta to forget the VM");

        await AssertALaterMigrationSucceedsAsync("the retry");
        Log.WriteLine($"total {total.Elapsed.TotalSeconds:0.0} s");
    }

    /// <summary>The process runs (a zombie left to its new parent does not count).</summary>
    private static bool IsAlive(int pid)
    {
        try { return File.ReadAllText($"/proc/{pid}/stat").Split(')')[^1].TrimStart()[0] != 'Z'; }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException) { return false; }
    }

    [ToolFact("qemu-system-x86_64")]
    public async Task A_link_cut_in_the_memory_phase_fails_the_migration_the_vm_goes_on_at_the_source_and_a_later_migration_succeeds()
    {
        var total = Stopwatch.StartNew();
        await StartVmOnAAsync("64M", waitForGuest: true);

        // Both links (replication and the tunnel carrying QEMU's stream) go through the cutters.
        var migrating = await MigrateIntoTheMemoryPhaseAsync();
        Assert.False(migrating.IsCompleted, $"the migration ended before the cut: {(migrating.IsCompleted ? migrating.Result : null)}");
        var incoming = await VmAsync(B);
        Assert.Equal("incoming", incoming.GetProperty("state").GetString());
        int pidB = incoming.GetProperty("pid").GetInt32();
        Log.WriteLine($"cutting both links at {(await VmAsync(A)).GetProperty("migration")}");
        CutBoth();

        var failed = await AssertMigrationFailsAsync(migrating, TimeSpan.FromSeconds(60));
        Assert.Equal(1, failed.ExitCode);
        Assert.Contains("the link to beta broke during the memory copy", failed.Stderr);
        Assert.Contains("the VM keeps running here", failed.Stderr);

        // The source: still the primary, the guest runs and writes there, with the link still down.
        await AssertStillRunningOnAAsync("with the link cut");
        // The destination: its QEMU gone, the VM (definition included) forgotten.
        await Wait.UntilAsync(async () => (await Roam(B, "vm", "show", "vm")).ExitCode != 0, TimeSpan.FromSeconds(30), "beta to forget the VM");
        await Wait.UntilAsync(() => Task.FromResult(!File.Exists($"/proc/{pidB}/cmdline")), TimeSpan.FromSeconds(30), "beta's QEMU to exit");
        Assert.False(File.Exists(Path.Combine(DataB, "vms", "vm.json")), "beta kept the VM's definition");
        Assert.Equal("replica", (await ReplicationOf(B)).GetProperty("role").GetString());

        // Link back: a later migration succeeds, and the disk verifies on the destination.
        RestoreBoth();
        await AssertALaterMigrationSucceedsAsync("the later migration");
        Log.WriteLine($"total {total.Elapsed.TotalSeconds:0.0} s");
    }

    /// <summary>
    /// The dangerous window: the disk is handed over (beta is primary), QEMU has not sent the last of the stream, and
    /// the link goes. alpha's roamd holds there (ROAM_TEST_HOLD_AT) so the cut lands exactly in it. Neither side may
    /// run the guest on its own: beta never got all of it, alpha no longer holds the disk. Once the link is back,
    /// beta hands the disk back and alpha resumes the VM it kept paused; a later migration succeeds.
    /// </summary>
    [ToolFact("qemu-system-x86_64")]
    public async Task A_link_cut_after_the_disk_hand_over_keeps_the_vm_paused_until_the_disk_is_back_then_it_runs_on_at_the_source()
    {
        var total = Stopwatch.StartNew();
        var hold = Path.Combine(Dir.Path, "hold-after-handover");
        await A.DisposeAsync();
        A = await RoamdProcess.StartAsync(DataA, ArgumentsFor("alpha", PortA),
            new Dictionary<string, string> { ["ROAM_TEST_HOLD_AT"] = "after-handover:" + hold });
        await StartVmOnAAsync("64M", waitForGuest: true);

        var migrating = Roam(A, "vm", "migrate", "vm", "--to", "beta");
        await Wait.UntilAsync(() => File.Exists(hold) || migrating.IsCompleted, TimeSpan.FromSeconds(120), "the hand-over");
        Assert.False(migrating.IsCompleted, $"the migration ended before the hand-over: {(migrating.IsCompleted ? migrating.Result : null)}");
        Assert.Equal("primary", (await ReplicationOf(B)).GetProperty("role").GetString());
        Assert.Equal("replica", (await ReplicationOf(A)).GetProperty("role").GetString());
        int pidB = (await VmAsync(B)).GetProperty("pid").GetInt32();
        Log.WriteLine($"disk handed over to beta; cutting both links before QEMU finishes ({total.Elapsed.TotalSeconds:0.0} s)");
        CutBoth();
        File.Delete(hold);

        // beta's QEMU cannot have the whole stream: its arrival fails and it forgets the VM (it keeps the disk, primary).
        await Wait.UntilAsync(async () => (await Roam(B, "vm", "show", "vm")).ExitCode != 0, TimeSpan.FromSeconds(90), "beta to give up the arrival");
        await Wait.UntilAsync(() => Task.FromResult(!File.Exists($"/proc/{pidB}/cmdline")), TimeSpan.FromSeconds(30), "beta's QEMU to exit");
        // alpha keeps the VM paused, waiting for beta's word: not resumed on a disk that is beta's now. (It gets there once
        // its QEMU has finished writing the rest of the stream into the broken tunnel, which the relay swallows.)
        await Wait.UntilAsync(async () => (await VmAsync(A)).GetProperty("migration").GetProperty("phase").GetString() == "confirming",
            TimeSpan.FromSeconds(60), "alpha to wait for beta's word");
        var waiting = await VmAsync(A);
        Log.WriteLine($"alpha while the link is down: {waiting.GetProperty("migration")}");
        Assert.Equal("migrating", waiting.GetProperty("state").GetString());
        Assert.Equal("confirming", waiting.GetProperty("migration").GetProperty("phase").GetString());
        Assert.Contains("the VM stays paused here", waiting.GetProperty("migration").GetProperty("error").GetString());
        Assert.False(migrating.IsCompleted, $"the migration ended with the link down: {(migrating.IsCompleted ? migrating.Result : null)}");
        var paused = LastHeartbeat(SerialA)!.Value;
        Assert.Equal("replica", (await ReplicationOf(A)).GetProperty("role").GetString());
        Assert.Equal("primary", (await ReplicationOf(B)).GetProperty("role").GetString());
        Assert.Equal(paused, LastHeartbeat(SerialA)!.Value); // no heartbeat on alpha since the hand-over's pause
        Assert.DoesNotContain(Heartbeats(ReadShared(SerialB)), hb => hb.Seq > paused.Seq);

        RestoreBoth();
        var failed = await migrating.WaitAsync(TimeSpan.FromSeconds(120));
        Log.WriteLine($"with the link back, the migration failed (exit {failed.ExitCode}) {total.Elapsed.TotalSeconds:0.0} s in: {failed.Stderr.Trim()}");
        Assert.Equal(1, failed.ExitCode);
        Assert.Contains("the VM did not arrive at beta after the disk hand-over", failed.Stderr);
        Assert.Contains("handed the disk back and the VM runs here again", failed.Stderr);
        await AssertStillRunningOnAAsync("after beta handed the disk back");
        var resumed = LastHeartbeat(SerialA)!.Value;
        Assert.True(resumed.Seq > paused.Seq && resumed.Records >= paused.Records);

        // A later migration succeeds (the hold is released at once this time) and the disk verifies on beta.
        using var release = new CancellationTokenSource();
        var releasing = Task.Run(async () =>
        {
            while (!release.IsCancellationRequested)
            {
                if (File.Exists(hold)) File.Delete(hold);
                await Task.Delay(10);
            }
        });
        var result = (await Roam(A, "vm", "migrate", "vm", "--to", "beta")).ShouldSucceed();
        await release.CancelAsync();
        await releasing;
        Log.WriteLine($"the later migration: {result.Stdout.Trim()}");
        var lastOnA = LastHeartbeat(SerialA)!.Value;
        var arrived = await VmAsync(B);
        Assert.True(arrived.GetProperty("state").GetString() == "running", $"beta: {arrived}");
        var onB = await WaitHeartbeatsAsync(SerialB, hb => hb.Seq > lastOnA.Seq + 20, TimeSpan.FromSeconds(90), "heartbeats on beta");
        Assert.True(onB.Records >= lastOnA.Records);
        (await Roam(B, "vm", "stop", "vm", "--timeout", "2")).ShouldSucceed();
        await VerifyVolumeAsync(FileB, "beta");
        Log.WriteLine($"total {total.Elapsed.TotalSeconds:0.0} s");
    }
}
