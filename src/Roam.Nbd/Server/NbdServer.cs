using System.Collections.Concurrent;
using System.IO.Pipelines;
using System.Net;
using System.Net.Sockets;
using Microsoft.Extensions.Logging;

namespace Roam.Nbd.Server;

/// <summary>
/// Accepts NBD clients on a Unix socket and, when asked, on TCP; each socket becomes a pipe pair and
/// an <see cref="NbdConnection"/>. Stopping is a soft disconnect of every client (NBD's shutdown
/// rules: requests in flight finish and are flushed, new ones get ESHUTDOWN).
/// </summary>
public sealed class NbdServer : IAsyncDisposable
{
    private readonly INbdExportProvider _exports;
    private readonly NbdServerOptions _options;
    private readonly ILogger _logger;
    private readonly List<Socket> _listeners = [];
    private readonly List<Task> _acceptLoops = [];
    private readonly ConcurrentDictionary<long, (NbdConnection Connection, Task Run)> _connections = new();
    private readonly CancellationTokenSource _stopping = new();
    private long _nextId;

    public NbdServer(INbdExportProvider exports, NbdServerOptions options, ILogger logger)
    {
        _exports = exports;
        _options = options;
        _logger = logger;
    }

    public int ConnectionCount => _connections.Count;

    /// <summary>Listens on a Unix socket path, replacing a stale socket file left by a crash.</summary>
    public void ListenUnix(string path)
    {
        if (File.Exists(path)) File.Delete(path);
        var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        socket.Bind(new UnixDomainSocketEndPoint(path));
        socket.Listen(128);
        Start(socket, $"unix:{path}");
    }

    /// <summary>Listens on TCP and returns the bound endpoint (port 0 picks a free port).</summary>
    public IPEndPoint ListenTcp(IPEndPoint endpoint)
    {
        var socket = new Socket(endpoint.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
        socket.SetSocketOption(SocketOptionLevel.Socket, SocketOptionName.ReuseAddress, true);
        socket.Bind(endpoint);
        socket.Listen(128);
        var bound = (IPEndPoint)socket.LocalEndPoint!;
        if (!IPAddress.IsLoopback(bound.Address)) Log.ExposedListener(_logger, bound.ToString());
        Start(socket, $"tcp:{bound}");
        return bound;
    }

    /// <summary>Serves one already-connected transport (tests and in-process clients).</summary>
    public Task ServeAsync(IDuplexPipe transport, string remote = "pipe")
    {
        long id = Interlocked.Increment(ref _nextId);
        var connection = new NbdConnection(id, transport, _exports, _options, _logger);
        Log.Accepted(_logger, id, remote);
        var run = RunAndForgetAsync(connection);
        _connections[id] = (connection, run);
        return run;
    }

    private async Task RunAndForgetAsync(NbdConnection connection)
    {
        await Task.Yield();
        try { await connection.RunAsync().ConfigureAwait(false); }
        finally { _connections.TryRemove(connection.Id, out _); }
    }

    private void Start(Socket listener, string name)
    {
        _listeners.Add(listener);
        Log.Listening(_logger, name);
        _acceptLoops.Add(AcceptLoopAsync(listener));
    }

    private async Task AcceptLoopAsync(Socket listener)
    {
        while (!_stopping.IsCancellationRequested)
        {
            Socket client;
            try { client = await listener.AcceptAsync(_stopping.Token).ConfigureAwait(false); }
            catch (Exception ex) when (ex is OperationCanceledException or ObjectDisposedException or SocketException) { break; }
            if (client.AddressFamily != AddressFamily.Unix) client.NoDelay = true;
            var stream = new NetworkStream(client, ownsSocket: true);
            var transport = new SocketTransport(stream);
            var task = ServeAsync(transport, client.RemoteEndPoint?.ToString() ?? "unix");
            _ = task.ContinueWith(_ => stream.Dispose(), TaskScheduler.Default);
        }
    }

    /// <summary>Stops accepting, then soft-disconnects every client and waits for them to finish.</summary>
    public async Task StopAsync()
    {
        if (_stopping.IsCancellationRequested) return;
        _stopping.Cancel();
        foreach (var l in _listeners) l.Dispose();
        try { await Task.WhenAll(_acceptLoops).ConfigureAwait(false); } catch (OperationCanceledException) { }
        foreach (var (connection, _) in _connections.Values) connection.BeginShutdown();
        var runs = _connections.Values.Select(c => c.Run).ToArray();
        try { await Task.WhenAll(runs).WaitAsync(_options.ShutdownGrace + TimeSpan.FromSeconds(1)).ConfigureAwait(false); }
        catch (TimeoutException) { }
    }

    public async ValueTask DisposeAsync()
    {
        await StopAsync().ConfigureAwait(false);
        _stopping.Dispose();
    }

    private sealed class SocketTransport(NetworkStream stream) : IDuplexPipe
    {
        public PipeReader Input { get; } = PipeReader.Create(stream, new StreamPipeReaderOptions(bufferSize: 256 * 1024, minimumReadSize: 64 * 1024, leaveOpen: true));

        public PipeWriter Output { get; } = PipeWriter.Create(stream, new StreamPipeWriterOptions(minimumBufferSize: 64 * 1024, leaveOpen: true));
    }
}
