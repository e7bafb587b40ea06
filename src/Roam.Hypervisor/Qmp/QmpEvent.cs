using System.Text.Json;

namespace Roam.Hypervisor.Qmp;

/// <summary>
/// An asynchronous QMP message: <c>{"event": "STOP", "data": {...}, "timestamp": {"seconds": s, "microseconds": us}}</c>.
/// <see cref="Data"/> is detached from the line buffer (cloned), so it can be kept.
/// </summary>
public sealed record QmpEvent(string Name, JsonElement Data, DateTimeOffset Timestamp)
{
    /// <summary>A string field of <see cref="Data"/> (MIGRATION's "status", BLOCK_JOB_READY's "device"), or null.</summary>
    public string? GetString(string property) =>
        Data.ValueKind == JsonValueKind.Object && Data.TryGetProperty(property, out var v) && v.ValueKind == JsonValueKind.String
            ? v.GetString()
            : null;
}

/// <summary>Event names Roam waits for (QAPI spelling).</summary>
public static class QmpEvents
{
    public const string Migration = "MIGRATION";
    public const string MigrationPass = "MIGRATION_PASS";
    public const string Stop = "STOP";
    public const string Resume = "RESUME";
    public const string Shutdown = "SHUTDOWN";
    public const string Powerdown = "POWERDOWN";
    public const string BlockJobReady = "BLOCK_JOB_READY";
    public const string BlockJobCompleted = "BLOCK_JOB_COMPLETED";
    public const string BlockJobError = "BLOCK_JOB_ERROR";
}
