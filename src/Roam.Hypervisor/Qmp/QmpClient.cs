using System.Buffers;
using System.Collections.Concurrent;
using System.IO.Pipelines;
using System.Net.Sockets;
using System.Text.Json;
using System.Threading.Channels;
using Microsoft.Extensions.Logging;

namespace Roam.Hypervisor.Qmp;

/// <summary>
/// An asynchronous client for the QEMU Machine Protocol over a Unix socket, shaped like Npgsql's connector:
/// one reader loop splits the stream into JSON lines and routes each one. A line with "return" or
/// "error" completes the pending command with the same "id"; a line with "event" goes out-of-band to
/// <see cref="Events"/> and to <see cref="WaitForEventAsync"/> waiters. Commands may be issued
/// concurrently; QEMU answers them in order, but matching by id does not rely on that.
/// Any I/O failure goes through one door, <see cref="Break"/>, which fails everything still waiting.
/// </summary>
public sealed partial class QmpClient : IAsyncDisposable
{
    private readonly Socket _socket;
    private readonly NetworkStream _stream;
    private readonly PipeReader _input;
    private readonly string _socketPath;
    private readonly QmpClientOptions _options;
    private readonly ILogger _logger;
    private readonly SemaphoreSlim _writeLock = new(1, 1);
    private readonly ConcurrentDictionary<long, PendingCommand> _pending = new();
    private readonly Channel<QmpEvent> _events;
    private readonly List<EventWaiter> _waiters = [];
    private readonly TaskCompletionSource<QmpGreeting> _greeting = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly TaskCompletionSource _closed = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private Task _readLoop = Task.CompletedTask;
    private Exception? _closeReason;
    private long _nextId;

    private QmpClient(Socket socket, string socketPath, QmpClientOptions options)
    {
        _socket = socket;
        _stream = new NetworkStream(socket, ownsSocket: true);
        _input = PipeReader.Create(_stream);
        _socketPath = socketPath;
        _options = options;
        _logger = options.Logger;
        _events = Channel.CreateBounded<QmpEvent>(
            new BoundedChannelOptions(options.EventCapacity) { FullMode = BoundedChannelFullMode.DropOldest, SingleWriter = true },
            _ => Log.QmpEventDropped(_logger, _socketPath));
    }

    /// <summary>What QEMU announced when we connected.</summary>
    public QmpGreeting Greeting { get; private set; } = null!;

    public TimeSpan DefaultTimeout => _options.DefaultTimeout;

    /// <summary>Every event, in arrival order. Completes when the connection closes.</summary>
    public ChannelReader<QmpEvent> Events => _events.Reader;

    /// <summary>Completes (never faults) when the connection has closed; <see cref="CloseReason"/> says why.</summary>
    public Task Closed => _closed.Task;

    public Exception? CloseReason => Volatile.Read(ref _closeReason);

    /// <summary>Connects, reads the greeting and leaves capabilities negotiation mode (qmp_capabilities).</summary>
    public static Task<QmpClient> ConnectAsync(string socketPath, CancellationToken ct = default) =>
        ConnectAsync(socketPath, new QmpClientOptions(), ct);

    public static async Task<QmpClient> ConnectAsync(string socketPath, QmpClientOptions options, CancellationToken ct = default)
    {
        var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct);
        timeout.CancelAfter(options.DefaultTimeout);
        try
        {
            await socket.ConnectAsync(new UnixDomainSocketEndPoint(socketPath), timeout.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (!ct.IsCancellationRequested)
        {
            socket.Dispose();
            throw new TimeoutException($"Could not connect to the QMP socket {socketPath} within {options.DefaultTimeout}");
        }
        catch
        {
            socket.Dispose();
            throw;
        }

        var client = new QmpClient(socket, socketPath, options);
        client._readLoop = client.ReadLoopAsync();
        try
        {
            client.Greeting = await client._greeting.Task.WaitAsync(timeout.Token).ConfigureAwait(false);
            await client.ExecuteAsync("qmp_capabilities", null, timeout.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (!ct.IsCancellationRequested)
        {
            await client.DisposeAsync().ConfigureAwait(false);
            throw new TimeoutException($"QEMU on {socketPath} sent no QMP greeting within {options.DefaultTimeout}");
        }
        catch
        {
            await client.DisposeAsync().ConfigureAwait(false);
            throw;
        }
        Log.QmpConnected(client._logger, socketPath, client.Greeting.Version.Qemu.ToString(), client.Greeting.Version.Package);
        return client;
    }

    /// <summary>
    /// Waits for the next event named <paramref name="name"/> that satisfies <paramref name="predicate"/>.
    /// The waiter is registered before this method returns, so start the wait, then issue the command
    /// that causes the event, then await. Fails with <see cref="QmpConnectionClosedException"/> if the connection closes first.
    /// </summary>
    public Task<QmpEvent> WaitForEventAsync(string name, Func<QmpEvent, bool>? predicate = null, CancellationToken ct = default)
    {
        var waiter = new EventWaiter(name, predicate);
        lock (_waiters)
        {
            if (_closeReason is { } reason) return Task.FromException<QmpEvent>(reason);
            _waiters.Add(waiter);
        }
        return AwaitWaiterAsync(waiter, ct);
    }

    private async Task<QmpEvent> AwaitWaiterAsync(EventWaiter waiter, CancellationToken ct)
    {
        try
        {
            return await waiter.Completion.Task.WaitAsync(ct).ConfigureAwait(false);
        }
        finally
        {
            lock (_waiters) _waiters.Remove(waiter);
        }
    }

    private async Task ReadLoopAsync()
    {
        await Task.Yield();
        Exception reason;
        try
        {
            while (true)
            {
                var result = await _input.ReadAsync().ConfigureAwait(false);
                var buffer = result.Buffer;
                try
                {
                    while (TryReadLine(ref buffer, out var line)) Dispatch(line);
                    if (buffer.Length > _options.MaxLineBytes)
                        throw new InvalidDataException($"QMP line longer than {_options.MaxLineBytes} bytes");
                }
                finally
                {
                    // Kestrel's contract: consumed up to the last whole line, examined everything,
                    // so the next ReadAsync waits for new bytes.
                    _input.AdvanceTo(buffer.Start, buffer.End);
                }
                if (result.IsCompleted) break;
            }
            reason = new QmpConnectionClosedException($"QMP connection {_socketPath} closed by QEMU (did it exit?)");
        }
        catch (Exception ex)
        {
            reason = ex is QmpConnectionClosedException ? ex : new QmpConnectionClosedException($"QMP connection {_socketPath} failed: {ex.Message}", ex);
        }
        Break(reason);
    }

    /// <summary>Splits one '\n'-terminated line off the front of <paramref name="buffer"/>; false means "need more".</summary>
    internal static bool TryReadLine(ref ReadOnlySequence<byte> buffer, out ReadOnlySequence<byte> line)
    {
        var reader = new SequenceReader<byte>(buffer);
        if (!reader.TryReadTo(out line, (byte)'\n')) return false;
        buffer = buffer.Slice(reader.Position);
        return true;
    }

    private void Dispatch(ReadOnlySequence<byte> line)
    {
        if (IsBlank(line)) return;
        using var doc = JsonDocument.Parse(line);
        var root = doc.RootElement;
        if (root.TryGetProperty("event", out var eventName))
        {
            var data = root.TryGetProperty("data", out var d) ? d.Clone() : default;
            var evt = new QmpEvent(eventName.GetString() ?? "", data, ReadTimestamp(root));
            Log.QmpEvent(_logger, _socketPath, evt.Name);
            _events.Writer.TryWrite(evt);
            NotifyWaiters(evt);
        }
        else if (root.TryGetProperty("return", out var ret))
        {
            if (TakePending(root) is { } pending) pending.Reply.TrySetResult(ret.Clone());
        }
        else if (root.TryGetProperty("error", out var error))
        {
            if (TakePending(root) is { } pending)
            {
                var errorClass = error.TryGetProperty("class", out var c) ? c.GetString() ?? "" : "";
                var desc = error.TryGetProperty("desc", out var ds) ? ds.GetString() ?? "" : "";
                pending.Reply.TrySetException(new QmpException(pending.Command, errorClass, desc));
            }
        }
        else if (root.TryGetProperty("QMP", out var qmp))
        {
            _greeting.TrySetResult(qmp.Deserialize(QmpJsonContext.Default.QmpGreeting)
                ?? throw new InvalidDataException("Empty QMP greeting"));
        }
    }

    private static bool IsBlank(ReadOnlySequence<byte> line)
    {
        foreach (var segment in line)
            foreach (var b in segment.Span)
                if (b is not ((byte)' ' or (byte)'\r' or (byte)'\t')) return false;
        return true;
    }

    private PendingCommand? TakePending(JsonElement root)
    {
        if (root.TryGetProperty("id", out var idElement) && idElement.ValueKind == JsonValueKind.Number
            && idElement.TryGetInt64(out var id) && _pending.TryRemove(id, out var pending))
            return pending;
        Log.QmpUnmatchedReply(_logger, _socketPath, root.TryGetProperty("id", out var raw) ? raw.GetRawText() : "(none)");
        return null;
    }

    private static DateTimeOffset ReadTimestamp(JsonElement root)
    {
        if (!root.TryGetProperty("timestamp", out var ts)) return default;
        var seconds = ts.TryGetProperty("seconds", out var s) ? s.GetInt64() : 0;
        var micros = ts.TryGetProperty("microseconds", out var us) ? us.GetInt64() : 0;
        return DateTimeOffset.FromUnixTimeSeconds(seconds).AddTicks(micros * 10);
    }

    private void NotifyWaiters(QmpEvent evt)
    {
        lock (_waiters)
        {
            foreach (var waiter in _waiters)
            {
                if (waiter.Name != evt.Name || waiter.Completion.Task.IsCompleted) continue;
                try
                {
                    if (waiter.Predicate is null || waiter.Predicate(evt)) waiter.Completion.TrySetResult(evt);
                }
                catch (Exception ex)
                {
                    waiter.Completion.TrySetException(ex);
                }
            }
        }
    }

    /// <summary>
    /// The one door out (Npgsql's Break): records why the connection ended, fails every pending command
    /// and event waiter with that reason, completes <see cref="Events"/> and closes the socket. Idempotent.
    /// </summary>
    private Exception Break(Exception reason)
    {
        lock (_waiters)
        {
            if (_closeReason is { } existing) return existing;
            Volatile.Write(ref _closeReason, reason);
            foreach (var waiter in _waiters) waiter.Completion.TrySetException(reason);
        }
        foreach (var id in _pending.Keys)
            if (_pending.TryRemove(id, out var pending))
                pending.Reply.TrySetException(new QmpConnectionClosedException(
                    $"QMP connection {_socketPath} closed while '{pending.Command}' waited for its reply", reason));
        _greeting.TrySetException(reason);
        _events.Writer.TryComplete();
        Log.QmpClosed(_logger, _socketPath, reason.Message);
        try { _socket.Shutdown(SocketShutdown.Both); } catch (Exception) { /* already gone */ }
        _closed.TrySetResult();
        return reason;
    }

    public async ValueTask DisposeAsync()
    {
        Break(new QmpConnectionClosedException($"QMP client for {_socketPath} was disposed"));
        _socket.Dispose();
        try { await _readLoop.ConfigureAwait(false); } catch (Exception) { /* reported through Break */ }
        await _input.CompleteAsync().ConfigureAwait(false);
    }

    private sealed record PendingCommand(string Command, TaskCompletionSource<JsonElement> Reply);

    private sealed class EventWaiter(string name, Func<QmpEvent, bool>? predicate)
    {
        public string Name { get; } = name;
        public Func<QmpEvent, bool>? Predicate { get; } = predicate;
        public TaskCompletionSource<QmpEvent> Completion { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
    }
}
