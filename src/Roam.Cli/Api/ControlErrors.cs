namespace Roam.Cli.Api;

/// <summary>roamd answered with an error: the request was refused or failed. Exit code 1.</summary>
internal sealed class ControlApiException(int statusCode, string message) : Exception(message)
{
    public int StatusCode { get; } = statusCode;
}

/// <summary>roamd could not be reached (not running, wrong socket, no permission). Exit code 3.</summary>
internal sealed class DaemonUnreachableException(string message) : Exception(message);
