using System.CommandLine;

namespace Roam.Cli.Commands;

/// <summary>Options every command takes (recursive on the root).</summary>
internal sealed class CommonOptions
{
    public const string DefaultControlSocket = "/var/lib/roam/control.sock";
    public const string ControlEnvironmentVariable = "ROAM_CONTROL";

    public Option<string> Control { get; } = new("--control")
    {
        Description = $"roamd's control socket (default: ${ControlEnvironmentVariable}, else {DefaultControlSocket})",
        HelpName = "PATH",
        Recursive = true,
    };

    public Option<bool> Json { get; } = new("--json")
    {
        Description = "Print machine-readable JSON (camelCase) instead of tables and progress",
        Recursive = true,
    };

    public static string ResolveControl(string? option)
    {
        if (!string.IsNullOrEmpty(option)) return option;
        var fromEnvironment = Environment.GetEnvironmentVariable(ControlEnvironmentVariable);
        return string.IsNullOrEmpty(fromEnvironment) ? DefaultControlSocket : fromEnvironment;
    }
}
