namespace Roam.Storage.Volumes;

/// <summary>
/// One roamd per data dir. .NET takes an exclusive flock() for FileShare.None on Linux, and the
/// kernel drops it when the process dies, so a crash never leaves a stale lock behind.
/// </summary>
public sealed class DataDirLock : IDisposable
{
    private readonly FileStream _stream;

    private DataDirLock(FileStream stream) => _stream = stream;

    public static DataDirLock Acquire(string dataDir)
    {
        Directory.CreateDirectory(dataDir);
        var path = Path.Combine(dataDir, "roamd.lock");
        try
        {
            var stream = new FileStream(path, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
            stream.SetLength(0);
            var pid = System.Text.Encoding.ASCII.GetBytes($"{Environment.ProcessId}\n");
            stream.Write(pid);
            stream.Flush();
            return new DataDirLock(stream);
        }
        catch (IOException)
        {
            string holder = "";
            try { holder = File.ReadAllText(path).Trim(); } catch (IOException) { }
            throw new VolumeException(VolumeError.DataDirLocked,
                $"data dir {dataDir} is in use by another roamd{(holder.Length > 0 ? $" (pid {holder})" : "")}");
        }
    }

    public void Dispose() => _stream.Dispose();
}
