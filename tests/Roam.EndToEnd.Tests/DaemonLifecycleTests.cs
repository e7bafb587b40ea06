using System.Diagnostics;
using Roam.EndToEnd.Tests.Infrastructure;

namespace Roam.EndToEnd.Tests;

/// <summary>roamd as a process: one per data dir, clean stop on SIGTERM, data surviving restarts, options.</summary>
public sealed class DaemonLifecycleTests : IDisposable
{
    private readonly TestDirectory _dir = new();

    private string DataDir => Path.Combine(_dir.Path, "data");

    public void Dispose() => _dir.Dispose();

    [Fact]
    public async Task A_second_roamd_on_the_same_data_dir_exits_1_naming_the_holder()
    {
        await using var first = await RoamdProcess.StartAsync(DataDir);

        using var second = RoamdProcess.Spawn(["--data-dir", DataDir]);
        var stderr = second.StandardError.ReadToEndAsync();
        await WaitForExitAsync(second, TimeSpan.FromSeconds(20));

        Assert.Equal(1, second.ExitCode);
        Assert.Equal($"roamd: data dir {DataDir} is in use by another roamd (pid {first.Process.Id})", (await stderr).Trim());
        Assert.False(first.Process.HasExited);
        (await RoamRunner.RunAsync(first.ControlSocket, "host", "status")).ShouldSucceed(); // the first one is untouched
    }

    [Fact]
    public async Task Sigterm_exits_0_quickly_removes_the_sockets_and_releases_the_lock()
    {
        var first = await RoamdProcess.StartAsync(DataDir);
        await using (first)
        {
            (await RoamRunner.RunAsync(first.ControlSocket, "volume", "create", "keep", "--size", "1G")).ShouldSucceed();
            var clock = Stopwatch.StartNew();

            int exitCode = await first.StopAsync(TimeSpan.FromSeconds(10));

            Assert.Equal(0, exitCode);
            Assert.True(clock.Elapsed < TimeSpan.FromSeconds(5), $"roamd took {clock.Elapsed} to stop");
            Assert.False(File.Exists(first.ControlSocket), "control.sock left behind");
            Assert.False(File.Exists(first.NbdSocket), "nbd.sock left behind");
            Assert.Contains("Stopped", first.Output);
        }

        await using var second = await RoamdProcess.StartAsync(DataDir); // the lock is free again
        var volumes = (await RoamRunner.RunAsync(second.ControlSocket, "volume", "list", "--json")).ShouldSucceed().Json;
        Assert.Equal("keep", Assert.Single(volumes.EnumerateArray()).GetProperty("name").GetString());
    }

    [ToolFact("qemu-io")]
    public async Task Sigterm_with_a_connected_nbd_client_still_exits_0()
    {
        await using var roamd = await RoamdProcess.StartAsync(DataDir);
        (await RoamRunner.RunAsync(roamd.ControlSocket, "volume", "create", "vol1", "--size", "64M")).ShouldSucceed();
        using var client = Tools.Start("qemu-io", "-f", "raw", roamd.NbdUri("vol1"), "-c", "sleep 30000");
        try
        {
            await Wait.UntilAsync(async () => (await RoamRunner.RunAsync(roamd.ControlSocket, "volume", "show", "vol1", "--json"))
                .ShouldSucceed().Json.GetProperty("openConnections").GetInt32() == 1, TimeSpan.FromSeconds(20), "qemu-io to connect");

            int exitCode = await roamd.StopAsync(TimeSpan.FromSeconds(15));

            Assert.Equal(0, exitCode);
            Assert.Contains("disconnecting 1 NBD client(s)", roamd.Output);
        }
        finally
        {
            if (!client.HasExited) client.Kill();
            await client.WaitForExitAsync();
        }
    }

    [ToolFact("qemu-io")]
    public async Task Data_written_over_nbd_is_there_after_a_restart()
    {
        var first = await RoamdProcess.StartAsync(DataDir);
        await using (first)
        {
            (await RoamRunner.RunAsync(first.ControlSocket, "volume", "create", "vol1", "--size", "64M")).ShouldSucceed();
            var write = await Tools.RunAsync("qemu-io", "-f", "raw", first.NbdUri("vol1"), "-c", "write -P 0xab 1M 256k", "-c", "flush");
            write.ShouldSucceed("qemu-io write");
            Assert.Equal(0, await first.StopAsync(TimeSpan.FromSeconds(10)));
        }

        await using var second = await RoamdProcess.StartAsync(DataDir);
        var read = await Tools.RunAsync("qemu-io", "-f", "raw", second.NbdUri("vol1"), "-c", "read -P 0xab 1M 256k", "-c", "read -P 0 0 1M");
        var wrong = await Tools.RunAsync("qemu-io", "-f", "raw", second.NbdUri("vol1"), "-c", "read -P 0xcd 1M 256k");

        read.ShouldSucceed("qemu-io read");
        Assert.DoesNotContain("Pattern verification failed", read.Stdout + read.Stderr);
        Assert.Contains("read 262144/262144 bytes at offset 1048576", read.Stdout);
        Assert.Contains("Pattern verification failed", wrong.Stdout + wrong.Stderr); // the check can fail
        var shown = (await RoamRunner.RunAsync(second.ControlSocket, "volume", "show", "vol1", "--json")).ShouldSucceed().Json;
        Assert.InRange(shown.GetProperty("allocatedBytes").GetInt64(), 256 * 1024, 1024 * 1024);
    }

    [Fact]
    public async Task Config_file_sets_data_dir_and_nbd_listen()
    {
        var config = _dir.File("roamd.json");
        await File.WriteAllTextAsync(config, """{ "dataDir": "cfg-data", "nbdListen": "127.0.0.1:0" }""");
        var expected = Path.Combine(_dir.Path, "cfg-data"); // relative to the config file

        var host = await RunAndQueryHostAsync(["--config", config], Path.Combine(expected, "control.sock"));

        Assert.Equal(expected, host.GetProperty("dataDir").GetString());
        Assert.StartsWith("127.0.0.1:", host.GetProperty("nbdTcp").GetString());
    }

    [Fact]
    public async Task Config_file_sets_the_host_name_and_peer_listener()
    {
        var config = _dir.File("roamd.json");
        await File.WriteAllTextAsync(config, """{ "dataDir": "cfg-data", "hostName": "from-config", "peerListen": "127.0.0.1:0", "syncTimeout": 1.5 }""");

        var host = await RunAndQueryHostAsync(["--config", config], Path.Combine(_dir.Path, "cfg-data", "control.sock"));

        Assert.Equal("from-config", host.GetProperty("hostName").GetString());
        Assert.StartsWith("SHA256:", host.GetProperty("fingerprint").GetString());
        Assert.StartsWith("127.0.0.1:", host.GetProperty("peerListen").GetString());
        Assert.NotEqual("127.0.0.1:0", host.GetProperty("peerListen").GetString());
    }

    [Fact]
    public async Task Command_line_wins_over_the_config_file()
    {
        var config = _dir.File("roamd.json");
        await File.WriteAllTextAsync(config, """{ "dataDir": "cfg-data", "nbdListen": "127.0.0.1:0" }""");

        var host = await RunAndQueryHostAsync(["--config", config, "--data-dir", DataDir, "--nbd-listen", "127.0.0.2:0"], Path.Combine(DataDir, "control.sock"));

        Assert.Equal(DataDir, host.GetProperty("dataDir").GetString());
        Assert.StartsWith("127.0.0.2:", host.GetProperty("nbdTcp").GetString());
        Assert.False(Directory.Exists(Path.Combine(_dir.Path, "cfg-data")));
    }

    [Fact]
    public async Task Without_nbd_listen_there_is_no_tcp_endpoint()
    {
        var host = await RunAndQueryHostAsync(["--data-dir", DataDir], Path.Combine(DataDir, "control.sock"));

        Assert.Equal(System.Text.Json.JsonValueKind.Null, host.GetProperty("nbdTcp").ValueKind);
        Assert.Equal(Path.Combine(DataDir, "nbd.sock"), host.GetProperty("nbdSocket").GetString());
    }

    [Theory]
    [InlineData(new[] { "--nbd-listen", "not-an-address" }, "invalid NBD listen address 'not-an-address'")]
    [InlineData(new[] { "--bogus" }, "--bogus")]
    [InlineData(new[] { "--peer-listen", "nowhere:x" }, "invalid peer listen address 'nowhere:x'")]
    [InlineData(new[] { "--sync-timeout", "0" }, "invalid sync timeout 0")]
    [InlineData(new[] { "--host-name", " " }, "invalid host name")]
    [InlineData(new[] { "--config", "/nonexistent/roamd.json" }, "cannot read config file /nonexistent/roamd.json")]
    public async Task Bad_options_exit_2_with_one_line(string[] arguments, string reason)
    {
        using var process = SpawnRaw(["--data-dir", DataDir, .. arguments]);
        var stderr = process.StandardError.ReadToEndAsync();
        await WaitForExitAsync(process, TimeSpan.FromSeconds(20));

        Assert.Equal(2, process.ExitCode);
        Assert.StartsWith("roamd: ", await stderr);
        Assert.Contains(reason, await stderr);
        Assert.False(File.Exists(Path.Combine(DataDir, "roamd.lock")), "roamd took the lock although its options were bad");
    }

    [Fact]
    public async Task Help_lists_the_options()
    {
        using var process = SpawnRaw(["--help"]);
        var stdout = process.StandardOutput.ReadToEndAsync();
        await WaitForExitAsync(process, TimeSpan.FromSeconds(20));

        Assert.Equal(0, process.ExitCode);
        foreach (var option in new[] { "--data-dir", "--config", "--nbd-listen" }) Assert.Contains(option, await stdout);
    }

    private static Process SpawnRaw(string[] arguments) => RoamdProcess.Spawn(arguments);

    /// <summary>Starts roamd with exactly these arguments, asks `roam host status --json`, stops it (expecting exit 0).</summary>
    private static async Task<System.Text.Json.JsonElement> RunAndQueryHostAsync(string[] arguments, string controlSocket)
    {
        using var process = SpawnRaw(arguments);
        var stdout = process.StandardOutput.ReadToEndAsync(); // drained so roamd never blocks on a full pipe
        var stderr = process.StandardError.ReadToEndAsync();
        try
        {
            await Wait.UntilAsync(async () => process.HasExited || await RoamdProcess.CanConnectAsync(controlSocket), TimeSpan.FromSeconds(20), $"roamd to open {controlSocket}");
            if (process.HasExited) Assert.Fail($"roamd exited with {process.ExitCode}: {await stderr}{await stdout}");
            return (await RoamRunner.RunAsync(controlSocket, "host", "status", "--json")).ShouldSucceed().Json;
        }
        finally
        {
            if (!process.HasExited) RoamdProcess.Signal(process.Id, RoamdProcess.SigTerm);
            await WaitForExitAsync(process, TimeSpan.FromSeconds(10));
            Assert.Equal(0, process.ExitCode);
        }
    }

    private static async Task WaitForExitAsync(Process process, TimeSpan timeout)
    {
        using var cts = new CancellationTokenSource(timeout);
        try { await process.WaitForExitAsync(cts.Token); }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException($"process {process.Id} did not exit within {timeout}");
        }
    }
}
