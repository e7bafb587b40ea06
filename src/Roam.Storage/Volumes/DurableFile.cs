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
        File.Move(temp, path, overwrite: true);
        NativeFile.SyncDirectory(Path.GetDirectoryName(Path.GetFullPath(path))!);
    }

    public static void Delete(string path)
    {
        if (!File.Exists(path)) return;
        File.Delete(path);
        NativeFile.SyncDirectory(Path.GetDirectoryName(Path.GetFullPath(path))!);
    }
}
