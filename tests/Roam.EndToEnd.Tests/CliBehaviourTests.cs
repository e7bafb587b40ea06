using System.Diagnostics;
using System.Net.Sockets;
using Roam.EndToEnd.Tests.Infrastructure;
using Spectre.Console.Testing;

namespace Roam.EndToEnd.Tests;

/// <summary>What roam does without a daemon to talk to: usage errors, help, and an unreachable roamd.</summary>
public sealed class CliBehaviourTests : IDisposable
{
    private readonly TestDirectory _dir = new();

    public void Dispose() => _dir.Dispose();

    [Theory]
    [InlineData(new string[0], "Required command was not provided")]
    [InlineData(new[] { "volume", "frobnicate" }, "frobnicate")]
    [InlineData(new[] { "volume", "create", "v1" }, "Option '--size' is required")]
    [InlineData(new[] { "volume", "create", "--size", "1G" }, "Required argument missing")]
    [InlineData(new[] { "volume", "import", "v1", "f.img", "--format", "vmdk" }, "vmdk")]
    [InlineData(new[] { "volume", "list", "--bogus" }, "--bogus")]
    public async Task Usage_errors_exit_2_before_contacting_roamd(string[] arguments, string reason)
    {
        // The socket does not exist: a usage error must be reported as such, not as "unreachable".
        var result = await RoamRunner.RunAsync(new TestConsole(), [.. arguments, "--control", _dir.File("none.sock")]);

        result.ShouldFail(2, reason);
        Assert.Contains("Run 'roam --help' for usage.", result.Stderr);
    }

    [Fact]
    public async Task Unreachable_roamd_exits_3_with_a_hint_to_start_it()
    {
        var socket = _dir.File("control.sock");

        var result = await RoamRunner.RunAsync(new TestConsole(), ["volume", "list", "--control", socket]);

        result.ShouldFail(3, $"roam: cannot reach roamd at {socket}: is it running? (start it with: roamd --data-dir {_dir.Path})");
        Assert.Equal("", result.Stdout);
    }

    [Fact]
    public async Task A_stale_socket_file_is_unreachable_too()
    {
        var path = _dir.File("control.sock");
        // Bound but not listening: connecting is refused, as with the socket file a killed roamd leaves.
        using var bound = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        bound.Bind(new UnixDomainSocketEndPoint(path));
        Assert.True(File.Exists(path));

        var result = await RoamRunner.RunAsync(new TestConsole(), ["host", "status", "--control", path]);

        result.ShouldFail(3, "is it running?");
    }

    [Fact]
    public async Task Control_socket_comes_from_ROAM_CONTROL_when_not_given()
    {
        // Run as a real process so the environment variable is its own.
        var socket = _dir.File("from-env.sock");

        var (exitCode, stdout, stderr) = await RunRoamProcessAsync(["volume", "list"], ("ROAM_CONTROL", socket));

        Assert.Equal(3, exitCode);
        Assert.Equal($"roam: cannot reach roamd at {socket}: is it running? (start it with: roamd --data-dir {_dir.Path})", stderr.Trim());
        Assert.Equal("", stdout);
    }

    [Fact]
    public async Task Help_documents_the_exit_codes()
    {
        var console = new TestConsole().Width(200);

        var result = await RoamRunner.RunAsync(console, ["--help"]);

        Assert.Equal(0, result.ExitCode);
        Assert.Contains("volume", result.Stdout);
        Assert.Contains("--control", result.Stdout);
        Assert.Contains("Exit codes:", result.Stdout);
        Assert.Contains("3  roamd could not be reached", result.Stdout);
    }

    private static async Task<(int ExitCode, string Stdout, string Stderr)> RunRoamProcessAsync(string[] arguments, params (string Name, string Value)[] environment)
    {
        var start = new ProcessStartInfo("dotnet")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        start.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "roam.dll"));
        foreach (var a in arguments) start.ArgumentList.Add(a);
        foreach (var (name, value) in environment) start.Environment[name] = value;
        using var process = Process.Start(start)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        await process.WaitForExitAsync(timeout.Token);
        return (process.ExitCode, await stdout, await stderr);
    }
}
