using System.Text.Json;
using Roam.Cli;
using Spectre.Console.Testing;

namespace Roam.EndToEnd.Tests.Infrastructure;

/// <summary>Runs the real `roam` command line in-process, against a test's roamd.</summary>
public static class RoamRunner
{
    /// <summary>Runs roam with --control pointing at <paramref name="controlSocket"/>; output is captured, never a terminal.</summary>
    public static Task<CliResult> RunAsync(string controlSocket, params string[] arguments) =>
        RunAsync(new TestConsole().Width(250), [.. arguments, "--control", controlSocket]);

    /// <summary>Runs roam exactly with the given arguments and console.</summary>
    public static async Task<CliResult> RunAsync(TestConsole console, string[] arguments)
    {
        var error = new StringWriter();
        int exitCode = await RoamCli.Run(arguments, console, error);
        return new CliResult(exitCode, console.Output, error.ToString());
    }
}

public sealed record CliResult(int ExitCode, string Stdout, string Stderr)
{
    /// <summary>Stdout parsed as JSON (the --json output).</summary>
    public JsonElement Json
    {
        get
        {
            try { return JsonDocument.Parse(Stdout).RootElement; }
            catch (JsonException ex) { throw new Xunit.Sdk.XunitException($"roam's stdout is not JSON ({ex.Message}):\n{Stdout}\nstderr: {Stderr}"); }
        }
    }

    public CliResult ShouldSucceed()
    {
        Assert.True(ExitCode == 0, $"roam exited with {ExitCode}; stderr: {Stderr}; stdout: {Stdout}");
        Assert.Equal("", Stderr);
        return this;
    }

    /// <summary>Asserts the exit code and that stderr is exactly one "roam: ..." line containing <paramref name="reason"/>.</summary>
    public CliResult ShouldFail(int exitCode, string reason)
    {
        Assert.True(ExitCode == exitCode, $"expected exit code {exitCode}, got {ExitCode}; stderr: {Stderr}; stdout: {Stdout}");
        var lines = Stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.StartsWith("roam: ", lines[0]);
        Assert.Contains(reason, Stderr);
        Assert.DoesNotContain("   at ", Stderr); // never a stack trace
        return this;
    }
}
