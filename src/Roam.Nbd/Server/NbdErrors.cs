using Roam.Nbd.Protocol;
using Roam.Storage.Devices;

namespace Roam.Nbd.Server;

/// <summary>Storage failures to NBD error codes, in one place (nbdkit's nbd_errno).</summary>
internal static class NbdErrors
{
    public static NbdError From(BlockDeviceError error) => error switch
    {
        BlockDeviceError.NoSpace => NbdError.ENOSPC,
        BlockDeviceError.NotSupported => NbdError.ENOTSUP,
        BlockDeviceError.ReadOnly => NbdError.EPERM,
        BlockDeviceError.Shutdown => NbdError.ESHUTDOWN,
        _ => NbdError.EIO,
    };
}
