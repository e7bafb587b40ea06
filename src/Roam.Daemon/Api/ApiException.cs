namespace Roam.Daemon.Api;

/// <summary>A request the API refuses, with the HTTP status and the one-line reason the client shows.</summary>
internal sealed class ApiException(int statusCode, string message) : Exception(message)
{
    public const int BadRequest = 400;
    public const int NotFound = 404;
    public const int Conflict = 409;
    public const int Internal = 500;
    public const int Unavailable = 503;

    public int StatusCode { get; } = statusCode;
}
