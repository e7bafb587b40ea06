using Roam.Peers.Protocol;
using Roam.Replication.Protocol;
using Roam.Storage.Devices;

namespace Roam.Replication.Source;

/// <summary>
/// A primary volume's device as NBD sees it: every change enters the activity log, is made locally,
/// then is sent in order to each attached replica; sync replicas are waited for (at most SyncTimeout).
/// Changes pass the volume's <see cref="WriteGate"/> first, so a hand-over can stop and drain them.
/// </summary>
internal sealed class ReplicatingDevice(ReplicatedVolume volume) : IBlockDevice
{
    private IBlockDevice Local => volume.Local;

    public long Size => Local.Size;

    public BlockDeviceCapabilities Capabilities => Local.Capabilities;

    public ValueTask ReadAsync(long offset, Memory<byte> destination, CancellationToken cancellationToken) =>
        Local.ReadAsync(offset, destination, cancellationToken);

    public ValueTask CacheAsync(long offset, long length, CancellationToken cancellationToken) => Local.CacheAsync(offset, length, cancellationToken);

    public ValueTask<IReadOnlyList<Extent>> GetExtentsAsync(long offset, long length, CancellationToken cancellationToken) =>
        Local.GetExtentsAsync(offset, length, cancellationToken);

    public async ValueTask WriteAsync(long offset, ReadOnlyMemory<byte> data, bool fua, CancellationToken cancellationToken)
    {
        if (data.IsEmpty) return;
        using var pass = await volume.Gate.EnterAsync(cancellationToken).ConfigureAwait(false);
        using var al = await volume.ActivityLog.EnterAsync(offset, data.Length).ConfigureAwait(false);
        volume.EnsureGeneration();
        List<(PeerLink, Task<bool>, bool)>? waits = null;
        using (await volume.Locks.LockAsync(offset, data.Length).ConfigureAwait(false))
        {
            await Local.WriteAsync(offset, data, fua, cancellationToken).ConfigureAwait(false);
            byte[]? copy = null;
            foreach (var link in volume.Links)
            {
                // One copy shared by all links: the caller's buffer is reused once this returns.
                copy ??= data.ToArray();
                for (int at = 0; at < copy.Length; at += PeerProtocol.MaxWriteDataLength)
                {
                    var chunk = copy.AsMemory(at, Math.Min(PeerProtocol.MaxWriteDataLength, copy.Length - at));
                    Track(ref waits, link, link.Mirror(OutFrame.Write(offset + at, chunk, fua, volume.Options.RegionSize)));
                }
            }
        }
        await WaitAsync(waits).ConfigureAwait(false);
    }

    public ValueTask TrimAsync(long offset, long length, bool fua, CancellationToken cancellationToken) =>
        ZeroRangeAsync(offset, length, fua, (o, l, ct) => Local.TrimAsync(o, l, fua, ct), cancellationToken);

    public ValueTask ZeroAsync(long offset, long length, bool mayDeallocate, bool fastOnly, bool fua, CancellationToken cancellationToken) =>
        ZeroRangeAsync(offset, length, fua, (o, l, ct) => Local.ZeroAsync(o, l, mayDeallocate, fastOnly, fua, ct), cancellationToken);

    /// <summary>Trim and zero both read back as zeros, so both cross as Zero frames, in activity-log sized pieces.</summary>
    private async ValueTask ZeroRangeAsync(long offset, long length, bool fua, Func<long, long, CancellationToken, ValueTask> local, CancellationToken cancellationToken)
    {
        using var pass = await volume.Gate.EnterAsync(cancellationToken).ConfigureAwait(false);
        long chunk = (long)volume.ActivityLog.ExtentSize * Math.Max(1, volume.ActivityLog.Capacity / 2 - 1);
        long end = offset + length;
        while (offset < end)
        {
            long piece = Math.Min(end - offset, chunk - offset % volume.ActivityLog.ExtentSize);
            using var al = await volume.ActivityLog.EnterAsync(offset, piece).ConfigureAwait(false);
            volume.EnsureGeneration();
            List<(PeerLink, Task<bool>, bool)>? waits = null;
            using (await volume.Locks.LockAsync(offset, piece).ConfigureAwait(false))
            {
                await local(offset, piece, cancellationToken).ConfigureAwait(false);
                foreach (var link in volume.Links)
                    Track(ref waits, link, link.Mirror(OutFrame.Zero(offset, piece, fua, volume.Options.RegionSize)));
            }
            await WaitAsync(waits).ConfigureAwait(false);
            offset += piece;
        }
    }

    public async ValueTask FlushAsync(CancellationToken cancellationToken)
    {
        await Local.FlushAsync(cancellationToken).ConfigureAwait(false);
        List<(PeerLink, Task<bool>, bool)>? waits = null;
        foreach (var link in volume.Links) Track(ref waits, link, link.Mirror(OutFrame.Flush()));
        await WaitAsync(waits).ConfigureAwait(false);
    }

    private static void Track(ref List<(PeerLink, Task<bool>, bool)>? waits, PeerLink link, Task<bool>? ack)
    {
        if (ack is null) return;
        if (link.Mode == Engine.ReplicaMode.Sync) (waits ??= []).Add((link, ack, true));
        else if (link.IsLagging) (waits ??= []).Add((link, ack, false));
    }

    /// <summary>Waits for the sync replicas; one that does not answer in time is marked OutOfSync and left behind. An
    /// asynchronous replica that lags (see <see cref="PeerLink.AsyncLagLimit"/>) is waited for as long, and left alone after.</summary>
    private async ValueTask WaitAsync(List<(PeerLink Link, Task<bool> Ack, bool Sync)>? waits)
    {
        if (waits is null) return;
        var timeout = volume.Options.SyncTimeout;
        var started = System.Diagnostics.Stopwatch.GetTimestamp();
        foreach (var (link, ack, sync) in waits)
        {
            var left = timeout - System.Diagnostics.Stopwatch.GetElapsedTime(started);
            if (left < TimeSpan.Zero) left = TimeSpan.Zero;
            try { await ack.WaitAsync(left).ConfigureAwait(false); }
            catch (TimeoutException) { if (sync) link.TimedOut(timeout); }
        }
    }
}
