namespace Roam.Daemon.Vms;

/// <summary>
/// QEMU's downtime limit during a VM migration. Asked for (--downtime-limit), it is kept. Otherwise it starts lower than
/// QEMU's 300 ms, for a pause a person does not notice (measured here over 100 Mbit/s with the compressed memory stream:
/// 105-150 ms guest-visible at 100 ms, 126 ms at 200; 250-400 ms at 300 before the compression). Earlier runs saw the
/// guest kernel panic after resuming with a 100 ms limit, with QEMU-native too: that was QEMU 7.2 losing dirty pages
/// under TCG (docs-notes/qemu-7.2-guest-deaths.md), not the limit. It is raised step by step while
/// QEMU's passes over the memory do not converge, so
/// a guest that dirties memory faster than the link drains it still moves, with a longer pause (OpenStack Nova's
/// stepped downtime is the model).
/// </summary>
internal sealed class DowntimeLimit
{
    /// <summary>(passes over the memory completed, limit in ms from then on).</summary>
    private static readonly (long Passes, long LimitMs)[] Steps = [(0, 200), (5, 300), (8, 500), (11, 1000), (14, 2000)];

    private readonly long? _asked;
    private int _step;

    public DowntimeLimit(long? askedMs) => _asked = askedMs;

    /// <summary>The limit to set when the migration starts.</summary>
    public long Initial => _asked ?? Steps[0].LimitMs;

    /// <summary>The new limit once QEMU completed <paramref name="passes"/> passes (dirty-sync-count), or null: unchanged.</summary>
    public long? After(long passes)
    {
        if (_asked is not null) return null;
        int step = _step;
        while (step + 1 < Steps.Length && passes >= Steps[step + 1].Passes) step++;
        if (step == _step) return null;
        _step = step;
        return Steps[step].LimitMs;
    }
}
