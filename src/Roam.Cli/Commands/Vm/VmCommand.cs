using System.CommandLine;
using System.Globalization;
using Roam.Cli.Api;
using Roam.Cli.Output;
using Roam.Control;

namespace Roam.Cli.Commands.Vm;

/// <summary>`roam vm ...`: VMs run by roamd on its volumes, and their live migration.</summary>
internal sealed class VmCommand : Command
{
    public VmCommand(CliEnvironment environment) : base("vm", "Create, start, stop, inspect and live-migrate VMs (QEMU run by roamd on a volume)")
    {
        Subcommands.Add(new VmCreateCommand(environment));
        Subcommands.Add(new VmListCommand(environment));
        Subcommands.Add(new VmShowCommand(environment));
        Subcommands.Add(new VmSimpleCommand(environment, "start", "Start a VM (QEMU with its volume attached through roamd's NBD socket)", "start"));
        Subcommands.Add(new VmStopCommand(environment));
        Subcommands.Add(new VmSimpleCommand(environment, "kill", "Kill a VM's QEMU at once (SIGKILL)", "kill"));
        Subcommands.Add(new VmDeleteCommand(environment));
        Subcommands.Add(new VmConsoleCommand(environment));
        Subcommands.Add(new VmMigrateCommand(environment));
    }

    internal static Argument<string> NameArgument() => new("name") { Description = "The VM's name" };

    internal static int Print(CliContext context, VmView vm)
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
        o.WriteLine($"console:     {vm.SerialPath}");
        if (vm.ExitCode is { } code) o.WriteLine($"exit code:   {code}");
        if (vm.Error is { } error) o.WriteLine($"error:       {error}");
        if (vm.Notice is { } notice) o.WriteLine($"notice:      {notice}");
        if (vm.StderrTail is { Length: > 0 } tail) o.WriteLine("qemu stderr:\n  " + tail.Replace("\n", "\n  ", StringComparison.Ordinal));
        if (vm.Migration is { } m) o.WriteLine($"migration:   {Describe(m)}");
        return ExitCodes.Success;
    }

    internal static string Describe(VmMigrationView m) => m.Phase switch
    {
        VmMigrationPhases.Completed => string.Create(CultureInfo.InvariantCulture,
            $"completed to {m.Peer} in {m.TotalSeconds:0.00} s: downtime {m.DowntimeMs} ms (disk hand-over {m.WritePauseMs:0.###} ms), disk {Sizes.Format(m.DiskBytesOnWire)} copied, memory {Sizes.Format(m.RamTransferred)} sent") + (m.Error is null ? "" : $" ({m.Error})"),
        VmMigrationPhases.Failed => $"failed (to {m.Peer}): {m.Error}",
        _ => string.Create(CultureInfo.InvariantCulture,
            $"{m.Phase} to {m.Peer}: disk {Sizes.Format(m.DiskBytesDone)}/{Sizes.Format(m.DiskBytesTotal)}, memory {Sizes.Format(m.RamTransferred)} sent, {Sizes.Format(m.RamRemaining)} left, ")
            + MemoryProgress(m),
    };

    /// <summary>QEMU's transfer and dirty rates (the latter known once a pass over the memory ended) and the disk backlog.</summary>
    internal static string MemoryProgress(VmMigrationView m) => string.Create(CultureInfo.InvariantCulture,
        $"{m.Mbps:0.#} Mbit/s of pages (link {m.LinkBytesPerSecond * 8 / 1e6:0.#} Mbit/s), pass {Math.Max(1, m.MemoryPasses)}, ")
        + (m.MemoryPasses >= 2 ? string.Create(CultureInfo.InvariantCulture, $"dirty {m.DirtyPagesRate} pages/s") : "dirty rate after the first pass")
        + string.Create(CultureInfo.InvariantCulture, $", disk backlog {Sizes.Format(m.DiskBacklogBytes)} ({m.DiskLagMs:0} ms), expected downtime {m.ExpectedDowntimeMs} ms");
}

internal sealed class VmCreateCommand : Command
{
    private readonly Argument<string> _name = VmCommand.NameArgument();
    private readonly Option<string> _volume = new("--volume") { Description = "The volume that is the VM's disk", HelpName = "VOLUME", Required = true };
    private readonly Option<string?> _memory = new("--memory", "-m") { Description = "Memory (default 256M)", HelpName = "SIZE" };
    private readonly Option<int?> _cpus = new("--cpus") { Description = "Virtual CPUs (default 1)", HelpName = "N" };
    private readonly Option<string?> _kernel = new("--kernel") { Description = "Boot this kernel directly (else boot from the disk)", HelpName = "FILE" };
    private readonly Option<string?> _initrd = new("--initrd") { Description = "Initial ramdisk for --kernel", HelpName = "FILE" };
    private readonly Option<string?> _append = new("--append") { Description = "Kernel command line for --kernel", HelpName = "TEXT" };

    public VmCreateCommand(CliEnvironment environment) : base("create", "Define a VM on a volume (kept in roamd's data dir; start it with roam vm start)")
    {
        Arguments.Add(_name);
        Options.Add(_volume);
        Options.Add(_memory);
        Options.Add(_cpus);
        Options.Add(_kernel);
        Options.Add(_initrd);
        Options.Add(_append);
        SetAction(environment.Action(async (context, parse, ct) =>
        {
            string? Full(string? p) => p is null ? null : Path.GetFullPath(p);
            var vm = await context.Client.PostAsync("v1/vms", new CreateVmRequest(parse.GetValue(_name), parse.GetValue(_volume), parse.GetValue(_memory),
                parse.GetValue(_cpus), Full(parse.GetValue(_kernel)), Full(parse.GetValue(_initrd)), parse.GetValue(_append)),
                ControlJsonContext.Default.CreateVmRequest, ControlJsonContext.Default.VmView, ct).ConfigureAwait(false);
            if (context.Json) return VmCommand.Print(context, vm);
            context.Out.WriteLine($"created VM {vm.Name} on volume {vm.Volume}");
            return ExitCodes.Success;
        }));
    }
}

internal sealed class VmListCommand : Command
{
    public VmListCommand(CliEnvironment environment) : base("list", "List this host's VMs")
    {
        SetAction(environment.Action(async (context, parse, ct) =>
        {
            var vms = await context.Client.GetAsync("v1/vms", ControlJsonContext.Default.IReadOnlyListVmView, ct).ConfigureAwait(false);
            if (context.Json) context.WriteJson(vms, ControlJsonContext.Default.IReadOnlyListVmView);
            else foreach (var vm in vms) context.Out.WriteLine($"{vm.Name,-20} {vm.State,-10} {vm.Volume,-20} {vm.MemoryMiB} MiB {vm.Cpus} CPU(s)");
            return ExitCodes.Success;
        }));
    }
}

internal sealed class VmShowCommand : Command
{
    private readonly Argument<string> _name = VmCommand.NameArgument();

    public VmShowCommand(CliEnvironment environment) : base("show", "Show a VM: state, QEMU pid, exit code and stderr of a crashed QEMU, migration")
    {
        Arguments.Add(_name);
        SetAction(environment.Action(async (context, parse, ct) =>
            VmCommand.Print(context, await context.Client.GetAsync($"v1/vms/{ControlClient.Segment(parse.GetValue(_name)!)}",
                ControlJsonContext.Default.VmView, ct).ConfigureAwait(false))));
    }
}

internal sealed class VmSimpleCommand : Command
{
    private readonly Argument<string> _name = VmCommand.NameArgument();

    public VmSimpleCommand(CliEnvironment environment, string verb, string description, string path) : base(verb, description)
    {
        Arguments.Add(_name);
        SetAction(environment.Action(async (context, parse, ct) =>
        {
            var vm = await context.Client.PostAsync($"v1/vms/{ControlClient.Segment(parse.GetValue(_name)!)}/{path}", ControlJsonContext.Default.VmView,
                TimeSpan.FromSeconds(120), ct).ConfigureAwait(false);
            if (context.Json) return VmCommand.Print(context, vm);
            context.Out.WriteLine($"VM {vm.Name} is {vm.State}" + (vm.Pid is { } pid ? $" (QEMU pid {pid}, {vm.Accelerator})" : ""));
            return ExitCodes.Success;
        }));
    }
}

internal sealed class VmStopCommand : Command
{
    private readonly Argument<string> _name = VmCommand.NameArgument();
    private readonly Option<double?> _timeout = new("--timeout") { Description = "Seconds to wait for the guest to power off before killing it (default 10)", HelpName = "S" };

    public VmStopCommand(CliEnvironment environment) : base("stop", "Stop a VM: ACPI power-down, then kill it after a timeout")
    {
        Arguments.Add(_name);
        Options.Add(_timeout);
        SetAction(environment.Action(async (context, parse, ct) =>
        {
            var vm = await context.Client.PostAsync($"v1/vms/{ControlClient.Segment(parse.GetValue(_name)!)}/stop", new StopVmRequest(parse.GetValue(_timeout)),
                ControlJsonContext.Default.StopVmRequest, ControlJsonContext.Default.VmView, ct).ConfigureAwait(false);
            if (context.Json) return VmCommand.Print(context, vm);
            context.Out.WriteLine($"VM {vm.Name} is {vm.State}");
            return ExitCodes.Success;
        }));
    }
}

internal sealed class VmDeleteCommand : Command
{
    private readonly Argument<string> _name = VmCommand.NameArgument();

    public VmDeleteCommand(CliEnvironment environment) : base("delete", "Delete a stopped VM's definition (its volume stays)")
    {
        Arguments.Add(_name);
        SetAction(environment.Action(async (context, parse, ct) =>
        {
            await context.Client.DeleteAsync($"v1/vms/{ControlClient.Segment(parse.GetValue(_name)!)}", ct).ConfigureAwait(false);
            if (!context.Json) context.Out.WriteLine($"deleted VM {parse.GetValue(_name)}");
            return ExitCodes.Success;
        }));
    }
}

internal sealed class VmConsoleCommand : Command
{
    private readonly Argument<string> _name = VmCommand.NameArgument();
    private readonly Option<bool> _follow = new("--follow", "-f") { Description = "Keep printing what the guest writes (Ctrl+C to stop)" };
    private readonly Option<bool> _timestamps = new("--timestamps", "-t")
    {
        Description = "Prefix each line with the host time (UTC) at which roamd received it; it goes on while the guest is paused",
    };

    public VmConsoleCommand(CliEnvironment environment) : base("console", "Print a VM's serial console (its log file on this host)")
    {
        Arguments.Add(_name);
        Options.Add(_follow);
        Options.Add(_timestamps);
        SetAction(environment.Action(async (context, parse, ct) =>
        {
            var vm = await context.Client.GetAsync($"v1/vms/{ControlClient.Segment(parse.GetValue(_name)!)}", ControlJsonContext.Default.VmView, ct).ConfigureAwait(false);
            string? path = vm.SerialPath;
            if (parse.GetValue(_timestamps))
            {
                path = vm.StampedSerialPath;
                if (path is null)
                {
                    await context.Error.WriteLineAsync("roam: this roamd does not keep host timestamps of the console").ConfigureAwait(false);
                    return ExitCodes.Failed;
                }
            }
            if (!File.Exists(path)) return ExitCodes.Success;
            using var file = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
            using var reader = new StreamReader(file);
            var buffer = new char[8192];
            try
            {
                while (true)
                {
                    int n = await reader.ReadAsync(buffer, ct).ConfigureAwait(false);
                    if (n > 0) { await context.Out.WriteAsync(buffer.AsMemory(0, n), ct).ConfigureAwait(false); continue; }
                    if (!parse.GetValue(_follow)) break;
                    await context.Out.FlushAsync(ct).ConfigureAwait(false);
                    await Task.Delay(200, ct).ConfigureAwait(false);
                }
            }
            catch (OperationCanceledException) when (ct.IsCancellationRequested) { }
            return ExitCodes.Success;
        }));
    }
}

internal sealed class VmMigrateCommand : Command
{
    private readonly Argument<string> _name = VmCommand.NameArgument();
    private readonly Option<string> _to = new("--to") { Description = "The trusted peer host to move the VM to (see: roam host list)", HelpName = "HOST", Required = true };
    private readonly Option<string?> _bandwidth = new("--bandwidth") { Description = "Bandwidth limit for the disk copy and the memory, bytes per second (like 100M)", HelpName = "RATE" };
    private readonly Option<long?> _downtime = new("--downtime-limit") { Description = "Largest acceptable pause at switch-over, in ms (default: 200, raised step by step while the memory does not converge)", HelpName = "MS" };

    public VmMigrateCommand(CliEnvironment environment)
        : base("migrate", "Live-migrate a running VM to a trusted peer: its disk (mirrored), then its memory through roamd's authenticated peer channel")
    {
        Arguments.Add(_name);
        Options.Add(_to);
        Options.Add(_bandwidth);
        Options.Add(_downtime);
        SetAction(environment.Action(async (context, parse, ct) =>
        {
            var name = parse.GetValue(_name)!;
            var peer = parse.GetValue(_to)!;
            var job = await context.Client.PostAsync($"v1/vms/{ControlClient.Segment(name)}/migrate",
                new MigrateVmRequest(peer, parse.GetValue(_bandwidth), parse.GetValue(_downtime)), ControlJsonContext.Default.MigrateVmRequest,
                ControlJsonContext.Default.JobView, ct).ConfigureAwait(false);
            job = await JobProgress.FollowAsync(context, job, $"migrate VM {name} to {peer}", ct).ConfigureAwait(false);
            VmMigrationView? migration = null;
            try
            {
                migration = await context.Client.GetAsync($"v1/vms/{ControlClient.Segment(name)}/migration", ControlJsonContext.Default.VmMigrationView,
                    CancellationToken.None).ConfigureAwait(false);
            }
            catch (ControlApiException) { }
            if (context.Json) context.WriteJson(job, ControlJsonContext.Default.JobView);
            if (job.State != JobStates.Succeeded)
            {
                await context.Error.WriteLineAsync($"roam: migrating VM {name} to {peer} {job.State}: {job.Error}").ConfigureAwait(false);
                return ExitCodes.Failed;
            }
            if (!context.Json) context.Out.WriteLine($"migrated VM {name} to {peer}" + (migration is null ? "" : ": " + VmCommand.Describe(migration)));
            return ExitCodes.Success;
        }));
    }
}
