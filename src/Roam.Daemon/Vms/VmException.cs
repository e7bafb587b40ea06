namespace Roam.Daemon.Vms;

/// <summary>Why roamd refuses or fails a request about a VM or its migration (mapped to HTTP in Api/ErrorHandling).</summary>
internal enum VmError
{
    /// <summary>The request itself is wrong: a bad name, size, limit or missing argument.</summary>
    InvalidRequest,
    /// <summary>No VM of that name is here.</summary>
    NotFound,
    /// <summary>No trusted peer of that name.</summary>
    UnknownPeer,
    /// <summary>No migration of that VM is known here.</summary>
    NoMigration,
    /// <summary>A VM of that name, or one on that volume, exists already.</summary>
    AlreadyExists,
    /// <summary>The VM's state (or its volume's role) does not allow it now: running, stopped, a replica, a stray QEMU.</summary>
    WrongState,
    /// <summary>A migration of that VM runs already.</summary>
    AlreadyMigrating,
    /// <summary>The destination cannot take the VM (space, memory, name, files), or its files cannot be sent.</summary>
    DestinationRefused,
    /// <summary>The peer does not answer (unreachable, timed out).</summary>
    PeerUnavailable,
    /// <summary>QEMU failed to start.</summary>
    QemuFailed,
}

/// <summary>A VM request refused or failed, with its <see cref="VmError"/> reason and the one line a client shows.</summary>
internal sealed class VmException(VmError error, string message, Exception? inner = null) : Exception(message, inner)
{
    public VmError Error { get; } = error;
}
