namespace Roam.Storage.Devices;

/// <summary>Why a block operation failed, in terms the protocol edges can map to their own codes.</summary>
public enum BlockDeviceError
{
    Io,
    NoSpace,
    NotSupported,
    ReadOnly,
    Shutdown,
}

/// <summary>A per-request failure: the request fails, the connection and the device stay usable.</summary>
public sealed class BlockDeviceException(BlockDeviceError error, string message, Exception? inner = null)
    : IOException(message, inner)
{
    public BlockDeviceError Error { get; } = error;

    /// <summary>Classifies an I/O exception by the errno .NET puts in HResult on Unix.</summary>
    public static BlockDeviceException From(IOException ex) => ex switch
    {
        BlockDeviceException b => b,
        _ when ex.HResult == NativeFile.ENOSPC || ex.HResult == 122 /* EDQUOT */ || ex.HResult == 27 /* EFBIG */ => new(BlockDeviceError.NoSpace, ex.Message, ex),
        _ => new(BlockDeviceError.Io, ex.Message, ex),
    };
}
