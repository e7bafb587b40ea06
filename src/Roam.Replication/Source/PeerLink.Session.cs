using System.Buffers;
using System.Diagnostics;
using System.Threading.Channels;
using Microsoft.Extensions.Logging;
using Roam.Replication.Engine;
using Roam.Peers.Protocol;
using Roam.Replication.Protocol;
using Roam.Peers.Transport;
using Roam.Storage.Tracking;

namespace Roam.Replication.Source;

// One session's loops (writer, reader, heartbeat, resync), the link's stop, and its per-session state.
internal sealed partial class PeerLink
{
    private async Task WriteLoopAsync(Session s)
    {
        var output = s.Connection.Transport.Output;
        var ct = s.Cancel.Token;
        bool compress = _options.Compression == WireCompression.Auto && s.Connection.ProtocolVersion >= PeerProtocol.CompressionVersion;
        bool handOverReplicas = s.Connection.ProtocolVersion >= PeerProtocol.HandOverReplicasVersion;
        while (await s.Outgoing.Reader.WaitToReadAsync(ct).ConfigureAwait(false))
        {
            long bytes = 0;
            while (s.Outgoing.Reader.TryRead(out var f))
            {
                bytes += WriteFrame(output, f, compress, handOverReplicas);
                if (bytes > 1024 * 1024) break;
            }
            Interlocked.Add(ref _bytesSent, bytes);
            Budget.Charge(bytes);
            Volatile.Write(ref s.LastSent, Stopwatch.GetTimestamp());
            var result = await output.FlushAsync(ct).ConfigureAwait(false);
            if (result.IsCompleted || result.IsCanceled) return;
        }
    }

    private long WriteFrame(IBufferWriter<byte> output, OutFrame f, bool compress, bool handOverReplicas)
    {
        var id = _volume.VolumeId;
        switch (f.Type)
        {
            case PeerFrameType.Write:
                if (compress && f.Data.Length >= WriteCompression.MinLength && _compression.ShouldTry())
                {
                    var buffer = ArrayPool<byte>.Shared.Rent(WriteCompression.BufferLength(f.Data.Length));
                    try
                    {
                        int length = WriteCompression.TryCompress(f.Data.Span, buffer);
                        _compression.Record(length > 0);
                        if (length > 0)
                        {
                            ReplicationFrameWriter.WriteWrite(output, f.Sequence, f.Flags | PeerFrameFlags.Lz4, id, (ulong)f.Offset, buffer.AsSpan(0, length));
                            Interlocked.Add(ref _bytesSavedByCompression, f.Data.Length - length);
                            return PeerProtocol.HeaderSize + PeerWrite.FixedLength + length;
                        }
                    }
                    finally { ArrayPool<byte>.Shared.Return(buffer); }
                }
                ReplicationFrameWriter.WriteWrite(output, f.Sequence, f.Flags, id, (ulong)f.Offset, f.Data.Span);
                return PeerProtocol.HeaderSize + PeerWrite.FixedLength + f.Data.Length;
            case PeerFrameType.Zero:
                ReplicationFrameWriter.WriteZero(output, f.Sequence, f.Flags, new PeerZero(id, (ulong)f.Offset, (ulong)f.Length));
                return PeerProtocol.HeaderSize + PeerZero.PayloadLength;
            case PeerFrameType.Flush:
                ReplicationFrameWriter.WriteFlush(output, f.Sequence, new PeerFlush(id));
                return PeerProtocol.HeaderSize + PeerFlush.PayloadLength;
            case PeerFrameType.Generations:
                ReplicationFrameWriter.WriteGenerations(output, f.Sequence, new PeerGenerations(id, f.Generations!));
                return PeerProtocol.HeaderSize + PeerGenerations.FixedLength + 16 * f.Generations!.History.Count;
            case PeerFrameType.Heartbeat:
                PeerFrameWriter.WriteHeartbeat(output, 0);
                return PeerProtocol.HeaderSize;
            case PeerFrameType.HandOver:
            {
                var handOver = new PeerHandOver(id, f.Generations!, f.HandOverFlags, handOverReplicas ? f.HandOverReplicas : null);
                ReplicationFrameWriter.WriteHandOver(output, f.Sequence, handOver);
                return PeerProtocol.HeaderSize + handOver.PayloadLength;
            }
            default:
                throw new InvalidOperationException($"cannot send {f.Type} on a replica link");
        }
    }

    private async Task ReadLoopAsync(Session s)
    {
        var input = s.Connection.Transport.Input;
        var ct = s.Cancel.Token;
        while (true)
        {
            var result = await input.ReadAsync(ct).ConfigureAwait(false);
            var buffer = result.Buffer;
            try
            {
                while (PeerFrameReader.TryRead(ref buffer, PeerProtocol.MaxHandshakePayload, out var header, out var payload))
                {
                    Volatile.Write(ref s.LastReceived, Stopwatch.GetTimestamp());
                    switch (header.Type)
                    {
                        case PeerFrameType.Ack:
                            OnAck(s, PeerAck.Read(payload).Sequence);
                            break;
                        case PeerFrameType.Error:
                            var error = PeerError.Read(payload);
                            throw new IOException($"the replica refused frame {error.Sequence}: {error.Code}: {error.Message}");
                        case PeerFrameType.Heartbeat:
                            break;
                        default:
                            throw new IOException($"unexpected {header.Type} from the replica");
                    }
                }
                if (result.IsCompleted) return;
            }
            finally
            {
                input.AdvanceTo(buffer.Start, buffer.End);
            }
        }
    }

    /// <summary>
    /// Keeps an idle link talking (a Heartbeat when nothing was sent for an interval, which the replica
    /// acknowledges) and declares it dead when nothing at all came back for HeartbeatTimeout: a peer that
    /// hung or vanished without a reset is noticed even with no writes and in async mode.
    /// </summary>
    private async Task HeartbeatLoopAsync(Session s)
    {
        var ct = s.Cancel.Token;
        var interval = _options.HeartbeatInterval;
        var timeout = _options.HeartbeatTimeout;
        var tick = TimeSpan.FromTicks(Math.Max(TimeSpan.TicksPerMillisecond * 10, Math.Min(interval.Ticks, timeout.Ticks) / 4));
        while (!ct.IsCancellationRequested)
        {
            await Task.Delay(tick, ct).ConfigureAwait(false);
            var silent = Stopwatch.GetElapsedTime(Volatile.Read(ref s.LastReceived));
            if (silent > timeout)
            {
                Log.LinkFailed(_logger, _volume.Name, Peer, $"nothing heard from the peer for {silent.TotalSeconds:0.#} s (heartbeat timeout): marked OutOfSync, reconnecting");
                Fail(s, ReplicaState.OutOfSync);
                return;
            }
            if (Stopwatch.GetElapsedTime(Volatile.Read(ref s.LastSent)) >= interval)
            {
                lock (_gate)
                {
                    if (!ReferenceEquals(_session, s) || !s.Live) return;
                    s.Outgoing.Writer.TryWrite(OutFrame.Heartbeat());
                }
                // Counted as sent once it is queued: a heartbeat behind a long queue is not repeated every tick.
                Volatile.Write(ref s.LastSent, Stopwatch.GetTimestamp());
            }
        }
    }

    private async Task ResyncLoopAsync(Session s)
    {
        var ct = s.Cancel.Token;
        long region = 0;
        var buffer = new byte[Bitmap.RegionSize];
        while (!ct.IsCancellationRequested)
        {
            long dirty = NextToResync(region);
            if (dirty < 0 && s.FirstPass)
            {
                // The first sweep is over: from now on writes are mirrored, so the bitmap only shrinks and the
                // next sweep (what was written meanwhile) converges however fast the writer is.
                lock (_gate) s.FirstPass = false;
                region = 0;
                continue;
            }
            if (dirty < 0)
            {
                // Wait for the resync frames in flight, then see whether anything is left.
                for (int i = 0; i < _options.ResyncWindow; i++) await s.Window.WaitAsync(ct).ConfigureAwait(false);
                s.Window.Release(_options.ResyncWindow);
                if (NextToResync(0) < 0)
                {
                    var generations = _volume.Generations;
                    if (SyncedGeneration != generations.Current || _state != ReplicaState.InSync)
                    {
                        var ack = Mirror(OutFrame.Gens(generations));
                        if (ack is null || !await ack.WaitAsync(ct).ConfigureAwait(false)) return;
                        _volume.SetSynced(this, generations.Current);
                        if (NextToResync(0) < 0 && _state == ReplicaState.Syncing)
                        {
                            _state = ReplicaState.InSync;
                            Log.InSync(_logger, _volume.Name, Peer, BytesResynced);
                        }
                    }
                    await _wake.WaitAsync(TimeSpan.FromMilliseconds(250), ct).ConfigureAwait(false);
                }
                region = 0;
                continue;
            }
            if (_state == ReplicaState.InSync) _state = ReplicaState.Syncing;
            await s.Window.WaitAsync(ct).ConfigureAwait(false);
            await Budget.WaitAsync(ct).ConfigureAwait(false);
            var throttle = _volume.Service.Hooks.ResyncPause;
            if (throttle > TimeSpan.Zero) await Task.Delay(throttle, ct).ConfigureAwait(false);
            var (offset, length) = Bitmap.RegionRange(dirty);
            bool sent = false;
            using (await _volume.Locks.LockAsync(offset, length).ConfigureAwait(false))
            {
                bool covered;
                lock (_gate) covered = !Bitmap.IsDirty(dirty) || (_inflight.TryGetValue(dirty, out var e) && e.Ours);
                if (!covered)
                {
                    // A hole (asked under the region's lock, so no write can land meanwhile) is not read at all: most
                    // of a VM's disk is holes, and reading them costs a zero-filled copy and a scan per region. This
                    // trusts SEEK_DATA to see data still in the page cache, as ext4, XFS, btrfs and tmpfs do (and as
                    // the NBD export's block status, which nbdcopy and qemu-img rely on, already does).
                    var extents = await _volume.Local.GetExtentsAsync(offset, length, ct).ConfigureAwait(false);
                    bool hole = extents.Count == 1 && extents[0].IsZero;
                    if (!hole) await _volume.Local.ReadAsync(offset, buffer.AsMemory(0, length), ct).ConfigureAwait(false);
                    var span = buffer.AsSpan(0, length);
                    var frame = hole || span.IndexOfAnyExcept((byte)0) < 0
                        ? OutFrame.Zero(offset, length, fua: false, Bitmap.RegionSize)
                        : OutFrame.Write(offset, span.ToArray(), fua: false, Bitmap.RegionSize);
                    frame.Resync = true;
                    lock (_gate)
                    {
                        if (!ReferenceEquals(_session, s) || !s.Live) return;
                        EnqueueUnlocked(s, frame);
                    }
                    sent = true;
                    Interlocked.Add(ref _bytesResynced, length);
                }
            }
            if (!sent) s.Window.Release();
            region = dirty + 1;
        }
    }

    /// <summary>The next dirty region that no acknowledgement in flight will clean, or -1.</summary>
    private long NextToResync(long from)
    {
        lock (_gate)
        {
            for (long r = Bitmap.NextDirty(from); r >= 0; r = Bitmap.NextDirty(r + 1))
                if (!(_inflight.TryGetValue(r, out var e) && e.Ours)) return r;
            return -1;
        }
    }

    /// <summary>Stops the link: its session fails as Disconnected and its loop is awaited.</summary>
    public async ValueTask DisposeAsync()
    {
        await _stopping.CancelAsync().ConfigureAwait(false);
        Session? s;
        lock (_gate) s = _session;
        if (s is not null) Fail(s, ReplicaState.Disconnected);
        try { await _loop.ConfigureAwait(false); }
        catch (OperationCanceledException) { }
        _state = ReplicaState.Disconnected;
    }

    /// <summary>Below this much to copy, a session mirrors writes from its start.</summary>
    private const long FirstPassThreshold = 8L * 1024 * 1024;

    private sealed class Inflight
    {
        public int Count;
        public bool Ours;
    }

    private sealed class Session(PeerConnection connection, CancellationTokenSource cancel, int window)
    {
        public PeerConnection Connection { get; } = connection;
        public CancellationTokenSource Cancel { get; } = cancel;
        public Channel<OutFrame> Outgoing { get; } = Channel.CreateUnbounded<OutFrame>(new UnboundedChannelOptions { SingleReader = true });
        public Dictionary<ulong, OutFrame> Pending { get; } = [];
        public SemaphoreSlim Window { get; } = new(window, window);
        public long PendingBytes;

        /// <summary>
        /// The session's first sweep over a bitmap with something to copy: writes only mark their regions
        /// (the sweep or the next one sends them once), instead of being mirrored and queued behind the
        /// copy. Sending them then would cost a round trip behind up to a window of copy data per write,
        /// and twice the bytes for a region still to be copied (QEMU's background mirror makes the same
        /// choice; the second sweep mirrors, as DRBD does, so the copy always ends).
        /// </summary>
        public bool FirstPass;
        public ulong Sequence;
        /// <summary>The sequence of the oldest frame in <see cref="Pending"/> (acknowledgements come in order, so this moves forward).</summary>
        public ulong OldestPending;
        /// <summary>Bytes of frames acknowledged, and their rate over the last sampling interval (or longer, when acks
        /// paused: then lower, which only makes a lag limit stricter).</summary>
        public long AckedBytes, AckRateSampledBytes;
        public long AckRateSampledAt = Stopwatch.GetTimestamp();
        public double AckBytesPerSecond;
        public long LastSent = Stopwatch.GetTimestamp();
        public long LastReceived = Stopwatch.GetTimestamp();
        public bool Live;
    }
}
