using Xunit;
using Xunit.Sdk;

namespace Roam.Testing;

/// <summary>
/// A [Fact] that needs <paramref name="tools"/> on PATH, or anything else its body checks with <see cref="Requires"/>:
/// when one is missing it is skipped with what to apt-get install, and with CI set it fails instead.
/// The check runs when the test would run, not at discovery (xunit 2 has no dynamic skip: Assert.Skip arrives with v3).
/// </summary>
[XunitTestCaseDiscoverer("Roam.Testing.Skipping.ToolFactDiscoverer", "Roam.Testing")]
[AttributeUsage(AttributeTargets.Method, AllowMultiple = false)]
public sealed class ToolFactAttribute(params string[] tools) : FactAttribute
{
    public IReadOnlyList<string> Tools { get; } = tools;
}

/// <summary>A [Theory] under the rule of <see cref="ToolFactAttribute"/>: every case is skipped (or, under CI, failed) when a tool is missing.</summary>
[XunitTestCaseDiscoverer("Roam.Testing.Skipping.ToolTheoryDiscoverer", "Roam.Testing")]
[AttributeUsage(AttributeTargets.Method, AllowMultiple = false)]
public sealed class ToolTheoryAttribute(params string[] tools) : TheoryAttribute
{
    public IReadOnlyList<string> Tools { get; } = tools;
}
