using System.Text.Json.Serialization;

// VMs' wire records (compiled into roamd and roam, like ControlContracts.cs).
namespace Roam.Control;

/// <summary>POST /v1/vms. Memory like "256M" (default 256 MiB), CPUs default 1; no kernel: boot from the disk. Network:
/// default (this host's VM network), none or bridge=BR; null: roamd's --vm-network. Mac: generated when null.</summary>
internal sealed record CreateVmRequest(string? Name, string? Volume, [property: JsonConverter(typeof(SizeTextConverter))] string? Memory, int? Cpus,
    string? Kernel, string? Initrd, string? Append, string? Network = null, string? Mac = null);

/// <summary>POST /v1/vms/{name}/stop: system_powerdown, then SIGKILL after the timeout (default 10 s).</summary>
internal sealed record StopVmRequest(double? TimeoutSeconds);

/// <summary>POST /v1/vms/{name}/migrate: bandwidth in bytes/s ("100M"; "0" or null: no limit) for the disk copy and the memory
/// stream alike (roamd parses it once, as a MigrationBandwidth); downtime limit in ms.</summary>
internal sealed record MigrateVmRequest(string? To, [property: JsonConverter(typeof(SizeTextConverter))] string? Bandwidth, long? DowntimeLimitMs);

/// <summary>A VM on this host. State is one of <see cref="VmStates"/>.</summary>
internal sealed record VmView(string Name, string Volume, string State, int MemoryMiB, int Cpus, string? Kernel, string? Initrd, string? Append,
    string SerialPath, int? Pid, string? Accelerator,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] int? ExitCode,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] string? StderrTail,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] string? Error,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] VmMigrationView? Migration,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] string? Notice = null)
{
    /// <summary>The network the VM's NIC joins (default, bridge=BR), or null: no NIC.</summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public string? Network { get; init; }

    /// <summary>The NIC's MAC address, kept by the VM wherever it runs.</summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public string? Mac { get; init; }

    /// <summary>The host's tap the NIC is on while QEMU runs here.</summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public string? Tap { get; init; }

    /// <summary>The console log with the host time at which roamd received each line (`roam vm console NAME --timestamps`).</summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public string? StampedSerialPath { get; init; }
}

/// <summary>A VM migration's progress (disk, then memory) and, once done, its figures.</summary>
internal sealed record VmMigrationView(string Peer, string Phase, long DiskBytesTotal, long DiskBytesDone, long DiskBytesOnWire,
    long RamTotal, long RamTransferred, long RamRemaining, long DirtyPagesRate, double Mbps, long? ExpectedDowntimeMs,
    double? TotalSeconds, long? DowntimeMs, double? WritePauseMs, long TunnelBytes, string? Error)
{
    /// <summary>QEMU's completed passes over the memory (dirty-sync-count): its dirty rate is known from the second on.</summary>
    public long MemoryPasses { get; init; }

    /// <summary>Disk writes made during the memory phase that the destination has not acknowledged yet (mirrored
    /// asynchronously, or only marked): what the hand-over must drain inside the pause.</summary>
    public long DiskBacklogBytes { get; init; }

    /// <summary>Age of the oldest of those writes: about the time the backlog needs to drain.</summary>
    public double DiskLagMs { get; init; }

    /// <summary>What the migration puts on the link, memory and disk, in bytes per second over the last second.</summary>
    public long LinkBytesPerSecond { get; init; }
}

internal static class VmStates
{
    public const string Stopped = "stopped";
    public const string Running = "running";
    public const string Crashed = "crashed";
    public const string Migrating = "migrating";
    public const string Incoming = "incoming";
    /// <summary>Its QEMU runs paused: a migration was interrupted by a roamd restart after the disk was handed over.</summary>
    public const string Paused = "paused";
    /// <summary>Its QEMU runs but roamd could not reconnect to it after a restart (see the VM's error).</summary>
    public const string Unreachable = "unreachable";
}

internal static class VmMigrationPhases
{
    public const string Disk = "disk";
    public const string Memory = "memory";
    public const string Switchover = "switchover";
    /// <summary>After the disk hand-over: the VM is paused here until the destination says whether it runs there.</summary>
    public const string Confirming = "confirming";
    public const string Completed = "completed";
    public const string Failed = "failed";
}
