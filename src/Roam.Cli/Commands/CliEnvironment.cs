using System.CommandLine;
using Roam.Cli.Api;
using Spectre.Console;

namespace Roam.Cli.Commands;

/// <summary>
/// Builds each command's context and is the single place where failures become exit codes and one
/// line on stderr ("roam: reason"); no stack trace ever reaches the user.
/// </summary>
internal sealed class CliEnvironment(IAnsiConsole console, TextWriter error, bool terminal)
{
    public CommonOptions Common { get; } = new();

    public Func<ParseResult, CancellationToken, Task<int>> Action(Func<CliContext, ParseResult, CancellationToken, Task<int>> execute) =>
        async (parseResult, cancellationToken) =>
        {
            using var client = new ControlClient(CommonOptions.ResolveControl(parseResult.GetValue(Common.Control)));
            var context = new CliContext(console, error, client, parseResult.GetValue(Common.Json), terminal);
            try
            {
                return await execute(context, parseResult, cancellationToken).ConfigureAwait(false);
            }
            catch (DaemonUnreachableException ex) { return Fail(ExitCodes.Unreachable, ex.Message); }
            catch (ControlApiException ex) { return Fail(ExitCodes.Failed, ex.Message); }
            catch (CliUsageException ex) { return Fail(ExitCodes.Usage, ex.Message); }
            catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested) { return Fail(ExitCodes.Failed, "interrupted"); }
            catch (Exception ex) { return Fail(ExitCodes.Failed, $"unexpected error: {ex.Message}"); }
        };

    private int Fail(int exitCode, string message)
    {
        error.WriteLine($"roam: {message.ReplaceLineEndings(" ")}");
        return exitCode;
    }
}
