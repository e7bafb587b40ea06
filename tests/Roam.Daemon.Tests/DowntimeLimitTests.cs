using Roam.Daemon.Vms;

namespace Roam.Daemon.Tests;

/// <summary>QEMU's downtime limit in a VM migration: kept when asked for, else low and raised while the memory does not converge.</summary>
public sealed class DowntimeLimitTests
{
    [Fact]
    public void An_asked_limit_is_kept_however_long_the_memory_takes()
    {
        var limit = new DowntimeLimit(250);
        Assert.Equal(250, limit.Initial);
        for (long passes = 0; passes < 40; passes++) Assert.Null(limit.After(passes));
    }

    [Fact]
    public void The_default_starts_low_and_rises_step_by_step_while_passes_do_not_converge()
    {
        var limit = new DowntimeLimit(null);
        Assert.Equal(200, limit.Initial);
        var seen = new List<long>();
        for (long passes = 0; passes < 40; passes++)
            if (limit.After(passes) is { } raised) seen.Add(raised);
        Assert.Equal([300L, 500, 1000, 2000], seen);
    }

    [Fact]
    public void A_jump_in_passes_goes_straight_to_the_step_reached()
    {
        var limit = new DowntimeLimit(null);
        Assert.Null(limit.After(1));
        Assert.Equal(1000, limit.After(12));
        Assert.Null(limit.After(12));
        Assert.Equal(2000, limit.After(14));
    }
}
