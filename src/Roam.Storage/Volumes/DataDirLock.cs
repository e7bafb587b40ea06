namespace Roam.Storage.Volumes;

/// <summary>
/// One roamd per data dir. .NET takes an exclusive flock() for FileShare.None on Linux, and the
/// kernel drops it when the process dies, so a crash never leaves a stale lock behind. The holder's
/// pid goes into a separate, unlocked roamd.pid: a locked file cannot be read by anyone else, since
/// .NET takes a shared flock() for every read.
/// </summary>
public sealed class DataDirLock : IDisposable
{
    private readonly FileStream _stream;

    private const string PidFile = "roamd.pid";

    private DataDirLock(FileStream stream) => _stream = stream;

    public static DataDirLock Acquire(string dataDir)
    {
        Directory.CreateDirectory(dataDir);
        var path = Path.Combine(dataDir, "roamd.lock");
        FileStream stream;
        try
        {
            stream = new FileStream(path, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
        }
        catch (IOException)
        {
            string holder = "";
            try { holder = File.ReadAllText(Path.Combine(dataDir, PidFile)).Trim(); } catch (IOException) { }
            throw new VolumeException(VolumeError.DataDirLocked,
                $"data dir {dataDir} is in use by another roamd{(holder.Length > 0 ? $" (pid {holder})" : "")}");
        }
        try { File.WriteAllText(Path.Combine(dataDir, PidFile), $"{Environment.ProcessId}\n"); }
        catch { stream.Dispose(); throw; }
        return new DataDirLock(stream);
    }

    public void Dispose() => _stream.Dispose();
}
