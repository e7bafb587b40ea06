using System.Security.Cryptography;
using Roam.Testing;

namespace Roam.Nbd.Tests.Interop;

/// <summary>A fresh server per test, driven by real NBD clients (qemu, libnbd's tools, fio).</summary>
public abstract class InteropTestBase : IAsyncLifetime
{
    protected TestServer Server { get; private set; } = null!;

    public Task InitializeAsync()
    {
        Server = TestServer.Start();
        return Task.CompletedTask;
    }

    public async Task DisposeAsync() => await Server.DisposeAsync();

    /// <summary>A sparse file with random data in the given [offset, length) runs and holes elsewhere.</summary>
    protected string SparseImage(string name, long size, int seed, params (long Offset, int Length)[] data)
    {
        var path = Server.ScratchPath(name);
        using var file = new FileStream(path, FileMode.Create, FileAccess.Write);
        file.SetLength(size);
        var random = new Random(seed);
        foreach (var (offset, length) in data)
        {
            var bytes = new byte[length];
            random.NextBytes(bytes);
            file.Position = offset;
            file.Write(bytes);
        }
        return path;
    }

    protected static string Sha256(string path)
    {
        using var stream = File.OpenRead(path);
        return Convert.ToHexString(SHA256.HashData(stream));
    }

    protected static Task<ToolResult> QemuIoAsync(string uri, params string[] commands) =>
        Tools.RunAsync("qemu-io", ["-f", "raw", uri, .. commands.SelectMany(c => new[] { "-c", c })], Tools.DefaultTimeout);

    /// <summary>qemu-io reports a failed pattern check on stdout and may still exit 0, so both are checked.</summary>
    protected static void AssertQemuIoClean(ToolResult result)
    {
        result.ShouldSucceed();
        Assert.DoesNotContain("fail", result.Stdout, StringComparison.OrdinalIgnoreCase);
        Assert.DoesNotContain("error", result.Stdout + result.Stderr, StringComparison.OrdinalIgnoreCase);
    }
}
