using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace Roam.Hypervisor.Qmp;

public sealed record QmpClientOptions
{
    /// <summary>How long a command may wait for its reply (and connect for the greeting) unless the call says otherwise.</summary>
    public TimeSpan DefaultTimeout { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>Events kept for <see cref="QmpClient.Events"/>; past this the oldest is dropped (and logged).</summary>
    public int EventCapacity { get; init; } = 1024;

    /// <summary>A line longer than this is a protocol error; it bounds what a broken peer can make us buffer.</summary>
    public int MaxLineBytes { get; init; } = 16 * 1024 * 1024;

    public ILogger Logger { get; init; } = NullLogger.Instance;
}
