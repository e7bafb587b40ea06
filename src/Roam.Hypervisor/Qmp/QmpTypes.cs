using System.Text.Json;
using System.Text.Json.Serialization;

namespace Roam.Hypervisor.Qmp;

// Records for the QMP commands Roam uses. Property names are mapped to QAPI's kebab-case by
// QmpJsonContext's naming policy (MaxBandwidth -> "max-bandwidth"). Status-like fields stay
// strings (see MigrationStatus, RunState): a newer QEMU that adds a state must not break parsing.
// Fields Roam does not read are left out; JSON members without a property are ignored.

/// <summary>The greeting: <c>{"QMP": {"version": {...}, "capabilities": ["oob"]}}</c>.</summary>
public sealed record QmpGreeting(QmpVersionInfo Version, IReadOnlyList<string> Capabilities);

/// <summary>query-version, and the greeting's "version".</summary>
public sealed record QmpVersionInfo(QemuVersion Qemu, string Package);

public sealed record QemuVersion(int Major, int Minor, int Micro)
{
    public override string ToString() => $"{Major}.{Minor}.{Micro}";
}

/// <summary>query-status.</summary>
public sealed record StatusInfo(bool Running, string Status);

/// <summary>query-status "status" values Roam tests for (QAPI RunState).</summary>
public static class RunState
{
    public const string Running = "running";
    public const string Paused = "paused";
    public const string InMigrate = "inmigrate";
    public const string PostMigrate = "postmigrate";
    public const string FinishMigrate = "finish-migrate";
    public const string Prelaunch = "prelaunch";
    public const string Shutdown = "shutdown";
}

/// <summary>query-kvm.</summary>
public sealed record KvmInfo(bool Enabled, bool Present);

/// <summary>query-migrate. Every field is optional: before the first migrate the reply is <c>{}</c>, and QEMU 7.2
/// reports "completed" (and sends the MIGRATION event) a moment before it fills in total-time (reported as 0 until then).</summary>
public sealed record MigrationInfo(
    string? Status,
    MigrationStats? Ram,
    long? TotalTime,
    long? ExpectedDowntime,
    long? Downtime,
    long? SetupTime,
    string? ErrorDesc);

/// <summary>MIGRATION event and query-migrate "status" values (QAPI MigrationStatus).</summary>
public static class MigrationStatus
{
    public const string None = "none";
    public const string Setup = "setup";
    public const string Active = "active";
    public const string PreSwitchover = "pre-switchover";
    public const string Device = "device";
    public const string Completed = "completed";
    public const string Failed = "failed";
    public const string Cancelling = "cancelling";
    public const string Cancelled = "cancelled";

    /// <summary>True once the migration can no longer change state by itself.</summary>
    public static bool IsFinal(string? status) => status is Completed or Failed or Cancelled;
}

/// <summary>query-migrate "ram" (QAPI MigrationStats); sizes in bytes, rates per second.</summary>
public sealed record MigrationStats(
    long Transferred,
    long Remaining,
    long Total,
    long Duplicate,
    long Normal,
    long NormalBytes,
    long DirtyPagesRate,
    double Mbps,
    long DirtySyncCount,
    long PostcopyRequests,
    long PageSize,
    long PagesPerSecond,
    long PrecopyBytes,
    long DowntimeBytes);

/// <summary>One entry of migrate-set-capabilities / query-migrate-capabilities.</summary>
public sealed record MigrationCapabilityStatus(string Capability, bool State);

/// <summary>Capability names (QAPI MigrationCapability) Roam uses.</summary>
public static class MigrationCapability
{
    /// <summary>Stop at "pre-switchover" until migrate-continue: Roam's window to finish the disk.</summary>
    public const string PauseBeforeSwitchover = "pause-before-switchover";
    /// <summary>Emit MIGRATION events on state changes.</summary>
    public const string Events = "events";
    public const string AutoConverge = "auto-converge";
    public const string ReturnPath = "return-path";
    public const string Multifd = "multifd";
    public const string PostcopyRam = "postcopy-ram";
    public const string XbzrLe = "xbzrle";
    public const string ZeroCopySend = "zero-copy-send";
}

public sealed record MigrateSetCapabilitiesArguments(IReadOnlyList<MigrationCapabilityStatus> Capabilities);

/// <summary>migrate-set-parameters; null members are not sent (and so stay unchanged).</summary>
public sealed record MigrationParameters
{
    /// <summary>Bytes per second.</summary>
    public long? MaxBandwidth { get; init; }
    /// <summary>Milliseconds of acceptable final downtime.</summary>
    public long? DowntimeLimit { get; init; }
    public string? TlsCreds { get; init; }
    public string? TlsHostname { get; init; }
    public int? MultifdChannels { get; init; }
    public int? CpuThrottleInitial { get; init; }
    public int? CpuThrottleIncrement { get; init; }
    public long? XbzrleCacheSize { get; init; }
}

public sealed record MigrateArguments(string Uri);

public sealed record MigrateIncomingArguments(string Uri);

public sealed record MigrateContinueArguments(string State);

/// <summary>query-block entry; "inserted" (the medium and its node) is left as JSON.</summary>
public sealed record BlockInfo(string Device, string? Qdev, bool Locked, bool Removable, JsonElement? Inserted);

/// <summary>blockdev-add for an NBD export over a Unix socket:
/// <c>{"driver": "nbd", "node-name": N, "server": {"type": "unix", "path": P}, "export": E}</c>.</summary>
public sealed record BlockdevAddNbdArguments(string NodeName, NbdServerAddress Server, string Export)
{
    public string Driver { get; init; } = "nbd";
    public bool? ReadOnly { get; init; }
}

/// <summary>QAPI SocketAddress: {"type": "unix", "path": ...} or {"type": "inet", "host": ..., "port": ...}.</summary>
public sealed record NbdServerAddress(string Type, string? Path = null, string? Host = null, string? Port = null)
{
    public static NbdServerAddress Unix(string path) => new("unix", Path: path);
    public static NbdServerAddress Inet(string host, int port) => new("inet", Host: host, Port: port.ToString(System.Globalization.CultureInfo.InvariantCulture));
}

public sealed record BlockdevDelArguments(string NodeName);

/// <summary>device_add; device properties beyond these are free-form in QAPI, pass a JsonObject for those.</summary>
public sealed record DeviceAddArguments(string Driver, string Id, string? Drive = null, string? Bus = null);

public sealed record DeviceDelArguments(string Id);

/// <summary>set_link: a NIC's (or netdev's) link up or down, as the guest sees its carrier.</summary>
public sealed record SetLinkArguments(string Name, bool Up);

/// <summary>The reply of a command whose "return" is <c>{}</c>.</summary>
public sealed record QmpEmpty;
