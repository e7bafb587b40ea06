namespace Roam.Storage.Volumes;

/// <summary>Expected outcomes of volume management, each with a message a person can act on.</summary>
public enum VolumeError
{
    InvalidName,
    InvalidSize,
    NotFound,
    AlreadyExists,
    InUse,
    Shrink,
    NoSpace,
    DataDirLocked,
}

public sealed class VolumeException(VolumeError error, string message) : Exception(message)
{
    public VolumeError Error { get; } = error;
}
