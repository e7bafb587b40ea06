using Microsoft.Extensions.Logging;

namespace Roam.Daemon;

internal static partial class Log
{
    [LoggerMessage(5130, LogLevel.Information, "VM {Vm}: tap {Tap} on bridge {Bridge}")]
    public static partial void VmTapAttached(ILogger logger, string vm, string tap, string bridge);

    [LoggerMessage(5131, LogLevel.Information, "VM {Vm}: tap {Tap} removed")]
    public static partial void VmTapRemoved(ILogger logger, string vm, string tap);

    [LoggerMessage(5132, LogLevel.Warning, "VM {Vm}: its network could not be cleaned up: {Error}")]
    public static partial void VmNetworkCleanupFailed(ILogger logger, string vm, string error);

    [LoggerMessage(5133, LogLevel.Information, "VM {Vm} arrived on another network ({From} there, {To} here): its link went down and up so that the guest takes a new address")]
    public static partial void VmLinkFlapped(ILogger logger, string vm, string from, string to);
}
