using Roam.Storage.Volumes;
using Roam.Testing;

namespace Roam.Storage.Tests.Volumes;

/// <summary>One roamd per data dir: the lock is an flock(2), held per open file description.</summary>
public sealed class DataDirLockTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("roam-lock-test-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public void A_second_acquire_in_the_same_process_is_refused_naming_the_holder()
    {
        // flock belongs to the open file description, so a second open in this process conflicts too.
        using var held = DataDirLock.Acquire(_dir);

        var ex = Assert.Throws<VolumeException>(() => DataDirLock.Acquire(_dir));

        Assert.Equal(VolumeError.DataDirLocked, ex.Error);
        Assert.Contains($"{_dir} is in use by another roamd (pid {Environment.ProcessId})", ex.Message);
    }

    [Fact]
    public void Releasing_the_lock_lets_the_next_acquire_succeed()
    {
        DataDirLock.Acquire(_dir).Dispose();

        using var again = DataDirLock.Acquire(_dir);

        Assert.Equal($"{Environment.ProcessId}", File.ReadAllText(Path.Combine(_dir, "roamd.pid")).Trim());
    }

    [ToolFact("flock")]
    public async Task Another_process_cannot_take_the_lock_while_it_is_held()
    {
        var path = Path.Combine(_dir, "roamd.lock");

        ToolResult whileHeld;
        using (DataDirLock.Acquire(_dir))
            whileHeld = await Tools.RunAsync("flock", "--nonblock", "--exclusive", path, "true");
        var afterwards = await Tools.RunAsync("flock", "--nonblock", "--exclusive", path, "true");

        Assert.NotEqual(0, whileHeld.ExitCode);
        Assert.Equal(0, afterwards.ExitCode);
    }
}
