namespace Roam.Testing;

/// <summary>
/// Preconditions on the test machine (nbdkit's <c>requires</c>, Npgsql's IgnoreExceptOnBuildServer):
/// a missing tool skips the test locally but fails it when the CI variable is set, so a build
/// server that lost qemu-io cannot go green by silently skipping the interop suite.
/// Only <see cref="ToolFactAttribute"/> tests turn the missing tool into a skip; in a plain
/// [Fact] the <see cref="ToolMissingException"/> fails the test.
/// </summary>
public static class Requires
{
    public static void Tool(string name)
    {
        if (FindOnPath(name) is not null) return;
        if (!string.IsNullOrEmpty(Environment.GetEnvironmentVariable("CI")))
            Xunit.Assert.Fail($"{name} is not installed, and CI is set: install it rather than skipping the tests that need it");
        throw new ToolMissingException($"{name} is not installed");
    }

    public static string? FindOnPath(string name)
    {
        foreach (var dir in (Environment.GetEnvironmentVariable("PATH") ?? "").Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries))
        {
            var candidate = Path.Combine(dir, name);
            if (File.Exists(candidate)) return candidate;
        }
        return null;
    }
}

/// <summary>Thrown by <see cref="Requires.Tool"/>; a <see cref="ToolFactAttribute"/> test reports it as skipped.</summary>
public sealed class ToolMissingException(string message) : Exception(message);
