namespace Roam.Replication.Source;

/// <summary>
/// A link's bandwidth limit (a token bucket in bytes). Every frame put on the wire is charged, and may
/// drive the balance below zero: mirrored writes never wait (the guest would), so the background
/// resync, which waits for a non-negative balance before reading its next region, gets what is left
/// (DRBD's resync-rate idea). Zero means no limit. The bucket holds at most a tenth of a second's
/// worth, so an idle link does not bank a burst.
/// </summary>
internal sealed class WireBudget
{
    private readonly Lock _gate = new();
    private readonly TimeProvider _time;
    private long _bytesPerSecond;
    private double _balance;
    private long _refilledAt;

    public WireBudget(long bytesPerSecond, TimeProvider? time = null)
    {
        _time = time ?? TimeProvider.System;
        _bytesPerSecond = Math.Max(0, bytesPerSecond);
        _refilledAt = _time.GetTimestamp();
    }

    public long BytesPerSecond
    {
        get { lock (_gate) return _bytesPerSecond; }
        set { lock (_gate) { _bytesPerSecond = Math.Max(0, value); _balance = Math.Min(_balance, Burst); } }
    }

    private double Burst => _bytesPerSecond / 10.0;

    public void Charge(long bytes)
    {
        lock (_gate)
        {
            if (_bytesPerSecond == 0) return;
            Refill();
            // At most a second's worth of debt: a burst of guest writes delays the copy by a second, not by
            // however long the burst lasted.
            _balance = Math.Max(_balance - bytes, -_bytesPerSecond);
        }
    }

    /// <summary>Waits until the balance is not negative (at once without a limit).</summary>
    public async ValueTask WaitAsync(CancellationToken cancellationToken)
    {
        while (true)
        {
            TimeSpan wait;
            lock (_gate)
            {
                if (_bytesPerSecond == 0) return;
                Refill();
                if (_balance >= 0) return;
                wait = TimeSpan.FromSeconds(-_balance / _bytesPerSecond);
            }
            // The limit may change meanwhile; never sleep long without looking again.
            await Task.Delay(wait < TimeSpan.FromMilliseconds(1) ? TimeSpan.FromMilliseconds(1) : wait > TimeSpan.FromMilliseconds(200) ? TimeSpan.FromMilliseconds(200) : wait,
                _time, cancellationToken).ConfigureAwait(false);
        }
    }

    private void Refill()
    {
        long now = _time.GetTimestamp();
        _balance = Math.Min(Burst, _balance + _time.GetElapsedTime(_refilledAt, now).TotalSeconds * _bytesPerSecond);
        _refilledAt = now;
    }
}
