using System.Diagnostics;
using System.Globalization;
using Roam.EndToEnd.Tests.Infrastructure;
using static Roam.EndToEnd.Tests.Infrastructure.Guest;

namespace Roam.EndToEnd.Tests;

/// <summary>
/// A corrupt memory stream (alpha's roamd flips one bit in a tunnel chunk after its checksum, ROAM_TEST_CORRUPT_TUNNEL):
/// beta's relay finds it before the chunk reaches its QEMU, which is killed, never resumed. Before the disk hand-over
/// the migration fails and the VM goes on at alpha; after it, beta hands the disk back and alpha resumes the VM it kept
/// paused. Either way the error names the corruption, and a later migration (not corrupted: one per roamd) succeeds.
/// </summary>
public sealed partial class VmMigrationFaultTests
{
    private async Task RestartAWithCorruptionAsync(string spec)
    {
        await A.DisposeAsync();
        A = await RoamdProcess.StartAsync(DataA, ArgumentsFor("alpha", PortA), new Dictionary<string, string> { ["ROAM_TEST_CORRUPT_TUNNEL"] = spec });
    }

    /// <summary>beta found the corruption, killed its incoming QEMU without resuming it (the guest never ran there), and forgot the VM.</summary>
    private async Task AssertBetaRefusedTheCorruptStreamAsync()
    {
        await Wait.UntilAsync(async () => (await Roam(B, "vm", "show", "vm")).ExitCode != 0, TimeSpan.FromSeconds(60), "beta to forget the VM");
        Assert.Matches(@"incoming migration from alpha failed: memory stream corrupt at chunk \d+ \(checksum mismatch\)", B.Output);
        Assert.DoesNotContain("the stream loaded, resumed", B.Output);
        Assert.False(File.Exists(Path.Combine(DataB, "vms", "vm.json")), "beta kept the VM's definition");
        if (File.Exists(SerialB)) Assert.Empty(Heartbeat().Matches(ReadShared(SerialB)));
        var lines = B.Output.Split('\n').Where(l => l.Contains("corrupt", StringComparison.Ordinal)).ToList();
        Log.WriteLine($"beta: {string.Join(" | ", lines.Select(l => l.Trim()))}");
    }

    [ToolFact("qemu-system-x86_64")]
    public async Task A_memory_stream_corrupted_before_the_hand_over_fails_the_migration_the_vm_goes_on_at_the_source_and_a_later_migration_succeeds()
    {
        var total = Stopwatch.StartNew();
        await RestartAWithCorruptionAsync("after-bytes:1048576");
        await StartVmOnAAsync("64M", waitForGuest: true);

        var migrating = Roam(A, "vm", "migrate", "vm", "--to", "beta");
        var failed = await AssertMigrationFailsAsync(migrating, TimeSpan.FromSeconds(120));
        Assert.Equal(1, failed.ExitCode);
        Assert.Matches(@"memory stream corrupt at chunk \d+ \(checksum mismatch, found by beta\): the migration stopped before the hand-over", failed.Stderr);
        Assert.Contains("the VM keeps running here", failed.Stderr);

        await AssertStillRunningOnAAsync("after the corrupt stream");
        await AssertBetaRefusedTheCorruptStreamAsync();
        Assert.Equal("replica", (await ReplicationOf(B)).GetProperty("role").GetString());

        await AssertALaterMigrationSucceedsAsync("the later migration");
        Log.WriteLine($"total {total.Elapsed.TotalSeconds:0.0} s");
    }

    /// <summary>
    /// The last part of the stream (sent after migrate-continue, so after the disk hand-over) is corrupt: beta, primary
    /// now, does not resume the VM; alpha keeps it paused until beta handed the disk back, then resumes it.
    /// </summary>
    [ToolFact("qemu-system-x86_64")]
    public async Task A_memory_stream_corrupted_after_the_hand_over_brings_the_disk_back_and_the_vm_resumes_at_the_source()
    {
        var total = Stopwatch.StartNew();
        await RestartAWithCorruptionAsync("after-handover");
        await StartVmOnAAsync("64M", waitForGuest: true);
        var before = LastHeartbeat(SerialA)!.Value;

        var failed = await AssertMigrationFailsAsync(Roam(A, "vm", "migrate", "vm", "--to", "beta"), TimeSpan.FromSeconds(180));
        Assert.Equal(1, failed.ExitCode);
        Assert.Matches(@"the VM did not arrive at beta after the disk hand-over \(memory stream corrupt at chunk \d+ \(checksum mismatch\)\)", failed.Stderr);
        Assert.Contains("handed the disk back and the VM runs here again", failed.Stderr);

        await AssertStillRunningOnAAsync("after beta handed the disk back");
        var resumed = LastHeartbeat(SerialA)!.Value;
        Assert.True(resumed.Seq > before.Seq && resumed.Records >= before.Records);
        await AssertBetaRefusedTheCorruptStreamAsync();
        Assert.Equal("replica", (await ReplicationOf(B)).GetProperty("role").GetString());
        Assert.Equal("primary", (await ReplicationOf(A)).GetProperty("role").GetString());
        Log.WriteLine($"heartbeats on alpha before {before.Seq.ToString(CultureInfo.InvariantCulture)}, after {resumed.Seq.ToString(CultureInfo.InvariantCulture)}");

        await AssertALaterMigrationSucceedsAsync("the later migration");
        Log.WriteLine($"total {total.Elapsed.TotalSeconds:0.0} s");
    }
}
