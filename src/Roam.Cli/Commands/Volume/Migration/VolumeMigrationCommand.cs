using System.CommandLine;
using System.Globalization;
using Roam.Cli.Api;
using Roam.Cli.Commands.Volume.Migrate;
using Roam.Cli.Output;
using Roam.Control;

namespace Roam.Cli.Commands.Volume.Migration;

/// <summary>
/// `roam volume migration prepare|status|wait|handover|abort NAME`: a migration step by step, for whoever
/// must place the hand-over themselves (a VM migration, inside its switch-over window).
/// </summary>
internal sealed class VolumeMigrationCommand : Command
{
    public VolumeMigrationCommand(CliEnvironment environment) : base("migration", "A live migration step by step: prepare, status, wait, handover, abort")
    {
        Subcommands.Add(new PrepareCommand(environment));
        Subcommands.Add(new StatusCommand(environment));
        Subcommands.Add(new WaitCommand(environment));
        Subcommands.Add(new HandOverCommand(environment));
        Subcommands.Add(new AbortCommand(environment));
    }

    private static string Path(string name, string? step = null) =>
        $"v1/volumes/{ControlClient.Segment(name)}/migration" + (step is null ? "" : "/" + step);

    private static int Write(CliContext context, MigrationView view, string text)
    {
        if (context.Json) context.WriteJson(view, JsonOutput.Context.MigrationView);
        else context.Out.WriteLine(text);
        return ExitCodes.Success;
    }

    private sealed class PrepareCommand : Command
    {
        private readonly Argument<string> _nameArgument = VolumeArguments.Name("The volume to migrate (a primary on this host)");
        private readonly Option<string> _toOption = MigrationOptions.To();
        private readonly Option<string?> _bandwidthOption = MigrationOptions.Bandwidth();

        public PrepareCommand(CliEnvironment environment)
            : base("prepare", "Start copying a volume to a peer (a sync replica there); writes go on here, mirrored to it")
        {
            Arguments.Add(_nameArgument);
            Options.Add(_toOption);
            Options.Add(_bandwidthOption);
            SetAction(environment.Action(ExecuteAsync));
        }

        private async Task<int> ExecuteAsync(CliContext context, ParseResult parseResult, CancellationToken cancellationToken)
        {
            var name = parseResult.GetValue(_nameArgument)!;
            var view = await context.Client.PostAsync(Path(name), new PrepareMigrationRequest(parseResult.GetValue(_toOption), parseResult.GetValue(_bandwidthOption)),
                ControlJsonContext.Default.PrepareMigrationRequest, ControlJsonContext.Default.MigrationView, cancellationToken).ConfigureAwait(false);
            return Write(context, view, $"migration of {view.Volume} prepared: {MigrationOutput.Status(view)} (next: roam volume migration wait {name})");
        }
    }

    private sealed class StatusCommand : Command
    {
        private readonly Argument<string> _nameArgument = VolumeArguments.Name();

        public StatusCommand(CliEnvironment environment) : base("status", "Show a volume's migration: phase, bytes copied and left, rate, ETA")
        {
            Arguments.Add(_nameArgument);
            SetAction(environment.Action(ExecuteAsync));
        }

        private async Task<int> ExecuteAsync(CliContext context, ParseResult parseResult, CancellationToken cancellationToken)
        {
            var name = parseResult.GetValue(_nameArgument)!;
            var view = await context.Client.GetAsync(Path(name), ControlJsonContext.Default.MigrationView, cancellationToken).ConfigureAwait(false);
            return Write(context, view, $"{view.Volume}: {MigrationOutput.Status(view)}");
        }
    }

    private sealed class WaitCommand : Command
    {
        private readonly Argument<string> _nameArgument = VolumeArguments.Name();
        private readonly Option<int> _timeoutOption = new("--timeout")
        {
            Description = "Give up after this many seconds (default 60)",
            HelpName = "SECONDS",
            DefaultValueFactory = _ => 60,
        };

        public WaitCommand(CliEnvironment environment) : base("wait", "Wait until the peer holds every write (in sync), ready for the hand-over")
        {
            Arguments.Add(_nameArgument);
            Options.Add(_timeoutOption);
            SetAction(environment.Action(ExecuteAsync));
        }

        private async Task<int> ExecuteAsync(CliContext context, ParseResult parseResult, CancellationToken cancellationToken)
        {
            var name = parseResult.GetValue(_nameArgument)!;
            int seconds = parseResult.GetValue(_timeoutOption);
            if (seconds < 0) throw new CliUsageException("--timeout must not be negative");
            var view = await context.Client.PostAsync($"{Path(name, "wait")}?timeoutSeconds={seconds.ToString(CultureInfo.InvariantCulture)}",
                ControlJsonContext.Default.MigrationView, TimeSpan.FromSeconds(seconds + 10), cancellationToken).ConfigureAwait(false);
            return Write(context, view, $"{view.Volume} is in sync with {view.Peer} ({Sizes.Format(view.BytesDone)} copied, " +
                $"{Sizes.Format(view.BytesOnWire)} on the wire; next: roam volume migration handover {name})");
        }
    }

    private sealed class HandOverCommand : Command
    {
        private readonly Argument<string> _nameArgument = VolumeArguments.Name();
        private readonly Option<bool> _noKeepReplicaOption = MigrationOptions.NoKeepReplica();

        public HandOverCommand(CliEnvironment environment)
            : base("handover", "Make the peer the primary: writes pause here for milliseconds, then go to the peer (this host refuses them)")
        {
            Aliases.Add("hand-over");
            Arguments.Add(_nameArgument);
            Options.Add(_noKeepReplicaOption);
            SetAction(environment.Action(ExecuteAsync));
        }

        private async Task<int> ExecuteAsync(CliContext context, ParseResult parseResult, CancellationToken cancellationToken)
        {
            var name = parseResult.GetValue(_nameArgument)!;
            var result = await context.Client.PostAsync(Path(name, "handover"), new HandOverRequest(!parseResult.GetValue(_noKeepReplicaOption)),
                ControlJsonContext.Default.HandOverRequest, ControlJsonContext.Default.HandOverView, cancellationToken).ConfigureAwait(false);
            if (context.Json) context.WriteJson(result, JsonOutput.Context.HandOverView);
            else context.Out.WriteLine(MigrationOutput.Summary(result));
            return ExitCodes.Success;
        }
    }

    private sealed class AbortCommand : Command
    {
        private readonly Argument<string> _nameArgument = VolumeArguments.Name();

        public AbortCommand(CliEnvironment environment)
            : base("abort", "Abandon a migration before its hand-over: this host stays primary; the peer keeps what it copied for a retry")
        {
            Arguments.Add(_nameArgument);
            SetAction(environment.Action(ExecuteAsync));
        }

        private async Task<int> ExecuteAsync(CliContext context, ParseResult parseResult, CancellationToken cancellationToken)
        {
            var name = parseResult.GetValue(_nameArgument)!;
            var view = await context.Client.PostAsync(Path(name, "abort"), ControlJsonContext.Default.MigrationView, cancellationToken).ConfigureAwait(false);
            return Write(context, view, $"migration of {view.Volume} to {view.Peer} aborted; {view.Volume} stays primary here");
        }
    }
}
