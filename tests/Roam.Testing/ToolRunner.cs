using System.Diagnostics;

namespace Roam.Testing;

/// <summary>Runs an external tool (qemu-io, nbdinfo, fio...) with a timeout, capturing both output streams.</summary>
public static class ToolRunner
{
    public static readonly TimeSpan DefaultTimeout = TimeSpan.FromSeconds(60);

    public static Task<ToolResult> RunAsync(string tool, params string[] args) => RunAsync(tool, args, DefaultTimeout);

    public static async Task<ToolResult> RunAsync(string tool, IReadOnlyList<string> args, TimeSpan timeout)
    {
        var start = new ProcessStartInfo(tool)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            UseShellExecute = false,
        };
        foreach (var arg in args) start.ArgumentList.Add(arg);
        using var process = Process.Start(start) ?? throw new InvalidOperationException($"could not start {tool}");
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

    private static string Describe(string tool, IReadOnlyList<string> args) =>
        string.Join(' ', new[] { tool }.Concat(args.Select(a => a.Contains(' ') ? $"'{a}'" : a)));
}

public sealed record ToolResult(string CommandLine, int ExitCode, string StdOut, string StdErr)
{
    /// <summary>Fails the test with the whole command line and output unless the tool exited 0.</summary>
    public ToolResult EnsureSuccess()
    {
        if (ExitCode != 0) Xunit.Assert.Fail($"{CommandLine} exited {ExitCode}\nstdout:\n{StdOut}\nstderr:\n{StdErr}");
        return this;
    }

    public override string ToString() => $"{CommandLine} -> {ExitCode}\nstdout:\n{StdOut}\nstderr:\n{StdErr}";
}
