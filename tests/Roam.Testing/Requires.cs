using System.Diagnostics;

namespace Roam.Testing;

/// <summary>
/// The one rule for a test whose precondition is missing on this machine (a tool such as qemu-io, root for network
/// namespaces): locally the test is skipped with what to install; with the CI variable set it fails instead, so a
/// build server that lost qemu-io cannot go green by skipping the interop tests. A test declares its tools on
/// <see cref="ToolFactAttribute"/> / <see cref="ToolTheoryAttribute"/>, or calls a method here from its body (for what
/// only the test knows, at run time); only those two attributes turn <see cref="MissingRequirementException"/> into a
/// skip, in a plain [Fact] it fails the test.
/// </summary>
public static class Requires
{
    /// <summary>CI is set to anything but empty, "false" or "0" (GitHub Actions, GitLab and most others set CI=true).</summary>
    public static bool IsCi => Environment.GetEnvironmentVariable("CI") is { Length: > 0 } ci
        && !ci.Equals("false", StringComparison.OrdinalIgnoreCase) && ci != "0";

    /// <summary>The Debian/Ubuntu package that installs <paramref name="tool"/>.</summary>
    public static string PackageOf(string tool) => tool switch
    {
        "qemu-img" or "qemu-io" or "qemu-nbd" => "qemu-utils",
        "qemu-system-x86_64" => "qemu-system-x86",
        "nbdinfo" or "nbdcopy" or "nbdsh" => "libnbd-bin",
        "ip" or "tc" => "iproute2",
        "flock" => "util-linux",
        _ => tool,
    };

    /// <summary>The tools of <paramref name="tools"/> not on PATH.</summary>
    public static string[] Missing(IEnumerable<string> tools) => [.. tools.Where(t => !Tools.Exists(t)).Distinct()];

    /// <summary>Skips the test (fails it under CI) unless every one of <paramref name="tools"/> is on PATH.</summary>
    public static void Tool(params string[] tools)
    {
        if (MissingToolsMessage(tools) is { } message) Fail(message);
    }

    /// <summary>Skips the test (fails it under CI) unless <paramref name="met"/>; <paramref name="reason"/> says what is missing and how to provide it.</summary>
    public static void That(bool met, string reason)
    {
        if (!met) Fail(reason);
    }

    /// <summary>
    /// For what needs root (network namespaces, tc): true when the test runs as root, false when it must go through
    /// sudo, which works without a password; with neither the test is skipped (fails under CI).
    /// </summary>
    public static async Task<bool> RootOrPasswordlessSudoAsync()
    {
        if (Environment.UserName == "root") return true;
        That(await PasswordlessSudoAsync().ConfigureAwait(false),
            "needs root or passwordless sudo (run the tests as root, or allow `sudo -n` for this user)");
        return false;
    }

    internal static string? MissingToolsMessage(IEnumerable<string> tools)
    {
        var missing = Missing(tools);
        return missing.Length == 0 ? null
            : $"needs {string.Join(", ", missing)}: apt-get install {string.Join(' ', missing.Select(PackageOf).Distinct())}";
    }

    /// <summary>What a missing requirement does: a skip locally, a failure under CI.</summary>
    internal static Exception Outcome(string reason) => IsCi
        ? new Xunit.Sdk.XunitException($"{reason} (CI is set: a missing requirement fails the test rather than skipping it)")
        : new MissingRequirementException($"{reason} (a [ToolFact] or [ToolTheory] test skips on this; with CI set it fails instead)");

    private static void Fail(string reason) => throw Outcome(reason);

    private static async Task<bool> PasswordlessSudoAsync()
    {
        if (!Tools.Exists("sudo")) return false;
        using var sudo = Process.Start(new ProcessStartInfo("sudo", ["-n", "true"]) { RedirectStandardError = true, UseShellExecute = false })!;
        await sudo.WaitForExitAsync().ConfigureAwait(false);
        return sudo.ExitCode == 0;
    }
}

/// <summary>Thrown by <see cref="Requires"/> outside CI; a <see cref="ToolFactAttribute"/> or <see cref="ToolTheoryAttribute"/> test reports it as skipped.</summary>
public sealed class MissingRequirementException(string message) : Exception(message);
