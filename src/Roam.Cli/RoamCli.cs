using System.CommandLine;
using System.CommandLine.Invocation;
using Roam.Cli.Commands;
using Spectre.Console;

namespace Roam.Cli;

/// <summary>The `roam` command line; <see cref="Run(string[], IAnsiConsole?)"/> is its whole entry point (tests call it in-process).</summary>
public static class RoamCli
{
    /// <summary>Runs roam; output goes to <paramref name="console"/> (stdout by default), errors to stderr.</summary>
    public static Task<int> Run(string[] args, IAnsiConsole? console = null) => Run(args, console, error: null);

    /// <summary>As <see cref="Run(string[], IAnsiConsole?)"/>, with stderr redirected (tests).</summary>
    internal static async Task<int> Run(string[] args, IAnsiConsole? console, TextWriter? error)
    {
        bool terminal;
        if (console is null)
        {
            console = AnsiConsole.Create(new AnsiConsoleSettings { Out = new AnsiConsoleOutput(Console.Out) });
            terminal = !Console.IsOutputRedirected && console.Profile.Capabilities.Interactive;
        }
        else terminal = console.Profile.Capabilities.Interactive;
        error ??= Console.Error;

        var root = new RoamRootCommand(new CliEnvironment(console, error, terminal));
        var parseResult = root.Parse(args);
        if (parseResult.Action is ParseErrorAction)
        {
            foreach (var parseError in parseResult.Errors) await error.WriteLineAsync($"roam: {parseError.Message}").ConfigureAwait(false);
            await error.WriteLineAsync("Run 'roam --help' for usage.").ConfigureAwait(false);
            return ExitCodes.Usage;
        }
        var invocation = new InvocationConfiguration
        {
            Output = console.Profile.Out.Writer,
            Error = error,
            EnableDefaultExceptionHandler = false, // it prints stack traces; CliEnvironment maps failures to one line instead
            ProcessTerminationTimeout = TimeSpan.FromSeconds(15), // Ctrl+C: time to cancel a job and let roamd clean up
        };
        try
        {
            return await parseResult.InvokeAsync(invocation).ConfigureAwait(false);
        }
        catch (Exception ex)
        {
            await error.WriteLineAsync($"roam: unexpected error: {ex.Message.ReplaceLineEndings(" ")}").ConfigureAwait(false);
            return ExitCodes.Failed;
        }
    }
}
