namespace Roam.Daemon.Vms;

/// <summary>
/// QEMU's downtime limit during a VM migration. Asked for (--downtime-limit), it is kept. Otherwise it starts low, for a
/// pause a person does not notice (measured here: about 150 ms guest-visible at 100 ms, against 250-400 ms at QEMU's
/// default of 300, over 100 Mbit/s), and is raised step by step while QEMU's passes over the memory do not converge, so
/// a guest that dirties memory faster than the link drains it still moves, with a longer pause (OpenStack Nova's
/// stepped downtime is the model).
/// </summary>
internal sealed class DowntimeLimit
{
    /// <summary>(passes over the memory completed, limit in ms from then on).</summary>
    private static readonly (long Passes, long LimitMs)[] Steps = [(0, 100), (5, 200), (8, 300), (11, 500), (14, 1000), (18, 2000)];

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
