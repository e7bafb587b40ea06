using System.Buffers.Binary;
using System.IO.Pipelines;
using System.Net.Sockets;
using Roam.Nbd.Protocol;

namespace Roam.Testing.Nbd;

/// <summary>
/// A raw-bytes NBD client (Garnet's LightClientRequest): it sends exactly what a test asks for,
/// malformed frames included, and decodes what comes back without trusting it. Every reply is
/// checked against the spec's framing rules as it is parsed (a violation throws
/// <see cref="InvalidDataException"/>), so each test that talks to the server also checks its wire format.
/// Every read has a timeout: a server that hangs fails the test instead of stalling the suite.
/// Not thread-safe: one test drives one client.
/// </summary>
public sealed partial class RawNbdClient : IAsyncDisposable
{
    private readonly Stream _input;
    private readonly Stream _output;
    private readonly Func<ValueTask> _closeSend;
    private readonly Func<ValueTask> _dispose;

    private RawNbdClient(Stream input, Stream output, Func<ValueTask> closeSend, Func<ValueTask> dispose)
    {
        _input = input;
        _output = output;
        _closeSend = closeSend;
        _dispose = dispose;
    }

    public TimeSpan Timeout { get; set; } = TimeSpan.FromSeconds(20);

    public static async Task<RawNbdClient> ConnectUnixAsync(string socketPath)
    {
        var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        await socket.ConnectAsync(new UnixDomainSocketEndPoint(socketPath)).ConfigureAwait(false);
        var stream = new NetworkStream(socket, ownsSocket: true);
        return new RawNbdClient(stream, stream,
            () =>
            {
                try { socket.Shutdown(SocketShutdown.Send); }
                catch (Exception ex) when (ex is SocketException or ObjectDisposedException) { } // already gone: nothing left to half-close
                return ValueTask.CompletedTask;
            },
            () => stream.DisposeAsync());
    }

    /// <summary>A client over the client's end of an in-memory pipe pair (see <see cref="TestServer.ServePipe"/>).</summary>
    public static RawNbdClient Over(IDuplexPipe clientEnd) =>
        new(clientEnd.Input.AsStream(), clientEnd.Output.AsStream(),
            () => clientEnd.Output.CompleteAsync(),
            async () =>
            {
                await clientEnd.Output.CompleteAsync().ConfigureAwait(false);
                await clientEnd.Input.CompleteAsync().ConfigureAwait(false);
            });

    /// <summary>Sends bytes as they are: for frames no helper would build.</summary>
    public async Task SendRawAsync(ReadOnlyMemory<byte> bytes)
    {
        await _output.WriteAsync(bytes).ConfigureAwait(false);
        await _output.FlushAsync().ConfigureAwait(false);
    }

    /// <summary>Half-closes: the server sees EOF, and the client can still read what it sends.</summary>
    public ValueTask CloseSendAsync() => _closeSend();

    /// <summary>
    /// True when the server closes the connection within the timeout (anything it still sends is
    /// discarded); false when it is still open at the end.
    /// </summary>
    public async Task<bool> WaitForCloseAsync(TimeSpan? timeout = null)
    {
        var scratch = new byte[64 * 1024];
        using var cts = new CancellationTokenSource(timeout ?? Timeout);
        try
        {
            while (await _input.ReadAsync(scratch, cts.Token).ConfigureAwait(false) > 0) { }
            return true;
        }
        catch (OperationCanceledException) { return false; }
        catch (IOException) { return true; } // reset by the server: closed all the same
    }

    private async Task<byte[]> ReadBytesAsync(int count)
    {
        var buffer = new byte[count];
        if (count == 0) return buffer;
        using var cts = new CancellationTokenSource(Timeout);
        try { await _input.ReadExactlyAsync(buffer, cts.Token).ConfigureAwait(false); }
        catch (OperationCanceledException) { throw new TimeoutException($"the server sent nothing for {Timeout} while {count} bytes were expected"); }
        return buffer;
    }

    private async Task WriteAsync(ReadOnlyMemory<byte> header, ReadOnlyMemory<byte> payload = default)
    {
        await _output.WriteAsync(header).ConfigureAwait(false);
        if (!payload.IsEmpty) await _output.WriteAsync(payload).ConfigureAwait(false);
        await _output.FlushAsync().ConfigureAwait(false);
    }

    private static ulong U64(ReadOnlySpan<byte> s) => BinaryPrimitives.ReadUInt64BigEndian(s);

    private static uint U32(ReadOnlySpan<byte> s) => BinaryPrimitives.ReadUInt32BigEndian(s);

    private static ushort U16(ReadOnlySpan<byte> s) => BinaryPrimitives.ReadUInt16BigEndian(s);

    public async ValueTask DisposeAsync() => await _dispose().ConfigureAwait(false);
}
