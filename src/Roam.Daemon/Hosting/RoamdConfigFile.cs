using System.Text.Json;
using System.Text.Json.Serialization;

namespace Roam.Daemon.Hosting;

/// <summary>--config FILE: a JSON object whose keys mirror the command-line options. Unknown keys are errors (typos would hide).</summary>
internal sealed record RoamdConfigFile(string? DataDir, string? NbdListen, string? HostName = null, string? PeerListen = null, double? SyncTimeout = null, string? Compression = null)
{
    public static RoamdConfigFile Load(string path)
    {
        byte[] bytes;
        try { bytes = File.ReadAllBytes(path); }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            throw new RoamdUsageException($"cannot read config file {path}: {ex.Message}");
        }
        try
        {
            var config = JsonSerializer.Deserialize(bytes, RoamdConfigJsonContext.Default.RoamdConfigFile)
                ?? throw new RoamdUsageException($"config file {path} is empty; it must be a JSON object");
            // A relative data dir in a config file is relative to the file, not to wherever roamd started.
            var baseDir = Path.GetDirectoryName(Path.GetFullPath(path))!;
            return config with { DataDir = config.DataDir is null ? null : Path.GetFullPath(config.DataDir, baseDir) };
        }
        catch (JsonException ex)
        {
            throw new RoamdUsageException($"config file {path} is not valid: {ex.Message.ReplaceLineEndings(" ")}");
        }
    }
}

[JsonSourceGenerationOptions(JsonSerializerDefaults.Web, UnmappedMemberHandling = JsonUnmappedMemberHandling.Disallow,
    ReadCommentHandling = JsonCommentHandling.Skip, AllowTrailingCommas = true)]
[JsonSerializable(typeof(RoamdConfigFile))]
internal sealed partial class RoamdConfigJsonContext : JsonSerializerContext;

/// <summary>A bad option or config file: roamd prints the message and exits with 2.</summary>
internal sealed class RoamdUsageException(string message) : Exception(message);
