using System.CommandLine;
using Roam.Cli.Api;
using Roam.Control;

namespace Roam.Cli.Commands.Vm.Console;

internal sealed class VmConsoleCommand : Command
{
    private readonly Argument<string> _name = VmArguments.Name();
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
        SetAction(environment.Action(ExecuteAsync));
    }

    private async Task<int> ExecuteAsync(CliContext context, ParseResult parse, CancellationToken ct)
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
    }
}
