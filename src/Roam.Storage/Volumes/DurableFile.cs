using System.Runtime.Versioning;
using Roam.Storage.Devices;

namespace Roam.Storage.Volumes;

/// <summary>
/// Replaces a small file so that after a crash it holds either the old or the new content, never a
/// mix: write a temporary file, fsync it, rename it over the target, fsync the directory.
/// </summary>
public static class DurableFile
{
    public const string TempSuffix = ".tmp";

    public static void Write(string path, ReadOnlySpan<byte> content)
    {
        var temp = path + TempSuffix;
        using (var handle = File.OpenHandle(temp, FileMode.Create, FileAccess.Write, FileShare.None))
        {
            RandomAccess.Write(handle, content, 0);
            NativeFile.FullSync(handle);
        }
        Publish(temp, path);
    }

    /// <summary>
    /// Like <see cref="Write(string, ReadOnlySpan{byte})"/>, but the file is created with
    /// <paramref name="mode"/> (less the umask). The mode is set by open(O_CREAT), not by a chmod
    /// afterwards, so a secret (a private key, mode 0600) is never readable by others, not even briefly.
    /// </summary>
    [UnsupportedOSPlatform("windows")]
    public static void Write(string path, ReadOnlySpan<byte> content, UnixFileMode mode)
    {
        var temp = path + TempSuffix;
        // A temp file left by a crash keeps its old mode when reopened, so start from a new one.
        File.Delete(temp);
        var options = new FileStreamOptions
        {
            Mode = FileMode.CreateNew,
            Access = FileAccess.Write,
            Share = FileShare.None,
            UnixCreateMode = mode,
        };
        using (var stream = new FileStream(temp, options))
        {
            stream.Write(content);
            stream.Flush();
            NativeFile.FullSync(stream.SafeFileHandle);
        }
        Publish(temp, path);
    }

    /// <summary>
    /// Creates a directory with <paramref name="mode"/> (when it does not exist yet) and fsyncs its
    /// parent, so the new directory entry survives a crash along with the files later written in it.
    /// </summary>
    [UnsupportedOSPlatform("windows")]
    public static void CreateDirectory(string path, UnixFileMode mode)
    {
        var full = Path.GetFullPath(path);
        if (Directory.Exists(full)) return;
        var parent = Path.GetDirectoryName(full)!;
        Directory.CreateDirectory(parent);
        Directory.CreateDirectory(full, mode);
        NativeFile.SyncDirectory(parent);
    }

    public static void Delete(string path)
    {
        if (!File.Exists(path)) return;
        File.Delete(path);
        NativeFile.SyncDirectory(Path.GetDirectoryName(Path.GetFullPath(path))!);
    }

    /// <summary>
    /// Replaces the file atomically (a temp file renamed over it) without waiting for the disk: after a crash the
    /// old file, none, or an empty or torn one may be found. Only for files that readers check and whose loss
    /// costs time, never data (a bitmap that, missing, reads as "everything may differ").
    /// </summary>
    public static void WriteUnsynced(string path, ReadOnlySpan<byte> content)
    {
        var temp = path + TempSuffix;
        using (var handle = File.OpenHandle(temp, FileMode.Create, FileAccess.Write, FileShare.None))
            RandomAccess.Write(handle, content, 0);
        File.Move(temp, path, overwrite: true);
    }

    /// <summary>Makes a rename or creation in <paramref name="path"/>'s directory durable.</summary>
    public static void SyncDirectoryOf(string path) => NativeFile.SyncDirectory(Path.GetDirectoryName(Path.GetFullPath(path))!);

    private static void Publish(string temp, string path)
    {
        File.Move(temp, path, overwrite: true);
        NativeFile.SyncDirectory(Path.GetDirectoryName(Path.GetFullPath(path))!);
    }
}
