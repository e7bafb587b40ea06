namespace Roam.Peers.Trust;

public enum TrustStoreError
{
    InvalidName,
    InvalidAddress,
    InvalidFingerprint,
    DuplicateName,
    DuplicateFingerprint,
    /// <summary>peers.json exists but cannot be read; nothing is trusted until it is fixed.</summary>
    Corrupt,
}

/// <summary>A refused trust-store change or an unreadable peers.json; callers map <see cref="Error"/>, not the message.</summary>
public sealed class TrustStoreException(TrustStoreError error, string message, Exception? inner = null) : Exception(message, inner)
{
    public TrustStoreError Error { get; } = error;
}
