namespace Roam.Replication.Source;

/// <summary>
/// Decides per Write whether trying LZ4 is worth it: every write is tried while compression pays; after
/// a write that did not compress, the next 1, 2, 4 ... up to 64 are sent as they are before trying
/// again. Random or already compressed data (the common case for encrypted or media files) then costs
/// one attempt in 65, and compressible data is found again within 64 writes. One per link, used by its
/// single writer loop.
/// </summary>
internal sealed class CompressionGovernor
{
    private const int MaxBackoff = 64;
    private int _skip;
    private int _backoff;

    public bool ShouldTry()
    {
        if (_skip == 0) return true;
        _skip--;
        return false;
    }

    public void Record(bool paid)
    {
        if (paid) _backoff = 0;
        else _skip = _backoff = Math.Min(Math.Max(1, _backoff * 2), MaxBackoff);
    }
}
