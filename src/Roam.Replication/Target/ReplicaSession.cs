using System.Buffers;
using Microsoft.Extensions.Logging;
using Roam.Replication.Engine;
using Roam.Peers.Protocol;
using Roam.Replication.Protocol;
using Roam.Peers.Transport;
using Roam.Storage.Devices;
using Roam.Storage.Volumes;

namespace Roam.Replication.Target;

/// <summary>
/// One incoming replica connection: Attach, then Write/Zero/Flush/Generations applied to the
/// local replica volume strictly in order, each acknowledged by its sequence once applied (and
/// durable, for FUA and Flush).
/// </summary>
internal sealed class ReplicaSession(ReplicationService service, PeerConnection connection, ILogger logger)
{
    private readonly CancellationTokenSource _cancel = new();
    private readonly TaskCompletionSource _done = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private ulong _sequence;
    private bool _handedOver;
    private long _lastHeard = System.Diagnostics.Stopwatch.GetTimestamp();
    private volatile bool _applying;

    public async Task RunAsync(CancellationToken stopping)
    {
        using var link = CancellationTokenSource.CreateLinkedTokenSource(stopping, _cancel.Token);
        var ct = link.Token;
        string? volume = null;
        VolumeLease? lease = null;
        try
        {
            await service.Hooks.TargetGate.WaitAsync(ct).ConfigureAwait(false);
            var first = await PeerFrameReader.ReadFrameAsync(connection.Transport.Input, PeerProtocol.MaxHandshakePayload, ct).ConfigureAwait(false);
            if (first is null) return;
            if (first.Type == PeerFrameType.Detach)
            {
                var detach = PeerDetach.Read(first.Payload);
                if (await service.Replica.AcceptDetachAsync(detach.Name, connection.PeerName).ConfigureAwait(false) is { } refused)
                    await SendErrorAsync(first.Header.Sequence, PeerErrorCode.UnknownVolume, refused).ConfigureAwait(false);
                else
                {
                    ReplicationFrameWriter.WriteAck(connection.Transport.Output, ++_sequence, new PeerAck(first.Header.Sequence));
                    await connection.Transport.Output.FlushAsync(ct).ConfigureAwait(false);
                }
                return;
            }
            if (first.Type != PeerFrameType.Attach)
            {
                await SendErrorAsync(first.Header.Sequence, PeerErrorCode.ProtocolError, $"expected Attach, got {first.Type}").ConfigureAwait(false);
                return;
            }
            var attach = PeerAttach.Read(first.Payload);
            PeerAttachAck ack;
            try
            {
                (ack, lease) = await service.Replica.AcceptAttachAsync(attach, connection.PeerName, this, connection.ProtocolVersion).ConfigureAwait(false);
            }
            catch (AttachRefused ex)
            {
                await SendErrorAsync(first.Header.Sequence, ex.Code, ex.Message).ConfigureAwait(false);
                return;
            }
            ReplicationFrameWriter.WriteAttachAck(connection.Transport.Output, ++_sequence, ack);
            await connection.Transport.Output.FlushAsync(ct).ConfigureAwait(false);
            if (lease is null) return;
            volume = attach.Name;
            Log.ReplicaAttached(logger, attach.Name, connection.PeerName);
            var watchdog = Task.Run(() => WatchdogAsync(attach.Name, ct), CancellationToken.None);
            try { await ApplyLoopAsync(attach, lease.Device, ct).ConfigureAwait(false); }
            finally
            {
                await _cancel.CancelAsync().ConfigureAwait(false);
                await watchdog.ConfigureAwait(false);
            }
        }
        catch (OperationCanceledException) { }
        catch (Exception ex) when (ex is IOException or PeerProtocolException or ObjectDisposedException or InvalidOperationException)
        {
            Log.ReplicaSessionFailed(logger, volume ?? "-", connection.PeerName, ex.Message);
        }
        finally
        {
            if (volume is not null) service.Replica.SessionEnded(volume, this);
            lease?.Dispose();
            try { await connection.DisposeAsync().ConfigureAwait(false); }
            catch (Exception ex) when (PeerConnection.IsTeardownNoise(ex)) { }
            _done.TrySetResult();
        }
    }

    /// <summary>Stops applying frames (a newer session took over, or the volume was promoted) and waits until it has.</summary>
    public async Task StopAsync()
    {
        await _cancel.CancelAsync().ConfigureAwait(false);
        await _done.Task.ConfigureAwait(false);
    }

    /// <summary>
    /// The primary sends at least a heartbeat every HeartbeatInterval: a session that heard nothing for
    /// HeartbeatTimeout belongs to a primary that hung or vanished, and is ended (so the volume no longer
    /// counts as attached, and a promotion need not be forced).
    /// </summary>
    private async Task WatchdogAsync(string volume, CancellationToken ct)
    {
        var timeout = service.Options.HeartbeatTimeout;
        var tick = TimeSpan.FromTicks(Math.Max(TimeSpan.TicksPerMillisecond * 10, timeout.Ticks / 4));
        try
        {
            while (!ct.IsCancellationRequested)
            {
                await Task.Delay(tick, ct).ConfigureAwait(false);
                if (!service.Hooks.TargetGate.IsCompleted)
                {
                    // A stalled target (tests) plays a hung process: nothing of it runs, this watchdog included.
                    await service.Hooks.TargetGate.WaitAsync(ct).ConfigureAwait(false);
                    Heard();
                    continue;
                }
                var silent = System.Diagnostics.Stopwatch.GetElapsedTime(Volatile.Read(ref _lastHeard));
                if (silent > timeout && !_applying)   // a slow local write or flush is not the primary's silence
                {
                    Log.ReplicaSessionFailed(logger, volume, connection.PeerName, $"nothing heard from the primary for {silent.TotalSeconds:0.#} s (heartbeat timeout)");
                    await _cancel.CancelAsync().ConfigureAwait(false);
                    return;
                }
            }
        }
        catch (OperationCanceledException) { }
    }

    private void Heard() => Volatile.Write(ref _lastHeard, System.Diagnostics.Stopwatch.GetTimestamp());

    private async Task ApplyLoopAsync(PeerAttach attach, IBlockDevice device, CancellationToken ct)
    {
        var input = connection.Transport.Input;
        var output = connection.Transport.Output;
        while (true)
        {
            await service.Hooks.TargetGate.WaitAsync(ct).ConfigureAwait(false);
            Heard();
            var result = await input.ReadAsync(ct).ConfigureAwait(false);
            Heard();
            var buffer = result.Buffer;
            try
            {
                while (TryRead(ref buffer, out var header, out var payload))
                {
                    ct.ThrowIfCancellationRequested();
                    _applying = true;
                    (PeerErrorCode Code, string Message)? error;
                    try { error = await ApplyAsync(attach, device, header, payload, ct).ConfigureAwait(false); }
                    finally
                    {
                        Heard();
                        _applying = false;
                    }
                    if (error is { } e)
                    {
                        await SendErrorAsync(header.Sequence, e.Code, e.Message).ConfigureAwait(false);
                        return;
                    }
                    ReplicationFrameWriter.WriteAck(output, ++_sequence, new PeerAck(header.Sequence));
                    if (_handedOver)
                    {
                        // Promoted: the acknowledgement is the last frame of this session.
                        await output.FlushAsync(ct).ConfigureAwait(false);
                        return;
                    }
                }
                if (result.IsCompleted) return;
            }
            finally
            {
                input.AdvanceTo(buffer.Start, buffer.End);
            }
            await output.FlushAsync(ct).ConfigureAwait(false);
        }
    }

    private static bool TryRead(ref ReadOnlySequence<byte> buffer, out PeerFrameHeader header, out ReadOnlySequence<byte> payload) =>
        PeerFrameReader.TryRead(ref buffer, PeerProtocol.DefaultMaxPayload, out header, out payload);

    private async ValueTask<(PeerErrorCode Code, string Message)?> ApplyAsync(PeerAttach attach, IBlockDevice device, PeerFrameHeader header,
        ReadOnlySequence<byte> payload, CancellationToken ct)
    {
        if (!service.Replica.IsReplicaOf(attach.Name, this)) return (PeerErrorCode.UnknownVolume, $"'{attach.Name}' is not a replica here any more");
        bool fua = (header.Flags & PeerFrameFlags.Fua) != 0;
        try
        {
            switch (header.Type)
            {
                case PeerFrameType.Write:
                {
                    var write = PeerWrite.Read(payload);
                    if (write.VolumeId != attach.VolumeId) return (PeerErrorCode.UnknownVolume, "frame for another volume");
                    if ((header.Flags & PeerFrameFlags.Lz4) == 0)
                    {
                        if (write.Offset + (ulong)write.Data.Length > (ulong)device.Size) return (PeerErrorCode.OutOfRange, "write past the end");
                        var data = write.Data.IsSingleSegment ? write.Data.First : write.Data.ToArray();
                        await device.WriteAsync((long)write.Offset, data, fua, ct).ConfigureAwait(false);
                        return null;
                    }
                    if (connection.ProtocolVersion < PeerProtocol.CompressionVersion)
                        return (PeerErrorCode.ProtocolError, $"a compressed Write on a version {connection.ProtocolVersion} connection");
                    int length = WriteCompression.DecodedLength(write.Data);
                    if (write.Offset + (ulong)length > (ulong)device.Size) return (PeerErrorCode.OutOfRange, "write past the end");
                    var decoded = ArrayPool<byte>.Shared.Rent(length);
                    try
                    {
                        WriteCompression.Decompress(write.Data, decoded.AsSpan(0, length));
                        await device.WriteAsync((long)write.Offset, decoded.AsMemory(0, length), fua, ct).ConfigureAwait(false);
                    }
                    finally { ArrayPool<byte>.Shared.Return(decoded); }
                    return null;
                }
                case PeerFrameType.Zero:
                {
                    var zero = PeerZero.Read(payload);
                    if (zero.VolumeId != attach.VolumeId) return (PeerErrorCode.UnknownVolume, "frame for another volume");
                    if (zero.Offset + zero.Length > (ulong)device.Size) return (PeerErrorCode.OutOfRange, "zero past the end");
                    await device.ZeroAsync((long)zero.Offset, (long)zero.Length, mayDeallocate: true, fastOnly: false, fua, ct).ConfigureAwait(false);
                    return null;
                }
                case PeerFrameType.Flush:
                    if (PeerFlush.Read(payload).VolumeId != attach.VolumeId) return (PeerErrorCode.UnknownVolume, "frame for another volume");
                    await device.FlushAsync(ct).ConfigureAwait(false);
                    return null;
                case PeerFrameType.Generations:
                {
                    var generations = PeerGenerations.Read(payload);
                    if (generations.VolumeId != attach.VolumeId) return (PeerErrorCode.UnknownVolume, "frame for another volume");
                    // Everything before this frame is applied; make it durable before the replica claims the generation.
                    await device.FlushAsync(ct).ConfigureAwait(false);
                    service.Replica.SetReplicaGenerations(attach.Name, generations.Generations);
                    return null;
                }
                case PeerFrameType.HandOver:
                {
                    var handOver = PeerHandOver.Read(payload);
                    if (handOver.VolumeId != attach.VolumeId) return (PeerErrorCode.UnknownVolume, "frame for another volume");
                    if (handOver.Replicas is not null && connection.ProtocolVersion < PeerProtocol.HandOverReplicasVersion)
                        return (PeerErrorCode.ProtocolError, $"a HandOver with replicas on a version {connection.ProtocolVersion} connection");
                    if (service.Hooks.RefuseHandOver) return (PeerErrorCode.Internal, "hand-over refused (test hook)");
                    // Everything before this frame is applied; durable before this host claims the primary role.
                    long received = System.Diagnostics.Stopwatch.GetTimestamp();
                    await device.FlushAsync(ct).ConfigureAwait(false);
                    if (service.HandOverTarget.AcceptHandOver(attach.Name, connection.PeerName, handOver, this, received) is { } refused)
                        return (PeerErrorCode.UnknownVolume, refused);
                    _handedOver = true;
                    if (service.Hooks.DropBeforeHandOverAck) throw new IOException("connection dropped before acknowledging the hand-over (test hook)");
                    return null;
                }
                case PeerFrameType.Heartbeat:
                    return null;
                default:
                    return (PeerErrorCode.ProtocolError, $"unexpected {header.Type}");
            }
        }
        catch (BlockDeviceException ex)
        {
            return (PeerErrorCode.IoError, ex.Message);
        }
    }

    private async Task SendErrorAsync(ulong sequence, PeerErrorCode code, string message)
    {
        try
        {
            PeerFrameWriter.WriteError(connection.Transport.Output, sequence, new PeerError(sequence, code, message));
            await connection.Transport.Output.FlushAsync().ConfigureAwait(false);
        }
        catch (Exception ex) when (PeerConnection.IsTeardownNoise(ex)) { }
    }
}
