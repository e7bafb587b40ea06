using System.Diagnostics;

namespace Roam.Daemon.Migration;

/// <summary>
/// The rate of the bytes a migration puts on the link (memory stream and disk mirror, as sent by this roamd), over the
/// last second or so: what the link carries while both fill it.
/// </summary>
internal sealed class LinkRate
{
    private readonly Queue<(long At, long Bytes)> _samples = new();

    /// <summary>Adds the byte count sent so far; returns the rate over the samples of the last ~second (0 at first).</summary>
    public long Update(long bytesSoFar)
    {
        long now = Stopwatch.GetTimestamp();
        _samples.Enqueue((now, bytesSoFar));
        while (_samples.Count > 2 && Stopwatch.GetElapsedTime(_samples.Peek().At, now) > TimeSpan.FromSeconds(1.2)) _samples.Dequeue();
        var (at, bytes) = _samples.Peek();
        double seconds = Stopwatch.GetElapsedTime(at, now).TotalSeconds;
        return seconds < 0.1 ? 0 : (long)((bytesSoFar - bytes) / seconds);
    }
}
