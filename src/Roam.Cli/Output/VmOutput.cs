using System.Globalization;
using Roam.Cli.Commands;
using Roam.Control;

namespace Roam.Cli.Output;

/// <summary>VMs and their migrations for people; --json prints the same records instead.</summary>
internal static class VmOutput
{
    public static int Print(CliContext context, VmView vm)
    {
        if (context.Json)
        {
            context.WriteJson(vm, ControlJsonContext.Default.VmView);
            return ExitCodes.Success;
        }
        var o = context.Out;
        o.WriteLine($"name:        {vm.Name}");
        o.WriteLine($"state:       {vm.State}" + (vm.Pid is { } pid ? $" (QEMU pid {pid}, {vm.Accelerator})" : ""));
        o.WriteLine($"volume:      {vm.Volume}");
        o.WriteLine($"memory:      {vm.MemoryMiB} MiB, {vm.Cpus} CPU(s)");
        if (vm.Kernel is not null) o.WriteLine($"kernel:      {vm.Kernel}" + (vm.Initrd is null ? "" : $" initrd {vm.Initrd}") + (vm.Append is null ? "" : $" append '{vm.Append}'"));
        o.WriteLine($"network:     " + (vm.Network is { } network ? $"{network}, MAC {vm.Mac}" + (vm.Tap is { } tap ? $", tap {tap}" : "") : "none"));
        o.WriteLine($"console:     {vm.SerialPath}");
        if (vm.ExitCode is { } code) o.WriteLine($"exit code:   {code}");
        if (vm.Error is { } error) o.WriteLine($"error:       {error}");
        if (vm.Notice is { } notice) o.WriteLine($"notice:      {notice}");
        if (vm.StderrTail is { Length: > 0 } tail) o.WriteLine("qemu stderr:\n  " + tail.Replace("\n", "\n  ", StringComparison.Ordinal));
        if (vm.Migration is { } m) o.WriteLine($"migration:   {Describe(m)}");
        return ExitCodes.Success;
    }

    /// <summary>What a verb that changes a VM's state (start, stop, kill) prints: the state it left, in one line.</summary>
    public static int PrintState(CliContext context, VmView vm)
    {
        if (context.Json) return Print(context, vm);
        context.Out.WriteLine($"VM {vm.Name} is {vm.State}" + (vm.Pid is { } pid ? $" (QEMU pid {pid}, {vm.Accelerator})" : ""));
        return ExitCodes.Success;
    }

    public static string Describe(VmMigrationView m) => m.Phase switch
    {
        VmMigrationPhases.Completed => string.Create(CultureInfo.InvariantCulture,
            $"completed to {m.Peer} in {m.TotalSeconds:0.00} s: downtime {m.DowntimeMs} ms (disk hand-over {m.WritePauseMs:0.###} ms), disk {Sizes.Format(m.DiskBytesOnWire)} copied, memory {Sizes.Format(m.RamTransferred)} sent") + (m.Error is null ? "" : $" ({m.Error})"),
        VmMigrationPhases.Failed => $"failed (to {m.Peer}): {m.Error}",
        _ => string.Create(CultureInfo.InvariantCulture,
            $"{m.Phase} to {m.Peer}: disk {Sizes.Format(m.DiskBytesDone)}/{Sizes.Format(m.DiskBytesTotal)}, memory {Sizes.Format(m.RamTransferred)} sent, {Sizes.Format(m.RamRemaining)} left, ")
            + MemoryProgress(m),
    };

    /// <summary>QEMU's transfer and dirty rates (the latter known once a pass over the memory ended) and the disk backlog.</summary>
    public static string MemoryProgress(VmMigrationView m) => string.Create(CultureInfo.InvariantCulture,
        $"{m.Mbps:0.#} Mbit/s of pages (link {m.LinkBytesPerSecond * 8 / 1e6:0.#} Mbit/s), pass {Math.Max(1, m.MemoryPasses)}, ")
        + (m.MemoryPasses >= 2 ? string.Create(CultureInfo.InvariantCulture, $"dirty {m.DirtyPagesRate} pages/s") : "dirty rate after the first pass")
        + string.Create(CultureInfo.InvariantCulture, $", disk backlog {Sizes.Format(m.DiskBacklogBytes)} ({m.DiskLagMs:0} ms), expected downtime {m.ExpectedDowntimeMs} ms");
}
