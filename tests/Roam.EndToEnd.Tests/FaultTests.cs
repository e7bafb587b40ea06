using System.Diagnostics;
using System.Net.Sockets;
using System.Text.Json;
using Roam.EndToEnd.Tests.Infrastructure;
using Xunit.Abstractions;

namespace Roam.EndToEnd.Tests;

/// <summary>
/// Two real roamds whose peer links go through <see cref="LinkCutter"/>s (alpha -> beta: <see cref="ToB"/>, beta -> alpha:
/// <see cref="ToA"/>), so a test can throttle, cut and restore them, and count what crossed. Fixed peer ports: a roamd
/// killed and restarted comes back where its cutter forwards to.
/// </summary>
public abstract class LinkedHostsTest(ITestOutputHelper output) : TwoHostsTest, IDisposable
{
    protected const long MiB = 1024 * 1024;

    /// <summary>The numbers a run measured (bytes on the wire, waits), in the test's output.</summary>
    protected ITestOutputHelper Log { get; } = output;

    protected override bool FixedPorts => true;

    protected LinkCutter ToB { get; private set; } = null!;

    protected LinkCutter ToA { get; private set; } = null!;

    protected string FileA => Path.Combine(DataA, "volumes", Vol + ".raw");

    protected string FileB => Path.Combine(DataB, "volumes", Vol + ".raw");

    /// <summary>Each host trusts the other at the other's cutter.</summary>
    protected async Task TrustThroughCuttersAsync()
    {
        ToB = new LinkCutter(PortB);
        ToA = new LinkCutter(PortA);
        var (_, fingerprintA, _) = await IdAsync(A);
        var (_, fingerprintB, _) = await IdAsync(B);
        (await Roam(A, "host", "add", "beta", ToB.Address, "--fingerprint", fingerprintB)).ShouldSucceed();
        (await Roam(B, "host", "add", "alpha", ToA.Address, "--fingerprint", fingerprintA)).ShouldSucceed();
    }

    protected void CutBoth()
    {
        ToB.Cut();
        ToA.Cut();
    }

    protected void RestoreBoth()
    {
        ToB.Restore();
        ToA.Restore();
    }

    protected static async Task<JsonElement> ReplicationOf(RoamdProcess host) => (await ShowAsync(host)).GetProperty("replication");

    /// <summary>fio through NBD: sequential 1 MiB blocks of fresh random data, each with a crc32c header (verifiable later with <paramref name="verifyOnly"/>).</summary>
    protected static string[] FillJob(RoamdProcess host, string size, bool verifyOnly = false) =>
    [
        "--name=fill", "--ioengine=nbd", $"--uri={UnixUri(host)}", "--rw=write", "--bs=1M", $"--size={size}", "--refill_buffers",
        "--verify=crc32c", .. verifyOnly ? new[] { "--verify_only" } : ["--do_verify=0"],
    ];

    protected static async Task KillAsync(RoamdProcess host)
    {
        RoamdProcess.Signal(host.Process.Id, RoamdProcess.SigKill);
        await host.Process.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(10));
    }

    protected async Task RestartAAsync()
    {
        await A.DisposeAsync();
        A = await RoamdProcess.StartAsync(DataA, ArgumentsFor("alpha", PortA));
    }

    protected async Task RestartBAsync()
    {
        await B.DisposeAsync();
        B = await RoamdProcess.StartAsync(DataB, ArgumentsFor("beta", PortB));
    }

    /// <summary>Waits until beta's replica of alpha's volume is in sync and the two files hold the same bytes.</summary>
    protected async Task WaitInSyncAndEqualAsync(RoamdProcess primary, TimeSpan timeout)
    {
        await WaitForReplicaStateAsync(primary, "InSync", timeout);
        AssertSameData();
    }

    public void Dispose()
    {
        ToB?.DisposeAsync().AsTask().GetAwaiter().GetResult();
        ToA?.DisposeAsync().AsTask().GetAwaiter().GetResult();
        GC.SuppressFinalize(this);
    }
}

/// <summary>kill -9 of either end of a live migration in the middle of its copy: the retry resumes, it does not start over.</summary>
public sealed class MigrationKillTests(ITestOutputHelper output) : LinkedHostsTest(output)
{
    private const long Data = 192 * MiB;

    private async Task PrepareAsync()
    {
        await TrustThroughCuttersAsync();
        (await Roam(A, "volume", "create", Vol, "--size", "256M")).ShouldSucceed();
        (await Tools.RunAsync("fio", FillJob(A, "192M"))).ShouldSucceed("fio fill on alpha");
    }

    /// <summary>Starts `roam volume migrate` with the copy throttled, and returns once about 120 MiB of 192 crossed the link.</summary>
    private async Task<Task<CliResult>> MigrateUntilMidCopyAsync()
    {
        // The source saves its bitmap every second: at 40 MiB/s at most ~40 MiB (plus what is in flight) is sent again.
        ToB.BytesPerSecond = 40 * MiB;
        var migrating = Roam(A, "volume", "migrate", Vol, "--to", "beta", "--json");
        await Wait.UntilAsync(() => ToB.BytesForwarded >= 120 * MiB || migrating.IsCompleted, TimeSpan.FromSeconds(30), "120 MiB of the copy to cross the link");
        Assert.False(migrating.IsCompleted, $"the migration ended before the kill: {(migrating.IsCompleted ? migrating.Result : null)}");
        return migrating;
    }

    private async Task AssertMigratedAsync(long wireSinceRestart)
    {
        Log.WriteLine($"the retry sent {wireSinceRestart / (double)MiB:0.0} MiB to beta ({Data / MiB} MiB of data)");
        Assert.True(wireSinceRestart < Data * 7 / 10,
            $"the retry sent {wireSinceRestart / MiB} MiB to beta: that is a copy from scratch, not a resume ({Data / MiB} MiB of data)");
        Assert.Equal("primary", (await ReplicationOf(B)).GetProperty("role").GetString());
        Assert.Equal("replica", (await ReplicationOf(A)).GetProperty("role").GetString());
        await WaitInSyncAndEqualAsync(B, TimeSpan.FromSeconds(30));
        (await Tools.RunAsync("fio", FillJob(B, "192M", verifyOnly: true))).ShouldSucceed("fio verify on beta, the new primary");
        await WriteAsync(B, 0x44, "200M", "1M");
    }

    [ToolFact("qemu-io", "fio")]
    public async Task Kill9_of_the_destination_mid_copy_then_a_retry_resumes_and_completes()
    {
        await PrepareAsync();
        var migrating = await MigrateUntilMidCopyAsync();
        await KillAsync(B);
        ToB.BytesPerSecond = 0;

        // Without its destination the job cannot finish: it either fails with the reason or waits for beta.
        var first = await Task.WhenAny(migrating, Task.Delay(TimeSpan.FromSeconds(5)));
        Assert.Equal("primary", (await ReplicationOf(A)).GetProperty("role").GetString());
        await WriteAsync(A, 0x31, "250M", "1M"); // the source stays writable meanwhile

        long before = ToB.BytesForwarded;
        await RestartBAsync();
        CliResult result;
        Log.WriteLine(first == migrating ? $"the first job ended with the kill: {migrating.Result.Stderr.Trim()}" : "the first job waited for beta");
        if (first == migrating)
        {
            Assert.NotEqual(0, migrating.Result.ExitCode);
            result = await Roam(A, "volume", "migrate", Vol, "--to", "beta", "--json");
        }
        else result = await migrating.WaitAsync(TimeSpan.FromSeconds(60)); // the job waited for beta and carried on
        result.ShouldSucceed();
        Assert.Equal("Completed", result.Json.GetProperty("phase").GetString());
        await AssertMigratedAsync(ToB.BytesForwarded - before);
        await AssertReadsAsync(B, 0x31, "250M", "1M");
    }

    [ToolFact("qemu-io", "fio")]
    public async Task Kill9_of_the_source_mid_copy_leaves_it_primary_and_writable_and_a_retry_resumes()
    {
        await PrepareAsync();
        var migrating = await MigrateUntilMidCopyAsync();
        await KillAsync(A);
        ToB.BytesPerSecond = 0;
        Assert.NotEqual(0, (await migrating.WaitAsync(TimeSpan.FromSeconds(10))).ExitCode);

        await RestartAAsync();
        var onA = await ReplicationOf(A);
        Assert.Equal("primary", onA.GetProperty("role").GetString());
        await WriteAsync(A, 0x32, "250M", "1M");
        await AssertReadsAsync(A, 0x32, "250M", "1M");

        long before = ToB.BytesForwarded;
        var retry = (await Roam(A, "volume", "migrate", Vol, "--to", "beta", "--json")).ShouldSucceed();
        Assert.Equal("Completed", retry.Json.GetProperty("phase").GetString());
        await AssertMigratedAsync(ToB.BytesForwarded - before);
        await AssertReadsAsync(B, 0x32, "250M", "1M");
    }
}

/// <summary>kill -9 of a sync-replicated primary under write load: the restart resyncs what the activity log names, not the volume.</summary>
public sealed class PrimaryKillTests(ITestOutputHelper output) : LinkedHostsTest(output)
{
    [ToolFact("qemu-io", "fio")]
    public async Task Kill9_of_the_primary_under_sync_writes_resyncs_only_the_activity_log()
    {
        await TrustThroughCuttersAsync();
        (await Roam(A, "volume", "create", Vol, "--size", "1G")).ShouldSucceed();
        (await Roam(A, "volume", "replicate", Vol, "--to", "beta", "--mode", "sync")).ShouldSucceed();
        await WaitForReplicaStateAsync(A, "InSync", TimeSpan.FromSeconds(60));

        using var writer = Tools.Start("fio", "--name=load", "--ioengine=nbd", $"--uri={UnixUri(A)}", "--rw=randwrite", "--bs=4k", "--size=1G",
            "--iodepth=16", "--time_based", "--runtime=30", "--randrepeat=0", "--refill_buffers");
        var fioOut = writer.StandardOutput.ReadToEndAsync();
        var fioErr = writer.StandardError.ReadToEndAsync();
        await Task.Delay(3000);
        Assert.False(writer.HasExited, $"fio stopped before the kill: {(writer.HasExited ? await fioErr + await fioOut : "")}\nalpha:\n{A.Output}");
        long wroteBeforeKill = (await ReplicaAsync(A)).GetProperty("bytesSent").GetInt64();
        Assert.True(wroteBeforeKill > 0, "no write reached beta before the kill");
        await KillAsync(A);
        await writer.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(15));

        await RestartAAsync();
        Assert.Contains("unclean shutdown", A.Output);
        var synced = await WaitForReplicaStateAsync(A, "InSync", TimeSpan.FromSeconds(60));
        long resynced = synced.GetProperty("bytesResynced").GetInt64();
        Log.WriteLine($"{wroteBeforeKill / (double)MiB:0.0} MiB sent to beta before the kill; {resynced / (double)MiB:0.0} MiB resynced after the restart");
        Assert.True(resynced <= 64 * MiB, $"the restart resynced {resynced / MiB} MiB: more than the activity log can name ({synced})");
        AssertSameData();
        await WriteAsync(A, 0x51, "0", "1M");
        await WaitInSyncAndEqualAsync(A, TimeSpan.FromSeconds(20));
    }
}

/// <summary>A link that is cut in the middle of the first copy, and a replica whose roamd is frozen (SIGSTOP).</summary>
public sealed class LinkFaultTests(ITestOutputHelper output) : LinkedHostsTest(output)
{
    [ToolTheory("qemu-io", "fio")]
    [InlineData("sync")]
    [InlineData("async")]
    public async Task A_link_cut_mid_copy_catches_up_after_restore(string mode)
    {
        await TrustThroughCuttersAsync();
        (await Roam(A, "volume", "create", Vol, "--size", "128M")).ShouldSucceed();
        (await Tools.RunAsync("fio", FillJob(A, "64M"))).ShouldSucceed("fio fill on alpha");

        ToB.BytesPerSecond = 24 * MiB;
        (await Roam(A, "volume", "replicate", Vol, "--to", "beta", "--mode", mode)).ShouldSucceed();
        await Wait.UntilAsync(() => ToB.BytesForwarded >= 24 * MiB, TimeSpan.FromSeconds(20), "a third of the copy to cross the link");
        CutBoth();
        ToB.BytesPerSecond = 0;

        // The primary goes on writing with its replica cut off.
        var clock = Stopwatch.StartNew();
        await WriteAsync(A, 0x3c, "100M", "4M");
        await WriteAsync(A, 0x3d, "80M", "1M");
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(15), $"writes with the link cut took {clock.Elapsed.TotalSeconds:0.0} s");
        var cut = await ReplicaAsync(A);
        Assert.NotEqual("InSync", cut.GetProperty("state").GetString());
        Assert.True(cut.GetProperty("bytesOutOfSync").GetInt64() > 0, $"replica: {cut}");

        RestoreBoth();
        await WaitInSyncAndEqualAsync(A, TimeSpan.FromSeconds(40));
        await AssertReadsAsync(B, 0x3c, "100M", "4M");
        await AssertReadsAsync(B, 0x3d, "80M", "1M");
        (await Tools.RunAsync("fio", FillJob(B, "64M", verifyOnly: true))).ShouldSucceed("fio verify on beta");
    }

    [ToolFact("qemu-io")]
    public async Task A_frozen_sync_replica_delays_a_write_by_the_sync_timeout_then_catches_up()
    {
        await TrustThroughCuttersAsync();
        (await Roam(A, "volume", "create", Vol, "--size", "64M")).ShouldSucceed();
        (await Roam(A, "volume", "replicate", Vol, "--to", "beta", "--mode", "sync")).ShouldSucceed();
        await WriteAsync(A, 0x60, "0", "2M");
        await WaitForReplicaStateAsync(A, "InSync", TimeSpan.FromSeconds(20));

        RoamdProcess.Signal(B.Process.Id, 19); // SIGSTOP
        try
        {
            var clock = Stopwatch.StartNew();
            await WriteAsync(A, 0x61, "4M", "1M");
            var took = clock.Elapsed;
            Log.WriteLine($"the write with beta frozen took {took.TotalSeconds:0.00} s");
            Assert.True(took < TimeSpan.FromSeconds(10), $"the write waited {took.TotalSeconds:0.0} s for a frozen replica (sync timeout 2 s)");
            var replica = await ReplicaAsync(A);
            Assert.NotEqual("InSync", replica.GetProperty("state").GetString());
            Assert.True(replica.GetProperty("bytesOutOfSync").GetInt64() > 0, $"replica: {replica}");
            Assert.Contains("OutOfSync", (await Roam(A, "volume", "show", Vol)).ShouldSucceed().Stdout);
            Assert.Contains("no acknowledgement within", A.Output);
            clock.Restart();
            await WriteAsync(A, 0x62, "8M", "1M"); // once out of sync, writes do not wait again
            Assert.True(clock.Elapsed < TimeSpan.FromSeconds(5), $"a second write waited {clock.Elapsed.TotalSeconds:0.0} s");
        }
        finally
        {
            RoamdProcess.Signal(B.Process.Id, 18); // SIGCONT
        }
        await WaitInSyncAndEqualAsync(A, TimeSpan.FromSeconds(30));
        await AssertReadsAsync(B, 0x61, "4M", "1M");
        await AssertReadsAsync(B, 0x62, "8M", "1M");
    }
}

/// <summary>A split brain made on purpose: both sides keep their data untouched until told which wins.</summary>
public sealed class SplitBrainTests(ITestOutputHelper output) : LinkedHostsTest(output)
{
    [ToolFact("qemu-io")]
    public async Task Split_brain_is_reported_touches_nothing_and_resolve_keeps_the_chosen_side()
    {
        await TrustThroughCuttersAsync();
        (await Roam(A, "volume", "create", Vol, "--size", "64M")).ShouldSucceed();
        (await Roam(A, "volume", "replicate", Vol, "--to", "beta", "--mode", "sync")).ShouldSucceed();
        await WriteAsync(A, 0x11, "0", "8M");
        await WaitForReplicaStateAsync(A, "InSync", TimeSpan.FromSeconds(20));
        (await Roam(A, "volume", "resolve", Vol, "--keep", "alpha")).ShouldFail(1, "has no split brain here");
        (await Roam(A, "volume", "resolve", Vol, "--keep", "beta")).ShouldFail(1, "is in sync with beta: there is no split brain to resolve");

        CutBoth();
        var deadline = DateTime.UtcNow.AddSeconds(15);
        while ((await ReplicationOf(B)).GetProperty("primaryConnected").GetBoolean())
        {
            Assert.True(DateTime.UtcNow < deadline, "beta still reports alpha attached after the cut");
            await Task.Delay(50);
        }
        (await Roam(B, "volume", "promote", Vol, "--force")).ShouldSucceed();
        await WriteAsync(A, 0xaa, "0", "4M");
        await WriteAsync(B, 0xbb, "4M", "4M");
        string hashA = Images.Sha256(FileA), hashB = Images.Sha256(FileB);
        Assert.NotEqual(hashA, hashB);

        RestoreBoth();
        await WaitForReplicaStateAsync(A, "SplitBrain", TimeSpan.FromSeconds(30));
        await Task.Delay(1000); // time for anything that would (wrongly) sync
        var textA = (await Roam(A, "volume", "show", Vol)).ShouldSucceed().Stdout;
        Assert.Contains("split brain", textA);
        Assert.Contains("roam volume resolve vol --keep", textA);
        Assert.Equal("primary", (await ReplicationOf(B)).GetProperty("role").GetString());
        // beta sees it too, from alpha's attach (refused: nothing syncs into a primary), and says so by itself.
        var textB = (await Roam(B, "volume", "show", Vol)).ShouldSucceed().Stdout;
        Assert.Contains("split brain with alpha", textB);
        Assert.Contains("roam volume resolve vol --keep", textB);
        Assert.Contains("split brain", B.Output);
        Assert.Contains("split brain", A.Output);
        Assert.Equal(hashA, Images.Sha256(FileA));
        Assert.Equal(hashB, Images.Sha256(FileB));

        // Refusals, with the reason.
        (await Roam(A, "volume", "resolve", Vol)).ShouldFail(2, "--keep");
        (await Roam(A, "volume", "resolve", Vol, "--keep", "gamma")).ShouldFail(1, "gamma is neither this host (alpha) nor a trusted peer");
        (await Roam(A, "volume", "resolve", "nope", "--keep", "alpha")).ShouldFail(1, "no volume named 'nope'");

        // beta, promoted while alpha was away, tracks what it wrote since on a parted link to alpha.
        Assert.Contains("parted", textB);
        Assert.Equal("Parted", (await ReplicaAsync(B)).GetProperty("state").GetString());

        // alpha wins: beta becomes its replica and gets alpha's data; alpha's is untouched. Only what either side
        // wrote apart crosses (alpha's 4 MiB and beta's 4 MiB), not the whole 64 MiB volume.
        long resyncedBefore = (await ReplicaAsync(A)).GetProperty("bytesResynced").GetInt64();
        var onB = (await Roam(B, "volume", "resolve", Vol, "--keep", "alpha")).ShouldSucceed();
        Assert.Contains("replica of alpha", onB.Stdout);
        Assert.Equal("replica", (await ReplicationOf(B)).GetProperty("role").GetString());
        (await Roam(B, "volume", "resolve", Vol, "--keep", "beta")).ShouldFail(1, "has no data of its own to keep");
        var onA = (await Roam(A, "volume", "resolve", Vol, "--keep", "alpha")).ShouldSucceed();
        Assert.Contains("keeps this host's data", onA.Stdout);
        await WaitInSyncAndEqualAsync(A, TimeSpan.FromSeconds(30));
        Assert.Equal(hashA, Images.Sha256(FileA));
        long copied = (await ReplicaAsync(A)).GetProperty("bytesResynced").GetInt64() - resyncedBefore;
        Assert.InRange(copied, 8 * MiB, 12 * MiB);
        await AssertReadsAsync(B, 0xaa, "0", "4M");
        await AssertReadsAsync(B, 0x11, "4M", "4M");
        await WriteAsync(A, 0xac, "16M", "1M");
        await WaitInSyncAndEqualAsync(A, TimeSpan.FromSeconds(20));
    }
}

/// <summary>Real roamds and hostile peers: a host alpha does not trust, and bytes that are not TLS at all.</summary>
public sealed class PeerSecurityTests(ITestOutputHelper output) : LinkedHostsTest(output)
{
    [ToolFact("qemu-io")]
    public async Task An_untrusted_host_and_garbage_on_the_peer_port_are_refused_and_alpha_keeps_serving_beta()
    {
        await TrustThroughCuttersAsync();
        (await Roam(A, "volume", "create", Vol, "--size", "32M")).ShouldSucceed();
        (await Roam(A, "volume", "replicate", Vol, "--to", "beta", "--mode", "sync")).ShouldSucceed();
        await WriteAsync(A, 0x21, "0", "4M");
        await WaitForReplicaStateAsync(A, "InSync", TimeSpan.FromSeconds(20));
        string hashA = Images.Sha256(FileA);

        // gamma trusts alpha (at its real port, under alpha's real fingerprint); alpha does not trust gamma.
        await using var c = await RoamdProcess.StartAsync(Path.Combine(Dir.Path, "c"), ["--host-name", "gamma", "--peer-listen", "127.0.0.1:0", "--sync-timeout", "2"]);
        var (_, fingerprintA, _) = await IdAsync(A);
        (await Roam(c, "host", "add", "alpha", $"127.0.0.1:{PortA}", "--fingerprint", fingerprintA)).ShouldSucceed();
        (await Roam(c, "volume", "create", Vol, "--size", "32M")).ShouldSucceed();
        await WriteAsync(c, 0x99, "0", "4M");
        (await Roam(c, "volume", "replicate", Vol, "--to", "alpha")).ShouldFail(1, "does not trust this host");
        (await Roam(c, "volume", "migrate", Vol, "--to", "alpha")).ShouldFail(1, "does not trust this host");
        Assert.Contains("refused", A.Output);
        Assert.Equal(hashA, Images.Sha256(FileA));
        var onA = await ReplicationOf(A);
        Assert.Equal("primary", onA.GetProperty("role").GetString());
        Assert.Equal("InSync", onA.GetProperty("replicas")[0].GetProperty("state").GetString());
        await WriteAsync(A, 0x22, "4M", "1M");
        await WaitInSyncAndEqualAsync(A, TimeSpan.FromSeconds(10));

        // Random bytes, then a half-open connection that never speaks: refused, logged, nothing else happens.
        int refusalsBefore = CountRefusals(A.Output);
        var random = new byte[64 * 1024];
        Random.Shared.NextBytes(random);
        using (var garbage = new TcpClient())
        {
            await garbage.ConnectAsync("127.0.0.1", PortA);
            try { await garbage.GetStream().WriteAsync(random); }
            catch (IOException) { } // alpha may hang up before it has read it all
            await Task.Delay(500);
        }
        await Wait.UntilAsync(() => CountRefusals(A.Output) > refusalsBefore, TimeSpan.FromSeconds(10), "alpha to log the refusal of the garbage");
        await WriteAsync(A, 0x23, "8M", "1M");
        await WaitInSyncAndEqualAsync(A, TimeSpan.FromSeconds(10));
        await AssertReadsAsync(B, 0x23, "8M", "1M");
        Assert.Equal(0, await c.StopAsync(TimeSpan.FromSeconds(15)));
    }

    private static int CountRefusals(string log) => log.Split('\n').Count(l => l.Contains("refused", StringComparison.Ordinal));
}
