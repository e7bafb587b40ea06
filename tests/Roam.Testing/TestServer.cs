using System.IO.Pipelines;
using Roam.Nbd.Server;
using Roam.Storage.Volumes;
using Roam.Testing.Nbd;

namespace Roam.Testing;

/// <summary>
/// A real NBD server for one test (Garnet's fresh server per test): its own temporary data dir,
/// volume store and Unix socket. Real clients get <see cref="Uri"/>; in-process clients can also
/// skip the socket with <see cref="ServePipe"/>. Disposing stops the server and deletes the directory.
/// </summary>
public sealed class TestServer : IAsyncDisposable
{
    private TestServer(string dataDir, TestLog log, VolumeStore store, NbdServer server, string socketPath)
    {
        DataDir = dataDir;
        Log = log;
        Store = store;
        Server = server;
        SocketPath = socketPath;
    }

    public string DataDir { get; }

    public TestLog Log { get; }

    public VolumeStore Store { get; }

    public NbdServer Server { get; }

    public string SocketPath { get; }

    public static TestServer Start(NbdServerOptions? options = null)
    {
        var dataDir = Directory.CreateTempSubdirectory("roam-test-").FullName;
        var log = new TestLog();
        var store = new VolumeStore(dataDir, log);
        var server = new NbdServer(new VolumeExportProvider(store), options ?? new NbdServerOptions(), log);
        var socketPath = Path.Combine(dataDir, "nbd.sock");
        server.ListenUnix(socketPath);
        return new TestServer(dataDir, log, store, server, socketPath);
    }

    /// <summary>The export's NBD URI, as qemu, nbdinfo, nbdcopy and fio take it.</summary>
    public string Uri(string export) => $"nbd+unix:///{export}?socket={SocketPath}";

    public VolumeInfo CreateVolume(string name, long size) => Store.Create(name, size);

    /// <summary>The volume's backing file, for checks that bypass NBD.</summary>
    public string VolumePath(string name) => Store.DataPath(name);

    /// <summary>A path in the test's directory for scratch files (images to copy, fio state).</summary>
    public string ScratchPath(string fileName) => Path.Combine(DataDir, fileName);

    public Task<RawNbdClient> ConnectAsync() => RawNbdClient.ConnectUnixAsync(SocketPath);

    public Task<RawNbdClient> ConnectAndGoAsync(string export, bool structuredReplies = true, bool baseAllocation = true) =>
        RawNbdClient.ConnectAndGoAsync(SocketPath, export, structuredReplies, baseAllocation);

    /// <summary>
    /// Serves one connection over in-memory pipes: no socket, and the connection's task is visible,
    /// so a test can assert that it ended without an unhandled exception.
    /// </summary>
    public PipeConnection ServePipe() => PipeConnection.Start(Server);

    public async ValueTask DisposeAsync()
    {
        try
        {
            await Server.DisposeAsync().ConfigureAwait(false);
        }
        finally
        {
            // Even when stopping failed, so that a failing test leaves no directory behind.
            Store.Dispose();
            Directory.Delete(DataDir, recursive: true);
        }
    }

}

/// <summary>The client's end of an in-memory connection, and the server's task for it.</summary>
public sealed record PipeConnection(IDuplexPipe Client, Task ServerTask)
{
    /// <summary>
    /// Serves one connection over in-memory pipes. The pipes never apply back-pressure, so a test
    /// may send many requests before reading any reply without deadlocking itself.
    /// </summary>
    public static PipeConnection Start(NbdServer server)
    {
        var (client, serverEnd) = TestPipes.Connected(new PipeOptions(pauseWriterThreshold: 0, resumeWriterThreshold: 0));
        return new PipeConnection(client, server.ServeAsync(serverEnd));
    }

    public RawNbdClient CreateClient() => RawNbdClient.Over(Client);
}
