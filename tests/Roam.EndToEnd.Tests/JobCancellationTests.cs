using Roam.EndToEnd.Tests.Infrastructure;

namespace Roam.EndToEnd.Tests;

/// <summary>
/// Imports that do not finish. roamd runs with a stand-in qemu-img whose `convert` reports 0% and
/// then hangs (everything else goes to the real qemu-img), so the job is reliably still running
/// when the test cancels it or stops roamd.
/// </summary>
public sealed class JobCancellationTests : RoamdTest
{
    private readonly string _qcow2;
    private readonly Dictionary<string, string> _environment;

    public JobCancellationTests()
    {
        var bin = Dir.Sub("bin");
        var stub = Path.Combine(bin, "qemu-img");
        var real = Tools.Find("qemu-img") ?? "/usr/bin/qemu-img";
        File.WriteAllText(stub, $"""
            #!/bin/sh
            if [ "$1" = convert ]; then
              printf '    (0.00/100%%)\r'
              exec sleep 600
            fi
            exec {real} "$@"
            """.Replace("\r", ""));
        File.SetUnixFileMode(stub, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        _environment = new() { ["PATH"] = $"{bin}:{Environment.GetEnvironmentVariable("PATH")}" };
        _qcow2 = Dir.File("image.qcow2");
    }

    protected override IReadOnlyDictionary<string, string>? RoamdEnvironment => _environment;

    private async Task MakeQcow2Async() =>
        (await Tools.RunAsync("qemu-img", "create", "-f", "qcow2", _qcow2, "64M")).ShouldSucceed("qemu-img create");

    private async Task WaitForRunningJobAsync()
    {
        var deadline = DateTime.UtcNow.AddSeconds(20);
        while (true)
        {
            var jobs = (await Roam("job", "list", "--json")).ShouldSucceed().Json;
            if (jobs.EnumerateArray().Any(j => j.GetProperty("state").GetString() == "running")) return;
            Assert.True(DateTime.UtcNow < deadline, "the import job never started running");
            await Task.Delay(50);
        }
    }

    [ToolFact("qemu-img")]
    public async Task Cancelling_an_import_removes_the_unfinished_volume()
    {
        await MakeQcow2Async();
        var import = Roam("volume", "import", "vol1", _qcow2);
        await WaitForRunningJobAsync();
        Assert.Equal(64L << 20, (await ShowAsync("vol1")).GetProperty("size").GetInt64()); // made before the copy starts

        (await Roam("job", "cancel", "1")).ShouldSucceed();
        var result = await import.WaitAsync(TimeSpan.FromSeconds(30));

        result.ShouldFail(1, "import cancelled; the unfinished volume vol1 was removed");
        var job = (await Roam("job", "show", "1", "--json")).ShouldSucceed().Json;
        Assert.Equal("cancelled", job.GetProperty("state").GetString());
        Assert.Equal(0, (await Roam("volume", "list", "--json")).ShouldSucceed().Json.GetArrayLength());
        Assert.False(File.Exists(Path.Combine(DataDir, "volumes", "vol1.raw")));
    }

    [ToolFact("qemu-img")]
    public async Task Sigterm_during_an_import_cancels_it_and_still_exits_0()
    {
        await MakeQcow2Async();
        var import = Roam("volume", "import", "vol1", _qcow2);
        await WaitForRunningJobAsync();

        int exitCode = await Roamd.StopAsync(TimeSpan.FromSeconds(15));
        var result = await import.WaitAsync(TimeSpan.FromSeconds(30));

        Assert.Equal(0, exitCode);
        Assert.Contains("removed the unfinished volume vol1", Roamd.Output);
        Assert.NotEqual(0, result.ExitCode); // the CLI lost its daemon mid-job: one line, no trace
        Assert.StartsWith("roam: ", result.Stderr);
        Assert.False(File.Exists(Path.Combine(DataDir, "volumes", "vol1.raw")));
        Assert.False(File.Exists(Path.Combine(DataDir, "volumes", "vol1.json")));
    }
}
