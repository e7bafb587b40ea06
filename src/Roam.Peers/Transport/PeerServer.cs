using System.Buffers;
using System.Buffers.Binary;
using System.Collections.Concurrent;
using System.IO.Pipelines;
using System.Net;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Roam.Peers.Identity;
using Roam.Peers.Protocol;
using Roam.Peers.Trust;

namespace Roam.Peers.Transport;

/// <summary>
/// Serves one authenticated connection whose first frame, not yet consumed, has the type it was routed on. The
/// server disposes the connection when the handler returns.
/// </summary>
public delegate Task PeerConnectionHandler(PeerConnection connection, CancellationToken stopping);

/// <summary>
/// The peer listener and its accept loop. Each connection that passed the handshake is routed on its first frame's
/// type (peeked, not consumed) to the handler a layer registered for it: replication takes Attach and Detach, the VM
/// service takes tunnels. So every layer above the channel says what it speaks, and none parses another's frames.
/// </summary>
public sealed class PeerServer : IAsyncDisposable
{
    private readonly PeerListener _listener;
    private readonly ILogger _logger;
    private readonly ConcurrentDictionary<ushort, PeerConnectionHandler> _routes = new();
    private readonly CancellationTokenSource _stopping = new();
    private readonly ConcurrentDictionary<long, Task> _serving = new();
    private readonly Task _acceptLoop;
    private long _lastId;
    private int _disposed;

    private PeerServer(PeerListener listener, ILogger logger)
    {
        _listener = listener;
        _logger = logger;
        _acceptLoop = Task.Run(AcceptLoopAsync, CancellationToken.None);
    }

    /// <summary>Binds and starts accepting; a bind failure (address in use) throws SocketException here.</summary>
    public static PeerServer Start(HostIdentity identity, TrustStore trust, PeerListenerOptions options, ILogger? logger = null)
    {
        logger ??= NullLogger.Instance;
        return new PeerServer(PeerListener.Start(identity, trust, options, logger), logger);
    }

    /// <summary>The bound endpoint (with the actual port when port 0 was asked for).</summary>
    public IPEndPoint LocalEndPoint => _listener.LocalEndPoint;

    /// <summary>
    /// Serves the connections that the other layers registered no route for; without one they are closed. (Replication
    /// takes them: its session answers a frame it does not expect with an Error frame, which the peer can read.)
    /// </summary>
    public PeerConnectionHandler? Fallback { get; set; }

    /// <summary>Connections whose first frame has <paramref name="frameType"/> go to <paramref name="handler"/> from now on.</summary>
    public void Route(ushort frameType, PeerConnectionHandler handler)
    {
        if (!_routes.TryAdd(frameType, handler))
            throw new InvalidOperationException($"frame type 0x{frameType:x4} is routed already");
    }

    /// <inheritdoc cref="Route(ushort, PeerConnectionHandler)"/>
    public void Route(PeerFrameType frameType, PeerConnectionHandler handler) => Route((ushort)frameType, handler);

    /// <summary>New connections of this type are no longer routed (those being served carry on).</summary>
    public void Unroute(ushort frameType) => _routes.TryRemove(frameType, out _);

    private async Task AcceptLoopAsync()
    {
        var stopping = _stopping.Token;
        while (!stopping.IsCancellationRequested)
        {
            PeerConnection connection;
            try { connection = await _listener.AcceptConnectionAsync(stopping).ConfigureAwait(false); }
            catch (Exception ex) when (ex is OperationCanceledException or ObjectDisposedException) { break; }
            long id = Interlocked.Increment(ref _lastId);
            var serving = Task.Run(() => ServeAsync(connection, stopping), CancellationToken.None);
            _serving[id] = serving;
            _ = serving.ContinueWith(_ => _serving.TryRemove(id, out Task? _), CancellationToken.None,
                TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
        }
    }

    private async Task ServeAsync(PeerConnection connection, CancellationToken stopping)
    {
        try
        {
            ushort? type = await PeekFrameTypeAsync(connection.Transport.Input, stopping).ConfigureAwait(false);
            if (type is null) return;
            var handler = _routes.TryGetValue(type.Value, out var routed) ? routed : Fallback;
            if (handler is null)
            {
                Log.Unrouted(_logger, connection.PeerName, type.Value);
                return;
            }
            await handler(connection, stopping).ConfigureAwait(false);
        }
        catch (Exception ex) when (PeerConnection.IsTeardownNoise(ex))
        {
            // The peer went away, or this host is stopping: nothing to report about the connection.
        }
        catch (Exception ex)
        {
            Log.HandlerFailed(_logger, connection.PeerName, ex);
        }
        finally
        {
            try { await connection.DisposeAsync().ConfigureAwait(false); }
            catch (Exception ex) when (PeerConnection.IsTeardownNoise(ex)) { }
        }
    }

    /// <summary>The first frame's type, left unconsumed for the handler; null when the stream ends before it.</summary>
    internal static async Task<ushort?> PeekFrameTypeAsync(PipeReader input, CancellationToken cancellationToken)
    {
        const int needed = PeerProtocol.TypeOffset + sizeof(ushort);
        while (true)
        {
            var result = await input.ReadAsync(cancellationToken).ConfigureAwait(false);
            var buffer = result.Buffer;
            if (buffer.Length >= needed)
            {
                Span<byte> head = stackalloc byte[needed];
                buffer.Slice(0, needed).CopyTo(head);
                input.AdvanceTo(buffer.Start); // nothing consumed or examined: the handler's first read sees the same bytes at once
                return BinaryPrimitives.ReadUInt16BigEndian(head[PeerProtocol.TypeOffset..]);
            }
            if (result.IsCompleted)
            {
                input.AdvanceTo(buffer.Start);
                return null;
            }
            input.AdvanceTo(buffer.Start, buffer.End);
        }
    }

    /// <summary>Stops accepting, cancels the handlers and waits for them (each disposes its connection).</summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0) return;
        await _stopping.CancelAsync().ConfigureAwait(false);
        await _listener.DisposeAsync().ConfigureAwait(false);
        await _acceptLoop.ConfigureAwait(false);
        await Task.WhenAll(_serving.Values).ConfigureAwait(false);
        _stopping.Dispose();
    }
}
