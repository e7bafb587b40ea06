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

// Live mirroring: frames queued in order, acknowledgements, and a session's failure.
internal sealed partial class PeerLink
{
    /// <summary>
    /// Sends a write/zero/flush to the replica if it is attached, else marks its regions. Call under the
    /// region lock. Returns the acknowledgement to wait for, or null when nothing was sent.
    /// </summary>
    public Task<bool>? Mirror(OutFrame frame)
    {
        lock (_gate)
        {
            var s = _session;
            if (s is not { Live: true }
                || (Mode == ReplicaMode.Async && frame.Bytes > 0 && s.PendingBytes + frame.Bytes > _options.AsyncQueueBytes)
                // A first pass mirrors nothing (the writes it sees are only marked), so there is nothing for a flush to
                // make durable there; sent, it would wait behind the copy on a busy link and stall the guest.
                || (s.FirstPass && (frame.FirstRegion >= 0 || frame.Type == PeerFrameType.Flush)))
            {
                if (frame.FirstRegion >= 0) MarkUnsentUnlocked(frame.FirstRegion, frame.LastRegion);
                if (s is { Live: true }) Wake();
                return null;
            }
            EnqueueUnlocked(s, frame);
            return frame.Acked.Task;
        }
    }

    /// <summary>The replica did not answer in time: its regions stay dirty, the connection is dropped and retried.</summary>
    public void TimedOut(TimeSpan after)
    {
        Session? s;
        lock (_gate) s = _session;
        if (s is null || !s.Live) return;
        Log.SyncTimeout(_logger, _volume.Name, Peer, after.TotalMilliseconds);
        Fail(s, ReplicaState.OutOfSync);
    }

    private void EnqueueUnlocked(Session s, OutFrame frame)
    {
        if (frame.FirstRegion >= 0)
        {
            for (long r = frame.FirstRegion; r <= frame.LastRegion; r++)
            {
                if (!_inflight.TryGetValue(r, out var entry))
                {
                    entry = new Inflight { Ours = frame.Resync || !Bitmap.IsDirty(r) };
                    _inflight[r] = entry;
                }
                else if (frame.Resync) entry.Ours = true;
                entry.Count++;
            }
            Bitmap.MarkDirty(frame.FirstRegion * Bitmap.RegionSize, (frame.LastRegion - frame.FirstRegion + 1) * (long)Bitmap.RegionSize);
        }
        frame.Sequence = ++s.Sequence;
        frame.EnqueuedAt = Stopwatch.GetTimestamp();
        if (s.Pending.Count == 0) s.OldestPending = frame.Sequence;
        s.Pending[frame.Sequence] = frame;
        s.PendingBytes += frame.Bytes;
        s.Outgoing.Writer.TryWrite(frame);
    }

    private void MarkUnsentUnlocked(long first, long last)
    {
        Bitmap.MarkDirty(first * Bitmap.RegionSize, (last - first + 1) * (long)Bitmap.RegionSize);
        for (long r = first; r <= last; r++)
            if (_inflight.TryGetValue(r, out var entry)) entry.Ours = false;
    }

    private void Wake()
    {
        if (_wake.CurrentCount == 0) _wake.Release();
    }

    private void OnAck(Session s, ulong sequence)
    {
        OutFrame? frame;
        lock (_gate)
        {
            if (!s.Pending.Remove(sequence, out frame)) return;
            s.PendingBytes -= frame.Bytes;
            s.AckedBytes += frame.Bytes;
            long now = Stopwatch.GetTimestamp();
            if (now - s.AckRateSampledAt >= AckRateInterval)
            {
                s.AckBytesPerSecond = (s.AckedBytes - s.AckRateSampledBytes) * (double)Stopwatch.Frequency / (now - s.AckRateSampledAt);
                (s.AckRateSampledAt, s.AckRateSampledBytes) = (now, s.AckedBytes);
            }
            if (sequence == s.OldestPending)
                while (s.Pending.Count > 0 && s.OldestPending < s.Sequence && !s.Pending.ContainsKey(s.OldestPending)) s.OldestPending++;
            if (frame.FirstRegion >= 0 && ReferenceEquals(_session, s) && s.Live)
            {
                for (long r = frame.FirstRegion; r <= frame.LastRegion; r++)
                {
                    if (!_inflight.TryGetValue(r, out var entry)) continue;
                    if (--entry.Count > 0) continue;
                    _inflight.Remove(r);
                    if (entry.Ours) Bitmap.MarkClean(r);
                }
            }
        }
        if (frame.Resync) s.Window.Release();
        frame.Acked.TrySetResult(true);
    }

    /// <summary>Ends a session: everything unacknowledged stays dirty in the bitmap.</summary>
    private void Fail(Session s, ReplicaState state)
    {
        List<OutFrame> pending;
        lock (_gate)
        {
            if (!s.Live) return;
            s.Live = false;
            if (ReferenceEquals(_session, s)) _session = null;
            _inflight.Clear();
            pending = [.. s.Pending.Values];
            s.Pending.Clear();
            s.PendingBytes = 0;
            if (_state != ReplicaState.SplitBrain && _state != ReplicaState.Outdated) _state = state;
        }
        s.Outgoing.Writer.TryComplete();
        s.Cancel.Cancel();
        // Changes the replica may not have got: the data diverges from its generation from here on.
        if (pending.Any(f => f.FirstRegion >= 0)) _volume.EnsureGeneration();
        foreach (var f in pending) f.Acked.TrySetResult(false);
        _ = Task.Run(async () =>
        {
            try { await s.Connection.DisposeAsync().ConfigureAwait(false); }
            catch (Exception ex) when (PeerConnection.IsTeardownNoise(ex)) { }
        });
    }
}
