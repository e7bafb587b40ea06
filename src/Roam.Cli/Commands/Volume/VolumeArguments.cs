using System.CommandLine;

namespace Roam.Cli.Commands.Volume;

/// <summary>Arguments and options several volume verbs share, so their help reads the same.</summary>
internal static class VolumeArguments
{
    public static Argument<string> Name(string description = "The volume's name") => new("name") { Description = description };

    public static Option<string> Size(string description) => new("--size", "-s")
    {
        Description = description + " (bytes, or with a suffix: 512, 64K, 10M, 10G, 2T; binary units)",
        HelpName = "SIZE",
        Required = true,
    };

    public static Option<string?> Format(string description)
    {
        var option = new Option<string?>("--format", "-f") { Description = description, HelpName = "raw|qcow2" };
        option.AcceptOnlyFromAmong("raw", "qcow2");
        return option;
    }
}
