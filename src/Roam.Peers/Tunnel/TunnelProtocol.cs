using System.Buffers;
using System.Buffers.Binary;
using System.IO.Pipelines;
using System.Text;
using Roam.Peers.Protocol;

namespace Roam.Peers.Tunnel;

/// <summary>
/// A tunnel: an authenticated peer connection (mutual TLS 1.3, pinned fingerprints, Hello) whose first frame is a
/// Tunnel frame instead of Attach/Detach. The frame has the peer protocol's header (magic, type, flags, sequence,
/// length, CRC32C) with type <see cref="FrameType"/> and a UTF-8 JSON request as payload; the answer is one Tunnel
/// frame (JSON) too. What follows depends on the request: nothing (a question, e.g. "vm-prepare"), or raw bytes both
/// ways (a VM's memory stream, "vm-incoming"), still inside the TLS stream, so never plaintext and never to an
/// untrusted host.
/// The type is deliberately outside <see cref="PeerFrameType"/>: <see cref="Roam.Peers.Transport.PeerServer"/> routes the incoming
/// connection on its first frame's type (peeked) to the tunnel's handler, so the replication protocol is unchanged.
/// </summary>
public static class TunnelProtocol
{
    public const ushort FrameType = 0x4001;

    public const int MaxPayload = 256 * 1024;

    public static void WriteFrame(PipeWriter output, string json)
    {
        var payload = Encoding.UTF8.GetBytes(json);
        if (payload.Length > MaxPayload) throw new ArgumentException($"a tunnel frame carries at most {MaxPayload} bytes");
        var span = output.GetSpan(PeerProtocol.HeaderSize + payload.Length);
        BinaryPrimitives.WriteUInt32BigEndian(span[PeerProtocol.MagicOffset..], PeerProtocol.Magic);
        BinaryPrimitives.WriteUInt16BigEndian(span[PeerProtocol.TypeOffset..], FrameType);
        BinaryPrimitives.WriteUInt16BigEndian(span[PeerProtocol.FlagsOffset..], 0);
        BinaryPrimitives.WriteUInt64BigEndian(span[PeerProtocol.SequenceOffset..], 1);
        BinaryPrimitives.WriteUInt32BigEndian(span[PeerProtocol.LengthOffset..], (uint)payload.Length);
        payload.CopyTo(span[PeerProtocol.HeaderSize..]);
        uint crc = Crc32C.Finish(Crc32C.Append(Crc32C.Append(Crc32C.Seed, span[..PeerProtocol.ChecksumOffset]),
            span.Slice(PeerProtocol.HeaderSize, payload.Length)));
        BinaryPrimitives.WriteUInt32BigEndian(span[PeerProtocol.ChecksumOffset..], crc);
        output.Advance(PeerProtocol.HeaderSize + payload.Length);
    }

    /// <summary>Reads one Tunnel frame's JSON; null at a clean end of stream. Anything else is a <see cref="PeerProtocolException"/>-free IOException.</summary>
    public static async Task<string?> ReadFrameAsync(PipeReader input, CancellationToken cancellationToken)
    {
        while (true)
        {
            var result = await input.ReadAsync(cancellationToken).ConfigureAwait(false);
            var buffer = result.Buffer;
            if (buffer.Length >= PeerProtocol.HeaderSize)
            {
                var header = new byte[PeerProtocol.HeaderSize];
                buffer.Slice(0, PeerProtocol.HeaderSize).CopyTo(header);
                if (BinaryPrimitives.ReadUInt32BigEndian(header) != PeerProtocol.Magic
                    || BinaryPrimitives.ReadUInt16BigEndian(header.AsSpan(PeerProtocol.TypeOffset)) != FrameType)
                {
                    input.AdvanceTo(buffer.Start);
                    throw new IOException("the peer did not answer with a tunnel frame");
                }
                uint length = BinaryPrimitives.ReadUInt32BigEndian(header.AsSpan(PeerProtocol.LengthOffset));
                if (length > MaxPayload)
                {
                    input.AdvanceTo(buffer.Start);
                    throw new IOException($"tunnel frame of {length} bytes is too long");
                }
                if (buffer.Length >= PeerProtocol.HeaderSize + length)
                {
                    var body = buffer.Slice(PeerProtocol.HeaderSize, length);
                    uint crc = Crc32C.Finish(Crc32C.Append(Crc32C.Append(Crc32C.Seed, header.AsSpan(0, PeerProtocol.ChecksumOffset)), body));
                    string json = Encoding.UTF8.GetString(body);
                    input.AdvanceTo(body.End);
                    if (crc != BinaryPrimitives.ReadUInt32BigEndian(header.AsSpan(PeerProtocol.ChecksumOffset)))
                        throw new IOException("tunnel frame checksum mismatch");
                    return json;
                }
            }
            if (result.IsCompleted)
            {
                bool empty = buffer.IsEmpty;
                input.AdvanceTo(buffer.End);
                if (empty) return null;
                throw new IOException("the peer closed the connection inside a tunnel frame");
            }
            input.AdvanceTo(buffer.Start, buffer.End);
        }
    }
}

/// <summary>An incoming tunnel, handed to the handler given to <see cref="Tunnels.Serve"/>: the peer (authenticated),
/// its request, and the connection to answer on (and relay over).</summary>
public sealed class TunnelRequest(string peer, string json, IDuplexPipe transport, CancellationToken stopping)
{
    public string Peer { get; } = peer;
    public string Json { get; } = json;
    public IDuplexPipe Transport { get; } = transport;

    /// <summary>Cancelled when roamd stops.</summary>
    public CancellationToken Stopping { get; } = stopping;

    public async Task ReplyAsync(string json, CancellationToken cancellationToken)
    {
        TunnelProtocol.WriteFrame(Transport.Output, json);
        await Transport.Output.FlushAsync(cancellationToken).ConfigureAwait(false);
    }
}

/// <summary>An outgoing tunnel: the answer to its request and the open connection (for a relay). Dispose closes it.</summary>
public sealed class TunnelConnection(Roam.Peers.Transport.PeerConnection connection, string reply) : IAsyncDisposable
{
    public string Reply { get; } = reply;
    public IDuplexPipe Transport => connection.Transport;

    /// <summary>Ends the stream towards the peer (it reads EOF) while replies can still arrive.</summary>
    public Task ShutdownSendAsync(CancellationToken cancellationToken) => connection.ShutdownSendAsync(cancellationToken);

    public ValueTask DisposeAsync() => connection.DisposeAsync();
}

/// <summary>
/// Relays a local stream (a QEMU migration socket) through a tunnel, both ways, as checksummed chunks
/// (<see cref="TunnelChunks"/>, LZ4-compressed when agreed). Each chunk from the peer is verified before any of its
/// bytes reach the local side; the first corrupt one ends the relay: it and everything after it are dropped, nothing
/// more is sent, and the peer is told in an abort chunk (see <see cref="RunCheckedAsync"/>).
/// </summary>
public static class TunnelRelay
{
    /// <summary>
    /// Copies both ways until the tunnel's incoming side ends (or <paramref name="localEndsIt"/> and the local
    /// side ends). An end on one side is passed on as a half-close. Returns the bytes sent to and received from the peer.
    /// </summary>
    /// <param name="shutdownSend">Passes the local side's end on to the peer (TLS close_notify); without it the peer
    /// would learn of the end only when the drain timeout below closes the connection.</param>
    /// <param name="drainOnTunnelFailure">Asked when sending to the peer fails (or stops: a corrupt stream): true keeps reading
    /// the local side to its end, discarding, so the local writer (QEMU) sees its stream end normally instead of an error (see
    /// VmService: after the disk hand-over the source QEMU must not fail its migration, since QEMU resumes a guest whose migration failed).</param>
    /// <param name="compressed">Both ends agreed on <see cref="TunnelCompression"/>: chunks LZ4 shrinks go compressed.</param>
    /// <param name="corruptForTests">Fault injection (end-to-end tests only): asked per chunk sent with the stream offset at its end;
    /// the first chunk it says true for has one payload bit flipped after its checksum was computed.</param>
    public static async Task<(long Sent, long Received)> RunAsync(IDuplexPipe tunnel, System.Net.Sockets.Socket local, bool localEndsIt,
        CancellationToken cancellationToken, Func<CancellationToken, Task>? shutdownSend = null, Func<bool>? drainOnTunnelFailure = null, bool compressed = false,
        Func<long, bool>? corruptForTests = null)
    {
        var (sent, received, _) = await RunCheckedAsync(tunnel, local, localEndsIt, cancellationToken, shutdownSend, drainOnTunnelFailure, compressed,
            corruptForTests).ConfigureAwait(false);
        return (sent, received);
    }

    /// <summary>As <see cref="RunAsync"/>, and what broke the tunnel (an I/O error sending to or reading from the peer), or null.
    /// A <see cref="TunnelCorruptException"/> (it wins over any other failure) when the stream from the peer was corrupt, or the
    /// peer said (abort chunk) that the stream from here was (<see cref="TunnelCorruptException.FoundByPeer"/>); either way
    /// nothing more was passed on or sent. Sent and Received count the bytes on the tunnel (framed, compressed if it is).</summary>
    public static async Task<(long Sent, long Received, Exception? TunnelFailure)> RunCheckedAsync(IDuplexPipe tunnel, System.Net.Sockets.Socket local,
        bool localEndsIt, CancellationToken cancellationToken, Func<CancellationToken, Task>? shutdownSend = null, Func<bool>? drainOnTunnelFailure = null,
        bool compressed = false, Func<long, bool>? corruptForTests = null, TunnelMeter? meter = null)
    {
        long sent = 0, received = 0;
        Exception? failure = null;
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        // Cancelled when the stream from the peer is corrupt: nothing more is sent to it either.
        using var corrupt = CancellationTokenSource.CreateLinkedTokenSource(stop.Token);
        // Set once the sending side no longer touches the tunnel's output (the abort chunk may go then).
        var sendingDone = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        using var writer = new TunnelChunkWriter(compressed);
        var toPeer = Task.Run(async () =>
        {
            bool injected = false;
            try
            {
                while (true)
                {
                    int n = await local.ReceiveAsync(writer.Input, System.Net.Sockets.SocketFlags.None, corrupt.Token).ConfigureAwait(false);
                    if (n == 0) break;
                    // Whatever QEMU wrote goes at once (compressing never waits for more): the last pages of a
                    // migration are in the VM's pause.
                    bool flip = !injected && corruptForTests?.Invoke(writer.Offset + n) == true;
                    injected |= flip;
                    var chunk = writer.Seal(n, flip);
                    try
                    {
                        await tunnel.Output.WriteAsync(chunk, corrupt.Token).ConfigureAwait(false);
                    }
                    catch (Exception ex) when (ex is IOException or System.Net.Sockets.SocketException or ObjectDisposedException or InvalidOperationException)
                    {
                        Record(ex);
                        if (drainOnTunnelFailure?.Invoke() != true) throw;
                        sendingDone.TrySetResult();
                        await DrainLocalAsync().ConfigureAwait(false);
                        return;
                    }
                    Interlocked.Add(ref sent, chunk.Length);
                    meter?.AddSent(chunk.Length);
                }
                await tunnel.Output.FlushAsync(corrupt.Token).ConfigureAwait(false);
                if (shutdownSend is not null) await shutdownSend(corrupt.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (corrupt.IsCancellationRequested && !stop.IsCancellationRequested)
            {
                // The peer's stream (or ours, says the peer) is corrupt: nothing more goes to it.
                sendingDone.TrySetResult();
                if (drainOnTunnelFailure?.Invoke() == true) await DrainLocalAsync().ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is OperationCanceledException or IOException or System.Net.Sockets.SocketException or ObjectDisposedException
                or InvalidOperationException)
            {
                if (ex is not OperationCanceledException) Record(ex);
            }
            finally { sendingDone.TrySetResult(); }
        }, CancellationToken.None);
        var fromPeer = Task.Run(async () =>
        {
            using var reader = new TunnelChunkReader();
            try
            {
                while (true)
                {
                    var result = await tunnel.Input.ReadAsync(stop.Token).ConfigureAwait(false);
                    var buffer = result.Buffer;
                    long before = buffer.Length;
                    try
                    {
                        // Verified chunk by chunk, each before any of its bytes go on.
                        while (reader.TryRead(ref buffer, out var raw)) await SendAllAsync(raw).ConfigureAwait(false);
                        if (result.IsCompleted && !buffer.IsEmpty) throw reader.Truncated();
                    }
                    finally
                    {
                        Interlocked.Add(ref received, before - buffer.Length);
                        tunnel.Input.AdvanceTo(buffer.Start, buffer.End);
                    }
                    if (result.IsCompleted) break;
                }
                try { local.Shutdown(System.Net.Sockets.SocketShutdown.Send); }
                catch (System.Net.Sockets.SocketException) { }
            }
            catch (TunnelCorruptException ex)
            {
                // No half-close towards the local side: its stream did not end, it broke.
                Record(ex);
                await corrupt.CancelAsync().ConfigureAwait(false);
                if (!ex.FoundByPeer) await TellPeerAsync(ex).ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is OperationCanceledException or IOException or System.Net.Sockets.SocketException or ObjectDisposedException
                or InvalidOperationException)
            {
                if (ex is IOException) Record(ex);
            }
        }, CancellationToken.None);

        void Record(Exception ex)
        {
            if (ex is not TunnelCorruptException)
            {
                Interlocked.CompareExchange(ref failure, ex, null);
                return;
            }
            while (true)
            {
                var before = Volatile.Read(ref failure);
                if (before is TunnelCorruptException || Interlocked.CompareExchange(ref failure, ex, before) == before) return;
            }
        }

        async ValueTask SendAllAsync(ReadOnlyMemory<byte> bytes)
        {
            int off = 0;
            while (off < bytes.Length)
                off += await local.SendAsync(bytes[off..], System.Net.Sockets.SocketFlags.None, stop.Token).ConfigureAwait(false);
        }

        // Swallows the rest of the local side (QEMU's stream) so that it ends normally there.
        async Task DrainLocalAsync()
        {
            var discard = System.Buffers.ArrayPool<byte>.Shared.Rent(64 * 1024);
            try { while (await local.ReceiveAsync(discard, System.Net.Sockets.SocketFlags.None, stop.Token).ConfigureAwait(false) > 0) { } }
            catch (Exception ex) when (ex is OperationCanceledException or System.Net.Sockets.SocketException or ObjectDisposedException) { }
            finally { System.Buffers.ArrayPool<byte>.Shared.Return(discard); }
        }

        // The abort chunk, once the sending side let go of the output; then what the peer still sends is read and dropped
        // until it stops (or 5 s): closing on unread data would reset the connection, and lose the abort with it.
        async Task TellPeerAsync(TunnelCorruptException finding)
        {
            using var limit = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            limit.CancelAfter(TimeSpan.FromSeconds(5));
            try
            {
                await sendingDone.Task.WaitAsync(limit.Token).ConfigureAwait(false);
                await tunnel.Output.WriteAsync(writer.Abort(finding), limit.Token).ConfigureAwait(false);
                while (true)
                {
                    var result = await tunnel.Input.ReadAsync(limit.Token).ConfigureAwait(false);
                    tunnel.Input.AdvanceTo(result.Buffer.End);
                    if (result.IsCompleted) break;
                }
            }
            catch (Exception ex) when (ex is OperationCanceledException or IOException or System.Net.Sockets.SocketException or ObjectDisposedException
                or InvalidOperationException) { }
        }

        if (localEndsIt) await toPeer.ConfigureAwait(false);
        else await fromPeer.ConfigureAwait(false);
        // Let the other direction drain briefly, then stop it.
        await Task.WhenAll(toPeer, fromPeer).WaitAsync(TimeSpan.FromSeconds(5), CancellationToken.None).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
        await stop.CancelAsync().ConfigureAwait(false);
        await Task.WhenAll(toPeer, fromPeer).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
        return (Interlocked.Read(ref sent), Interlocked.Read(ref received), Volatile.Read(ref failure));
    }
}

/// <summary>The bytes a relay has put on the tunnel so far (framed, compressed if it is), readable while it runs: a
/// migration's progress measures the link's rate with it.</summary>
public sealed class TunnelMeter
{
    private long _sent;

    public long Sent => Interlocked.Read(ref _sent);

    internal void AddSent(long bytes) => Interlocked.Add(ref _sent, bytes);
}
