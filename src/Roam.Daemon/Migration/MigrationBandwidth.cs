using Roam.Storage.Volumes;

namespace Roam.Daemon.Migration;

/// <summary>
/// A migration's bandwidth limit, in bytes per second on the wire, parsed once from what the user typed ("100M", "0").
/// One rule for volume and VM migrations: 0 means no limit. In a VM migration it limits both the disk copy and the
/// memory stream (they never overlap: the disk comes first).
/// </summary>
internal readonly record struct MigrationBandwidth
{
    /// <summary>QEMU's own default max-bandwidth (MAX_THROTTLE, 128 MiB/s), what the memory stream keeps without a limit.
    /// Never 0: QEMU 8.1 and later read 0 as "no limit" but older ones did not document it, so roamd does not send it.</summary>
    public const long QemuDefaultMaxBandwidth = 128L << 20;

    /// <summary>No limit.</summary>
    public static readonly MigrationBandwidth Unlimited = new(0);

    private MigrationBandwidth(long bytesPerSecond) => BytesPerSecond = bytesPerSecond;

    /// <summary>The limit in bytes per second; 0 when there is none.</summary>
    public long BytesPerSecond { get; }

    public bool IsLimited => BytesPerSecond > 0;

    /// <summary>For the replication engine's disk copy (its link budget): 0 is no limit there too.</summary>
    public long ForDiskCopy => BytesPerSecond;

    /// <summary>For QEMU's max-bandwidth: the limit, or QEMU's default when there is none (always sent: QEMU keeps
    /// parameters across migrations, so a retry without a limit must not inherit an earlier one).</summary>
    public long ForQemu => IsLimited ? BytesPerSecond : QemuDefaultMaxBandwidth;

    public static MigrationBandwidth Of(long bytesPerSecond) =>
        bytesPerSecond >= 0 ? new(bytesPerSecond) : throw new ArgumentOutOfRangeException(nameof(bytesPerSecond), bytesPerSecond, "a bandwidth is not negative");

    /// <summary>
    /// Parses "20M", "1.5G", "500K", "1048576" or "0" (no limit): binary multiples, as <see cref="ByteSize"/> reads sizes.
    /// Null text is not given (<paramref name="bandwidth"/> null, and true); anything else that is not a rate is false.
    /// </summary>
    public static bool TryParse(string? text, out MigrationBandwidth? bandwidth)
    {
        bandwidth = null;
        if (text is null) return true;
        if (!ByteSize.TryParse(text, out long bytes)) return false;
        bandwidth = new MigrationBandwidth(bytes);
        return true;
    }

    /// <summary>Why <paramref name="text"/> is refused, for the one-line error a client shows.</summary>
    public static string Invalid(string? text) => $"'{text}' is not a bandwidth in bytes per second (like 20M, or 0 for no limit)";

    public override string ToString() => IsLimited ? ByteSize.Format(BytesPerSecond) + "/s" : "no limit";
}
