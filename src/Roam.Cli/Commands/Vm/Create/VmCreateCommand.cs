using System.CommandLine;
using Roam.Cli.Output;
using Roam.Control;

namespace Roam.Cli.Commands.Vm.Create;

internal sealed class VmCreateCommand : Command
{
    private readonly Argument<string> _name = VmArguments.Name();
    private readonly Option<string> _volume = new("--volume") { Description = "The volume that is the VM's disk", HelpName = "VOLUME", Required = true };
    private readonly Option<string?> _memory = new("--memory", "-m") { Description = "Memory (default 256M)", HelpName = "SIZE" };
    private readonly Option<int?> _cpus = new("--cpus") { Description = "Virtual CPUs (default 1)", HelpName = "N" };
    private readonly Option<string?> _kernel = new("--kernel") { Description = "Boot this kernel directly (else boot from the disk)", HelpName = "FILE" };
    private readonly Option<string?> _initrd = new("--initrd") { Description = "Initial ramdisk for --kernel", HelpName = "FILE" };
    private readonly Option<string?> _append = new("--append") { Description = "Kernel command line for --kernel", HelpName = "TEXT" };

    private readonly Option<string?> _network = new("--network")
    {
        Description = "The VM's network: default (this host's VM network, DHCP and NAT, on a subnet of each host's own), bridge=BR (a bridge " +
                      "the hosts have, e.g. to their LAN) or none (default: roamd's --vm-network)",
        HelpName = "default|none|bridge=BR",
    };
    private readonly Option<string?> _mac = new("--mac") { Description = "The NIC's MAC address (default: generated once, kept wherever the VM runs)", HelpName = "MAC" };

    public VmCreateCommand(CliEnvironment environment) : base("create", "Define a VM on a volume (kept in roamd's data dir; start it with roam vm start)")
    {
        Arguments.Add(_name);
        Options.Add(_volume);
        Options.Add(_memory);
        Options.Add(_cpus);
        Options.Add(_kernel);
        Options.Add(_initrd);
        Options.Add(_append);
        Options.Add(_network);
        Options.Add(_mac);
        SetAction(environment.Action(ExecuteAsync));
    }

    private async Task<int> ExecuteAsync(CliContext context, ParseResult parse, CancellationToken ct)
    {
        string? Full(string? p) => p is null ? null : Path.GetFullPath(p);
        var vm = await context.Client.PostAsync("v1/vms", new CreateVmRequest(parse.GetValue(_name), parse.GetValue(_volume), parse.GetValue(_memory),
            parse.GetValue(_cpus), Full(parse.GetValue(_kernel)), Full(parse.GetValue(_initrd)), parse.GetValue(_append),
            parse.GetValue(_network), parse.GetValue(_mac)),
            ControlJsonContext.Default.CreateVmRequest, ControlJsonContext.Default.VmView, ct).ConfigureAwait(false);
        if (context.Json) return VmOutput.Print(context, vm);
        context.Out.WriteLine($"created VM {vm.Name} on volume {vm.Volume}" + (vm.Network is { } network ? $", network {network} (MAC {vm.Mac})" : ", no network"));
        return ExitCodes.Success;
    }
}
