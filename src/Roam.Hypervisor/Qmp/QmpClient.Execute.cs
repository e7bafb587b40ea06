using System.Buffers;
using System.Text.Json;
using System.Text.Json.Serialization.Metadata;

namespace Roam.Hypervisor.Qmp;

public sealed partial class QmpClient
{
    /// <summary>Runs <paramref name="command"/> and returns its raw "return" value.</summary>
    /// <param name="arguments">null, a record registered in <see cref="QmpJsonContext"/>, a JsonObject or a JsonElement.</param>
    /// <exception cref="QmpException">QEMU replied with an error.</exception>
    /// <exception cref="TimeoutException">No reply within <see cref="DefaultTimeout"/>. QEMU may still run the command later.</exception>
    /// <exception cref="QmpConnectionClosedException">The connection closed before the reply.</exception>
    public Task<JsonElement> ExecuteAsync(string command, object? arguments = null, CancellationToken ct = default) =>
        ExecuteAsync(command, arguments, _options.DefaultTimeout, ct);

    public Task<JsonElement> ExecuteAsync(string command, object? arguments, TimeSpan timeout, CancellationToken ct = default) =>
        SendAsync(command, arguments, timeout, ct);

    /// <summary>Runs <paramref name="command"/> and deserializes its "return" value as <typeparamref name="TResult"/>
    /// (a type registered in <see cref="QmpJsonContext"/>, or JsonElement).</summary>
    public Task<TResult> ExecuteAsync<TResult>(string command, object? arguments = null, CancellationToken ct = default) =>
        ExecuteAsync<TResult>(command, arguments, _options.DefaultTimeout, ct);

    public async Task<TResult> ExecuteAsync<TResult>(string command, object? arguments, TimeSpan timeout, CancellationToken ct = default)
    {
        var typeInfo = TypeInfoFor<TResult>();
        var reply = await SendAsync(command, arguments, timeout, ct).ConfigureAwait(false);
        return reply.Deserialize(typeInfo)
            ?? throw new InvalidDataException($"QMP command '{command}' returned null");
    }

    private static JsonTypeInfo<T> TypeInfoFor<T>() =>
        QmpJsonContext.Default.GetTypeInfo(typeof(T)) as JsonTypeInfo<T>
        ?? throw new ArgumentException($"{typeof(T)} is not registered in QmpJsonContext; use JsonElement");

    private async Task<JsonElement> SendAsync(string command, object? arguments, TimeSpan timeout, CancellationToken ct)
    {
        ArgumentException.ThrowIfNullOrEmpty(command);
        if (CloseReason is { } closed)
            throw new QmpConnectionClosedException($"QMP connection {_socketPath} is closed; cannot run '{command}'", closed);

        var id = Interlocked.Increment(ref _nextId);
        var message = Serialize(command, arguments, id);
        var pending = new PendingCommand(command, new TaskCompletionSource<JsonElement>(TaskCreationOptions.RunContinuationsAsynchronously));
        // Registered before the write: the reply can arrive before WriteAsync returns.
        _pending[id] = pending;
        if (CloseReason is not null && _pending.TryRemove(id, out _))
            throw new QmpConnectionClosedException($"QMP connection {_socketPath} is closed; cannot run '{command}'", CloseReason);

        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(ct);
        deadline.CancelAfter(timeout);
        try
        {
            await WriteAsync(message, deadline.Token).ConfigureAwait(false);
            return await pending.Reply.Task.WaitAsync(deadline.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (!ct.IsCancellationRequested && deadline.IsCancellationRequested)
        {
            throw new TimeoutException($"QMP command '{command}' got no reply within {timeout.TotalSeconds:0.###} s");
        }
        finally
        {
            _pending.TryRemove(id, out _);
        }
    }

    private async Task WriteAsync(ReadOnlyMemory<byte> message, CancellationToken ct)
    {
        await _writeLock.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            // Not cancellable once started: a half-written command would desynchronise the monitor.
            // A Unix socket write of a few hundred bytes completes at once unless the buffer is full.
            await _stream.WriteAsync(message, CancellationToken.None).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is IOException or ObjectDisposedException or System.Net.Sockets.SocketException)
        {
            throw Break(new QmpConnectionClosedException($"QMP connection {_socketPath} failed on write: {ex.Message}", ex));
        }
        finally
        {
            _writeLock.Release();
        }
    }

    /// <summary><c>{"execute": command, "arguments": {...}, "id": id}\n</c></summary>
    private static byte[] Serialize(string command, object? arguments, long id)
    {
        var buffer = new ArrayBufferWriter<byte>(128);
        using (var writer = new Utf8JsonWriter(buffer))
        {
            writer.WriteStartObject();
            writer.WriteString("execute"u8, command);
            if (arguments is not null)
            {
                var typeInfo = QmpJsonContext.Default.GetTypeInfo(arguments.GetType())
                    ?? throw new ArgumentException($"{arguments.GetType()} is not registered in QmpJsonContext; pass a JsonObject", nameof(arguments));
                writer.WritePropertyName("arguments"u8);
                JsonSerializer.Serialize(writer, arguments, typeInfo);
            }
            writer.WriteNumber("id"u8, id);
            writer.WriteEndObject();
        }
        buffer.Write("\n"u8);
        return buffer.WrittenSpan.ToArray();
    }
}
