using System.CommandLine;
using System.CommandLine.Help;
using System.CommandLine.Invocation;

namespace Roam.Cli.Commands;

/// <summary>The standard help, plus the exit codes and environment at the end of `roam --help`.</summary>
internal sealed class EpilogHelpAction(HelpAction inner) : SynchronousCommandLineAction
{
    public const string Epilog = """
        Exit codes:
          0  success
          1  roamd refused or failed the request (the reason is on stderr as "roam: ...")
          2  usage error: unknown command or option, missing or invalid argument
          3  roamd could not be reached (not running, or a wrong --control path)

        Environment:
          ROAM_CONTROL  roamd's control socket when --control is not given
        """;

    public override int Invoke(ParseResult parseResult)
    {
        int result = inner.Invoke(parseResult);
        if (parseResult.CommandResult.Command is RootCommand)
        {
            var output = parseResult.InvocationConfiguration.Output;
            output.WriteLine(Epilog);
            output.WriteLine();
        }
        return result;
    }
}
