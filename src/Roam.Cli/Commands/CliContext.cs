using System.Text.Json.Serialization.Metadata;
using Roam.Cli.Api;
using Roam.Cli.Output;
using Spectre.Console;

namespace Roam.Cli.Commands;

/// <summary>What a command's execution needs: where to write, how, and the client to roamd.</summary>
internal sealed class CliContext(IAnsiConsole console, TextWriter error, ControlClient client, bool json, bool terminal)
{
    public IAnsiConsole Console { get; } = console;

    /// <summary>Plain lines (URIs, summaries): never wrapped or styled, so scripts can read them.</summary>
    public TextWriter Out => Console.Profile.Out.Writer;

    public TextWriter Error { get; } = error;

    public ControlClient Client { get; } = client;

    /// <summary>--json: print the API's records as camelCase JSON and nothing else.</summary>
    public bool Json { get; } = json;

    /// <summary>Live progress only for a person at a terminal.</summary>
    public bool ShowProgress => !Json && terminal;

    public void WriteJson<T>(T value, JsonTypeInfo<T> type) => Out.WriteLine(JsonOutput.Serialize(value, type));
}
