using System.Reflection;
using Xunit.Abstractions;
using Xunit.Sdk;

namespace Roam.Testing.Skipping;

public sealed class ToolFactDiscoverer(IMessageSink diagnosticMessageSink) : IXunitTestCaseDiscoverer
{
    public IEnumerable<IXunitTestCase> Discover(ITestFrameworkDiscoveryOptions discoveryOptions, ITestMethod testMethod, IAttributeInfo factAttribute) =>
        [new ToolTestCase(diagnosticMessageSink, discoveryOptions.MethodDisplayOrDefault(), discoveryOptions.MethodDisplayOptionsOrDefault(), testMethod)];
}

public sealed class ToolTheoryDiscoverer(IMessageSink diagnosticMessageSink) : TheoryDiscoverer(diagnosticMessageSink)
{
    protected override IEnumerable<IXunitTestCase> CreateTestCasesForDataRow(ITestFrameworkDiscoveryOptions discoveryOptions, ITestMethod testMethod,
        IAttributeInfo theoryAttribute, object[] dataRow) =>
        [new ToolTestCase(DiagnosticMessageSink, discoveryOptions.MethodDisplayOrDefault(), discoveryOptions.MethodDisplayOptionsOrDefault(), testMethod, dataRow)];

    protected override IEnumerable<IXunitTestCase> CreateTestCasesForTheory(ITestFrameworkDiscoveryOptions discoveryOptions, ITestMethod testMethod,
        IAttributeInfo theoryAttribute) =>
        [new ToolTheoryTestCase(DiagnosticMessageSink, discoveryOptions.MethodDisplayOrDefault(), discoveryOptions.MethodDisplayOptionsOrDefault(), testMethod)];
}

/// <summary>A fact, or one data row of a theory, under the <see cref="Requires"/> rule.</summary>
public sealed class ToolTestCase : XunitTestCase
{
    [Obsolete("Called by the de-serializer", error: true)]
    public ToolTestCase() { }

    public ToolTestCase(IMessageSink diagnosticMessageSink, TestMethodDisplay display, TestMethodDisplayOptions options, ITestMethod testMethod,
        object[]? testMethodArguments = null)
        : base(diagnosticMessageSink, display, options, testMethod, testMethodArguments) { }

    public override Task<RunSummary> RunAsync(IMessageSink diagnosticMessageSink, IMessageBus messageBus, object[] constructorArguments,
        ExceptionAggregator aggregator, CancellationTokenSource cancellationTokenSource) =>
        ToolRule.RunAsync(this, messageBus, aggregator, (bus, skipReason, caseAggregator) =>
            new XunitTestCaseRunner(this, DisplayName, skipReason, constructorArguments, TestMethodArguments, bus, caseAggregator, cancellationTokenSource).RunAsync());
}

/// <summary>A theory whose data is enumerated when it runs (not serializable at discovery), under the <see cref="Requires"/> rule.</summary>
public sealed class ToolTheoryTestCase : XunitTheoryTestCase
{
    [Obsolete("Called by the de-serializer", error: true)]
    public ToolTheoryTestCase() { }

    public ToolTheoryTestCase(IMessageSink diagnosticMessageSink, TestMethodDisplay display, TestMethodDisplayOptions options, ITestMethod testMethod)
        : base(diagnosticMessageSink, display, options, testMethod) { }

    public override Task<RunSummary> RunAsync(IMessageSink diagnosticMessageSink, IMessageBus messageBus, object[] constructorArguments,
        ExceptionAggregator aggregator, CancellationTokenSource cancellationTokenSource) =>
        ToolRule.RunAsync(this, messageBus, aggregator, (bus, skipReason, caseAggregator) =>
            new XunitTheoryTestCaseRunner(this, DisplayName, skipReason, constructorArguments, diagnosticMessageSink, bus, caseAggregator, cancellationTokenSource).RunAsync());
}

internal static class ToolRule
{
    /// <summary>
    /// Checks the attribute's tools first: missing, the test is skipped without running (or, under CI, failed without
    /// running); else it runs, and a <see cref="MissingRequirementException"/> from its body is reported as a skip.
    /// </summary>
    public static async Task<RunSummary> RunAsync(XunitTestCase testCase, IMessageBus messageBus, ExceptionAggregator aggregator,
        Func<IMessageBus, string?, ExceptionAggregator, Task<RunSummary>> run)
    {
        // Its own aggregator: the one passed in is the test method's, shared with the method's other cases (theory rows).
        var caseAggregator = new ExceptionAggregator(aggregator);
        var method = testCase.TestMethod.Method.ToRuntimeMethod();
        var tools = method.GetCustomAttribute<ToolFactAttribute>()?.Tools ?? method.GetCustomAttribute<ToolTheoryAttribute>()?.Tools ?? [];
        if (testCase.SkipReason is null && Requires.MissingToolsMessage(tools) is { } missing)
        {
            switch (Requires.Outcome(missing))
            {
                case MissingRequirementException skip:
                    return await run(messageBus, skip.Message, caseAggregator).ConfigureAwait(false);
                case var failure:
                    caseAggregator.Add(failure);
                    return await run(messageBus, null, caseAggregator).ConfigureAwait(false);
            }
        }
        var bus = new SkippingMessageBus(messageBus);
        var summary = await run(bus, testCase.SkipReason, caseAggregator).ConfigureAwait(false);
        summary.Failed -= bus.Skipped;
        summary.Skipped += bus.Skipped;
        return summary;
    }

    /// <summary>Turns the failure of a test that threw <see cref="MissingRequirementException"/> into a skip with its message.</summary>
    private sealed class SkippingMessageBus(IMessageBus inner) : IMessageBus
    {
        public int Skipped;

        public bool QueueMessage(IMessageSinkMessage message)
        {
            if (message is ITestFailed failed && failed.ExceptionTypes.FirstOrDefault() == typeof(MissingRequirementException).FullName)
            {
                Interlocked.Increment(ref Skipped);
                return inner.QueueMessage(new TestSkipped(failed.Test, failed.Messages.FirstOrDefault() ?? "a requirement is missing"));
            }
            return inner.QueueMessage(message);
        }

        public void Dispose() { }
    }
}
