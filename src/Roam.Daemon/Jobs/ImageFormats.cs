
namespace Roam.Daemon.Jobs;

/// <summary>The image formats import and export understand.</summary>
internal static class ImageFormats
{
    public const string Raw = "raw";
    public const string Qcow2 = "qcow2";

    // qcow2 header: "QFI" 0xfb, then the version (big-endian).
    private static ReadOnlySpan<byte> Qcow2Magic => [(byte)'Q', (byte)'F', (byte)'I', 0xfb];

    /// <summary>Validates a requested format; null stays null (meaning: decide from the file).</summary>
    public static string? Parse(string? format) => format?.Trim().ToLowerInvariant() switch
    {
        null or "" => null,
        Raw => Raw,
        Qcow2 => Qcow2,
        _ => throw new JobException(JobError.InvalidRequest, $"unknown image format '{format}': use raw or qcow2"),
    };

    /// <summary>qcow2 when the file starts with the qcow2 magic, raw otherwise.</summary>
    public static string Detect(string path)
    {
        Span<byte> head = stackalloc byte[4];
        using var handle = File.OpenHandle(path, FileMode.Open, FileAccess.Read);
        int n = RandomAccess.Read(handle, head, 0);
        return n == 4 && head.SequenceEqual(Qcow2Magic) ? Qcow2 : Raw;
    }

    /// <summary>The format an export writes when none is given: by the file's extension.</summary>
    public static string ForOutput(string path) =>
        path.EndsWith(".qcow2", StringComparison.OrdinalIgnoreCase) ? Qcow2 : Raw;
}
