using System.Diagnostics;
using System.Text;

namespace Roam.Testing;

/// <summary>
/// External programs the tests drive (qemu-img, qemu-io, nbdinfo, fio...): found on PATH, run with a timeout and both
/// output streams captured. A tool that is not installed is a missing requirement (<see cref="Requires"/>): skipped
/// in a <see cref="ToolFactAttribute"/> test, a failure under CI.
/// </summary>
public static class Tools
{
    public static readonly TimeSpan DefaultTimeout = TimeSpan.FromSeconds(60);

    public static bool Exists(string tool) => Find(tool) is not null;

    /// <summary>The tool's path on PATH, or null; a path (with a '/') is taken as it is, if the file exists.</summary>
    public static string? Find(string tool)
    {
        if (tool.Contains('/')) return File.Exists(tool) ? tool : null;
        return (Environment.GetEnvironmentVariable("PATH") ?? "/usr/bin:/bin").Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries)
            .Select(dir => Path.Combine(dir, tool))
            .FirstOrDefault(File.Exists);
    }

    /// <summary>The tool's path; a missing tool skips the test (fails it under CI).</summary>
    public static string Require(string tool)
    {
        if (Find(tool) is { } path) return path;
        Requires.Tool(tool);
        throw new UnreachableException();
    }

    public static Task<ToolResult> RunAsync(string tool, params string[] args) => RunAsync(tool, args, DefaultTimeout);

    /// <summary>Runs a tool to completion (stdin closed) and returns its exit code and output.</summary>
    public static async Task<ToolResult> RunAsync(string tool, IReadOnlyList<string> args, TimeSpan timeout)
    {
        using var process = Start(tool, args);
        process.StandardInput.Close(); // no tool here reads stdin; EOF keeps an interactive prompt from waiting forever
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        using var cts = new CancellationTokenSource(timeout);
        try
        {
            await process.WaitForExitAsync(cts.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            await process.WaitForExitAsync().ConfigureAwait(false);
            throw new TimeoutException($"{Describe(tool, args)} did not finish within {timeout}\nstdout:\n{await stdout}\nstderr:\n{await stderr}");
        }
        return new ToolResult(Describe(tool, args), process.ExitCode, await stdout.ConfigureAwait(false), await stderr.ConfigureAwait(false));
    }

    /// <summary>Starts a tool and leaves it running (for clients that must hold a connection open); all three streams redirected.</summary>
    public static Process Start(string tool, params IReadOnlyList<string> args)
    {
        var start = new ProcessStartInfo(Require(tool))
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            UseShellExecute = false,
            StandardOutputEncoding = Encoding.UTF8,
            StandardErrorEncoding = Encoding.UTF8,
        };
        foreach (var arg in args) start.ArgumentList.Add(arg);
        return Process.Start(start) ?? throw new InvalidOperationException($"could not start {tool}");
    }

    private static string Describe(string tool, IReadOnlyList<string> args) =>
        string.Join(' ', new[] { tool }.Concat(args.Select(a => a.Contains(' ') ? $"'{a}'" : a)));
}

public sealed record ToolResult(string CommandLine, int ExitCode, string Stdout, string Stderr)
{
    /// <summary>Fails the test with <paramref name="what"/> (else the command line) and the whole output unless the tool exited 0.</summary>
    public ToolResult ShouldSucceed(string? what = null)
    {
        if (ExitCode != 0) Xunit.Assert.Fail($"{what ?? CommandLine} exited {ExitCode}\nstdout:\n{Stdout}\nstderr:\n{Stderr}");
        return this;
    }

    public override string ToString() => $"{CommandLine} -> {ExitCode}\nstdout:\n{Stdout}\nstderr:\n{Stderr}";
}
