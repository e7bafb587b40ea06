using System.CommandLine;

namespace Roam.Cli.Commands.Vm;

/// <summary>Arguments several VM verbs share, so their help reads the same.</summary>
internal static class VmArguments
{
    public static Argument<string> Name() => new("name") { Description = "The VM's name" };
}
