using System.Diagnostics;
using System.Text;

namespace Roam.EndToEnd.Tests.Infrastructure;

/// <summary>
/// External programs the tests drive (qemu-img, qemu-io). Missing locally, a test that needs one is
/// skipped; with CI=true it runs and fails with a clear message instead, so CI never passes by
/// silently skipping.
/// </summary>
public static class Tools
{
    public static bool IsCi => Environment.GetEnvironmentVariable("CI") is { Length: > 0 } ci && ci != "false" && ci != "0";

    public static string PackageOf(string tool) => tool switch
    {
        "qemu-img" or "qemu-io" => "qemu-utils",
        "nbdinfo" or "nbdcopy" or "nbdsh" => "libnbd-bin",
        _ => tool,
    };

    public static bool Exists(string tool) => Find(tool) is not null;

    public static string? Find(string tool) =>
        (Environment.GetEnvironmentVariable("PATH") ?? "/usr/bin:/bin").Split(':', StringSplitOptions.RemoveEmptyEntries)
            .Select(dir => Path.Combine(dir, tool))
            .FirstOrDefault(File.Exists);

    public static string Require(string tool) =>
        Find(tool) ?? throw new Xunit.Sdk.XunitException($"{tool} is required by this test but is not installed (apt-get install {PackageOf(tool)})");

    /// <summary>Runs a tool to completion and returns its exit code and output.</summary>
    public static async Task<ToolResult> RunAsync(string tool, params string[] arguments)
    {
        using var process = Start(tool, arguments);
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        try { await process.WaitForExitAsync(timeout.Token); }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException($"{tool} {string.Join(' ', arguments)} did not finish in 60 s");
        }
        return new ToolResult(process.ExitCode, await stdout, await stderr);
    }

    /// <summary>Starts a tool and leaves it running (for clients that must hold a connection open).</summary>
    public static Process Start(string tool, params string[] arguments)
    {
        var start = new ProcessStartInfo(Require(tool))
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            UseShellExecute = false,
            StandardOutputEncoding = Encoding.UTF8,
        };
        foreach (var a in arguments) start.ArgumentList.Add(a);
        return Process.Start(start)!;
    }
}

public sealed record ToolResult(int ExitCode, string Stdout, string Stderr)
{
    public ToolResult ShouldSucceed(string what)
    {
        Assert.True(ExitCode == 0, $"{what} exited with {ExitCode}: {Stderr}{Stdout}");
        return this;
    }
}

/// <summary>A fact that needs external tools: skipped locally when one is missing, failing under CI=true.</summary>
public sealed class RequiresToolsFactAttribute : FactAttribute
{
    public RequiresToolsFactAttribute(params string[] tools)
    {
        var missing = tools.Where(t => !Tools.Exists(t)).ToArray();
        if (missing.Length > 0 && !Tools.IsCi)
            Skip = $"needs {string.Join(", ", missing)} (apt-get install {string.Join(' ', missing.Select(Tools.PackageOf).Distinct())}); with CI=true this test fails instead of skipping";
    }
}

/// <summary>A theory that needs external tools: skipped locally when one is missing, failing under CI=true.</summary>
public sealed class RequiresToolsTheoryAttribute : TheoryAttribute
{
    public RequiresToolsTheoryAttribute(params string[] tools)
    {
        var missing = tools.Where(t => !Tools.Exists(t)).ToArray();
        if (missing.Length > 0 && !Tools.IsCi)
            Skip = $"needs {string.Join(", ", missing)} (apt-get install {string.Join(' ', missing.Select(Tools.PackageOf).Distinct())}); with CI=true this test fails instead of skipping";
    }
}
