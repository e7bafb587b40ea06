using Roam.Daemon.Migration;

namespace Roam.Daemon.Tests;

/// <summary>One bandwidth rule for volume and VM migrations: a rate, or 0 for none; parsed once.</summary>
public sealed class MigrationBandwidthTests
{
    [Theory]
    [InlineData("20M", 20L << 20)]
    [InlineData("1.5G", 3L << 29)]
    [InlineData("500K", 500L << 10)]
    [InlineData("100MiB", 100L << 20)]
    [InlineData("1048576", 1L << 20)]
    public void A_rate_is_read_in_binary_multiples(string text, long bytesPerSecond)
    {
        Assert.True(MigrationBandwidth.TryParse(text, out var bandwidth));
        Assert.Equal(bytesPerSecond, bandwidth!.Value.BytesPerSecond);
        Assert.True(bandwidth.Value.IsLimited);
        Assert.Equal(bytesPerSecond, bandwidth.Value.ForDiskCopy);
        Assert.Equal(bytesPerSecond, bandwidth.Value.ForQemu);
    }

    [Fact]
    public void Zero_is_no_limit_for_the_disk_and_qemu_s_default_for_the_memory_never_zero()
    {
        Assert.True(MigrationBandwidth.TryParse("0", out var bandwidth));
        Assert.Equal(MigrationBandwidth.Unlimited, bandwidth);
        Assert.False(bandwidth!.Value.IsLimited);
        Assert.Equal(0, bandwidth.Value.ForDiskCopy);
        Assert.Equal(MigrationBandwidth.QemuDefaultMaxBandwidth, bandwidth.Value.ForQemu);
    }

    [Fact]
    public void Absent_is_not_given()
    {
        Assert.True(MigrationBandwidth.TryParse(null, out var bandwidth));
        Assert.Null(bandwidth);
    }

    [Theory]
    [InlineData("fast")]
    [InlineData("-5M")]
    [InlineData("")]
    [InlineData("  ")]
    [InlineData("10X")]
    [InlineData("1.5")]
    public void Garbage_is_refused(string text) => Assert.False(MigrationBandwidth.TryParse(text, out _));

    [Fact]
    public void A_negative_rate_cannot_be_made() =>
        Assert.Throws<ArgumentOutOfRangeException>(() => MigrationBandwidth.Of(-1));
}
