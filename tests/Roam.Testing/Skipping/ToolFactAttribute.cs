using Xunit;
using Xunit.Sdk;

namespace Roam.Testing;

/// <summary>
/// A [Fact] that can skip itself at run time: when the test throws <see cref="ToolMissingException"/>
/// (from <see cref="Requires.Tool"/>), the result is "skipped" with the exception's message.
/// xunit 2 has no dynamic skip (Assert.Skip arrives with v3), hence this small test case.
/// </summary>
[XunitTestCaseDiscoverer("Roam.Testing.Skipping.ToolFactDiscoverer", "Roam.Testing")]
[AttributeUsage(AttributeTargets.Method, AllowMultiple = false)]
public sealed class ToolFactAttribute : FactAttribute;
