using System.Collections.Concurrent;
using System.Diagnostics;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace Roam.Hypervisor.Qemu;

public sealed record AcceleratorProbeOptions
{
    public string Binary { get; init; } = "qemu-system-x86_64";
    public string KvmDevice { get; init; } = "/dev/kvm";

    /// <summary>Optional guest to boot under KVM. Without it the probe only checks that KVM initialises
    /// (<c>-machine none -accel kvm</c> and query-kvm), which cannot catch a guest that hangs under KVM.</summary>
    public string? KernelPath { get; init; }
    public string? InitrdPath { get; init; }
    public string KernelAppend { get; init; } = "console=ttyS0 panic=-1";

    /// <summary>The serial line (substring) that proves the guest booted.</summary>
    public string? Marker { get; init; }

    /// <summary>The whole probe is bounded by this; past it the answer is TCG.</summary>
    public TimeSpan Timeout { get; init; } = TimeSpan.FromSeconds(20);

    public ILogger Logger { get; init; } = NullLogger.Instance;
}

public sealed record AcceleratorProbeResult(Accelerator Accelerator, string Reason, TimeSpan Elapsed);

/// <summary>
/// Decides between KVM and TCG by trying KVM, bounded by a timeout: KVM is used only when a probe shows
/// it works (on some hosts /dev/kvm exists but a guest hangs under it). The result is cached per process
/// and per probe input, so a daemon pays for the probe once.
/// </summary>
public static class AcceleratorProbe
{
    private static readonly ConcurrentDictionary<string, Lazy<Task<AcceleratorProbeResult>>> Cache = new();

    public static Task<AcceleratorProbeResult> ProbeAsync(AcceleratorProbeOptions? options = null, CancellationToken ct = default)
    {
        options ??= new AcceleratorProbeOptions();
        var key = string.Join('\0', options.Binary, options.KvmDevice, options.KernelPath, options.InitrdPath, options.Marker);
        var lazy = Cache.GetOrAdd(key, _ => new Lazy<Task<AcceleratorProbeResult>>(() => RunAsync(options)));
        // The probe itself is bounded by its own timeout and not cancelled by one caller, since others share it.
        return lazy.Value.WaitAsync(ct);
    }

    internal static void ClearCache() => Cache.Clear();

    private static async Task<AcceleratorProbeResult> RunAsync(AcceleratorProbeOptions options)
    {
        var clock = Stopwatch.StartNew();
        var (kvm, reason) = await TryKvmAsync(options).ConfigureAwait(false);
        var result = new AcceleratorProbeResult(kvm ? Accelerator.Kvm : Accelerator.Tcg, reason, clock.Elapsed);
        Log.AcceleratorChosen(options.Logger, result.Accelerator.ToString(), reason);
        return result;
    }

    private static async Task<(bool Kvm, string Reason)> TryKvmAsync(AcceleratorProbeOptions options)
    {
        if (!File.Exists(options.KvmDevice)) return (false, $"{options.KvmDevice} does not exist");
        using var deadline = new CancellationTokenSource(options.Timeout);
        var processOptions = new QemuProcessOptions { StartTimeout = options.Timeout, Logger = options.Logger };
        try
        {
            // Stage 1: does KVM initialise at all? Starts in milliseconds.
            await using (var none = await QemuProcess.StartAsync(
                new QemuCommandLine { Binary = options.Binary, Machine = "none", Accelerator = Accelerator.Kvm },
                processOptions, deadline.Token).ConfigureAwait(false))
            {
                var info = await none.Qmp.QueryKvmAsync(deadline.Token).ConfigureAwait(false);
                if (!info.Enabled || !info.Present) return (false, $"query-kvm: enabled={info.Enabled}, present={info.Present}");
                await none.QuitAsync(TimeSpan.FromSeconds(2), CancellationToken.None).ConfigureAwait(false);
            }
            if (options.KernelPath is null) return (true, "KVM initialises (query-kvm enabled and present); no guest boot was tried");

            // Stage 2: boot the given guest under KVM and wait for its marker on the serial port.
            var line = new QemuCommandLine { Binary = options.Binary, Machine = "q35", Accelerator = Accelerator.Kvm, MemoryMiB = 256 }
                .WithKernel(options.KernelPath, options.InitrdPath, options.KernelAppend)
                .WithSerialStdio();
            await using var guest = await QemuProcess.StartAsync(line, processOptions, deadline.Token).ConfigureAwait(false);
            var marker = options.Marker ?? "";
            await foreach (var serial in guest.SerialLines.ReadAllAsync(deadline.Token).ConfigureAwait(false))
                if (serial.Contains(marker, StringComparison.Ordinal))
                    return (true, $"guest printed '{marker}' under KVM");
            return (false, $"guest exited under KVM before printing '{marker}': {guest.StderrTail}");
        }
        catch (OperationCanceledException)
        {
            return (false, $"KVM probe did not finish within {options.Timeout}");
        }
        catch (TimeoutException ex)
        {
            return (false, ex.Message);
        }
        catch (Exception ex) when (ex is IOException or Qmp.QmpException)
        {
            return (false, ex.Message);
        }
        catch (System.ComponentModel.Win32Exception ex)
        {
            return (false, $"cannot run {options.Binary}: {ex.Message}");
        }
    }
}
