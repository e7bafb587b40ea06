namespace Roam.Cli.Commands;

/// <summary>A command line that parses but makes no sense (checked by a command itself). Exit code 2.</summary>
internal sealed class CliUsageException(string message) : Exception(message);
