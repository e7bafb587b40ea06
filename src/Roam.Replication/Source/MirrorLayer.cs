using System.Runtime.CompilerServices;
using Roam.Peers.Protocol;
using Roam.Replication.Engine;
using Roam.Replication.Protocol;
using Roam.Storage.Devices;

namespace Roam.Replication.Source;

/// <summary>
/// The bottom of a replicated primary's stack, right above its file: each change is made locally, then queued in the
/// same order to every replica link under the region's lock (so a resync of that region can never overtake it), and
/// the sync replicas are waited for (at most SyncTimeout). Above it sit the activity log and the write fence
/// (<see cref="ReplicatedVolume.Device"/>). A replica that would be in sync at the current generation and is away
/// starts a new generation first.
/// </summary>
internal sealed class MirrorLayer(IBlockDevice local, ReplicatedVolume volume) : BlockDeviceLayer(local)
{
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))]
    public override async ValueTask WriteAsync(long offset, ReadOnlyMemory<byte> data, bool fua, CancellationToken cancellationToken)
    {
        if (data.IsEmpty) return;
        volume.EnsureGeneration();
        List<(PeerLink, Task<bool>, bool)>? waits = null;
        using (await volume.Locks.LockAsync(offset, data.Length).ConfigureAwait(false))
        {
            await Inner.WriteAsync(offset, data, fua, cancellationToken).ConfigureAwait(false);
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

    // Trim and zero both read back as zeros, so both cross as Zero frames (the activity log above cut them to size).
    public override ValueTask TrimAsync(long offset, long length, bool fua, CancellationToken cancellationToken) =>
        ZeroRangeAsync(offset, length, fua, mayDeallocate: true, fastOnly: false, trim: true, cancellationToken);

    public override ValueTask ZeroAsync(long offset, long length, bool mayDeallocate, bool fastOnly, bool fua, CancellationToken cancellationToken) =>
        ZeroRangeAsync(offset, length, fua, mayDeallocate, fastOnly, trim: false, cancellationToken);

    private async ValueTask ZeroRangeAsync(long offset, long length, bool fua, bool mayDeallocate, bool fastOnly, bool trim, CancellationToken cancellationToken)
    {
        if (length == 0) return;
        volume.EnsureGeneration();
        List<(PeerLink, Task<bool>, bool)>? waits = null;
        using (await volume.Locks.LockAsync(offset, length).ConfigureAwait(false))
        {
            if (trim) await Inner.TrimAsync(offset, length, fua, cancellationToken).ConfigureAwait(false);
            else await Inner.ZeroAsync(offset, length, mayDeallocate, fastOnly, fua, cancellationToken).ConfigureAwait(false);
            foreach (var link in volume.Links)
                Track(ref waits, link, link.Mirror(OutFrame.Zero(offset, length, fua, volume.Options.RegionSize)));
        }
        await WaitAsync(waits).ConfigureAwait(false);
    }

    public override async ValueTask FlushAsync(CancellationToken cancellationToken)
    {
        await Inner.FlushAsync(cancellationToken).ConfigureAwait(false);
        List<(PeerLink, Task<bool>, bool)>? waits = null;
        foreach (var link in volume.Links) Track(ref waits, link, link.Mirror(OutFrame.Flush()));
        await WaitAsync(waits).ConfigureAwait(false);
    }

    private static void Track(ref List<(PeerLink, Task<bool>, bool)>? waits, PeerLink link, Task<bool>? ack)
    {
        if (ack is null) return;
        if (link.Mode == ReplicaMode.Sync) (waits ??= []).Add((link, ack, true));
        else if (link.IsLagging) (waits ??= []).Add((link, ack, false));
    }

    /// <summary>Waits for the sync replicas; one that does not answer in time is marked OutOfSync and left behind. An
    /// asynchronous replica that lags (see <see cref="PeerLink.AsyncLagLimit"/>) is waited for as long, and left alone after.</summary>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))]
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
