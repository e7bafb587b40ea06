using System.Diagnostics;
using Roam.Hypervisor.Qemu;
using Roam.Testing;

namespace Roam.Hypervisor.Tests;

public class AcceleratorProbeTests
{
    [ToolFact(TestQemu.Binary)]
    public async Task Probe_answers_kvm_or_tcg_within_its_timeout_and_caches_the_answer()
    {
        var options = new AcceleratorProbeOptions { Timeout = TimeSpan.FromSeconds(10) };
        var clock = Stopwatch.StartNew();
        var result = await AcceleratorProbe.ProbeAsync(options);
        Assert.True(clock.Elapsed < options.Timeout + TimeSpan.FromSeconds(5), $"took {clock.Elapsed}");
        Assert.False(string.IsNullOrEmpty(result.Reason));
        if (!File.Exists("/dev/kvm")) Assert.Equal(Accelerator.Tcg, result.Accelerator);

        Assert.Same(result, await AcceleratorProbe.ProbeAsync(options));
    }

    [Fact]
    public async Task A_missing_kvm_device_means_tcg()
    {
        var result = await AcceleratorProbe.ProbeAsync(new AcceleratorProbeOptions { KvmDevice = "/dev/roam-no-such-kvm" });
        Assert.Equal(Accelerator.Tcg, result.Accelerator);
        Assert.Contains("does not exist", result.Reason);
    }

    [ToolFact(TestQemu.Binary)]
    public async Task A_guest_that_does_not_boot_under_kvm_means_tcg_within_the_timeout()
    {
        Requires.That(File.Exists("/dev/kvm"), "needs KVM (/dev/kvm): this test is about a KVM that does not boot the guest");
        // /dev/null as a "kernel" never boots (QEMU exits), so the marker never appears; the probe must answer TCG in time.
        var options = new AcceleratorProbeOptions { KernelPath = "/dev/null", Marker = "roam-booted", Timeout = TimeSpan.FromSeconds(3) };
        var clock = Stopwatch.StartNew();
        var result = await AcceleratorProbe.ProbeAsync(options);
        Assert.Equal(Accelerator.Tcg, result.Accelerator);
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(8), $"took {clock.Elapsed}");
    }
}
