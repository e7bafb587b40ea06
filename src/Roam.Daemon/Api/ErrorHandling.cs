using System.Text.Json;
using Microsoft.AspNetCore.Diagnostics;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;
using Roam.Control;
using Roam.Daemon.Jobs;
using Roam.Daemon.Vms;
using Roam.Peers.Transport;
using Roam.Peers.Trust;
using Roam.Replication;
using Roam.Storage.Volumes;

namespace Roam.Daemon.Api;

/// <summary>
/// The API's single door out for failures: every exception becomes {"error": "one line"} with a
/// status a client can branch on. Expected refusals are not logged as errors; anything unexpected is
/// a 500 whose details go to the log, never to the client.
/// </summary>
internal static class ErrorHandling
{
    public static IApplicationBuilder UseControlApiErrors(this IApplicationBuilder app)
    {
        var logger = app.ApplicationServices.GetRequiredService<ILoggerFactory>().CreateLogger("Roam.Daemon.Api");
        return app.Use(async (context, next) =>
        {
            try
            {
                await next(context).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (context.RequestAborted.IsCancellationRequested)
            {
                // The client went away; nobody is left to answer.
            }
            catch (Exception ex) when (!context.Response.HasStarted)
            {
                var (status, message) = Map(ex);
                if (status >= 500 && ex is not (ApiException or VmException or JobException or Network.NetworkException)) Log.ApiFailed(logger, context.Request.Method, context.Request.Path, ex);
                context.Response.Clear();
                await WriteAsync(context, status, message).ConfigureAwait(false);
            }
        });
    }

    public static Task WriteAsync(HttpContext context, int status, string message)
    {
        context.Response.StatusCode = status;
        context.Response.ContentType = "application/json";
        return context.Response.WriteAsync(JsonSerializer.Serialize(new ErrorResponse(message.ReplaceLineEndings(" ").Trim()), ControlJsonContext.Default.ErrorResponse));
    }

    /// <summary>Gives the empty answers of routing (no endpoint, wrong method, not JSON) a reason.</summary>
    public static Task WriteStatusAsync(StatusCodeContext context)
    {
        var http = context.HttpContext;
        var request = $"{http.Request.Method} {http.Request.Path}";
        return WriteAsync(http, http.Response.StatusCode, http.Response.StatusCode switch
        {
            StatusCodes.Status404NotFound => $"no such API endpoint: {request}",
            StatusCodes.Status405MethodNotAllowed => $"method not allowed: {request}",
            StatusCodes.Status415UnsupportedMediaType => "the request body must be JSON (Content-Type: application/json)",
            int code => $"HTTP {code} for {request}",
        });
    }

    public static (int Status, string Message) Map(Exception ex) => ex switch
    {
        ApiException a => (a.StatusCode, a.Message),
        VmException v => (VmStatus(v.Error), v.Message),
        JobException j => (JobStatus(j.Error), j.Message),
        Network.NetworkException n => (NetworkStatus(n.Error), n.Message),
        VolumeException v => (v.Error switch
        {
            VolumeError.NotFound => StatusCodes.Status404NotFound,
            VolumeError.AlreadyExists or VolumeError.InUse => StatusCodes.Status409Conflict,
            _ => StatusCodes.Status400BadRequest,
        }, v.Message),
        TrustStoreException t => (t.Error switch
        {
            TrustStoreError.DuplicateName or TrustStoreError.DuplicateFingerprint => StatusCodes.Status409Conflict,
            TrustStoreError.Corrupt => StatusCodes.Status500InternalServerError,
            _ => StatusCodes.Status400BadRequest,
        }, t.Message),
        ReplicationException r => (ReplicationStatus(r.Error), r.Message),
        PeerConnectException p => (p.Failure == PeerConnectFailure.UnknownPeer ? StatusCodes.Status404NotFound : StatusCodes.Status409Conflict,
            p.Message),
        BadHttpRequestException b => (b.StatusCode, BadRequestMessage(b)),
        _ => (StatusCodes.Status500InternalServerError, $"internal error in roamd: {ex.Message} (details are in roamd's log)"),
    };

    /// <summary>
    /// The replication engine's reasons as HTTP statuses, all in this one place. Something named that is not there
    /// (a peer, a replica, a migration) is a 404: the endpoints check the usual cases first, with a hint at the
    /// command to run, and this is the engine's own word on it. Every other reason refuses because of the volume's
    /// or the peer's state now (not a primary, in doubt, handing over, split, the peer refused...): 409.
    /// </summary>
    internal static int ReplicationStatus(ReplicationError error) => error switch
    {
        ReplicationError.UnknownPeer or ReplicationError.NoSuchReplica or ReplicationError.NoMigration => StatusCodes.Status404NotFound,
        _ => StatusCodes.Status409Conflict,
    };

    /// <summary>The VM service's and the VM migration's reasons as HTTP statuses.</summary>
    internal static int VmStatus(VmError error) => error switch
    {
        VmError.InvalidRequest => StatusCodes.Status400BadRequest,
        VmError.NotFound or VmError.UnknownPeer or VmError.NoMigration => StatusCodes.Status404NotFound,
        VmError.AlreadyExists or VmError.WrongState or VmError.AlreadyMigrating or VmError.DestinationRefused => StatusCodes.Status409Conflict,
        VmError.PeerUnavailable => StatusCodes.Status503ServiceUnavailable,
        VmError.QemuFailed => StatusCodes.Status500InternalServerError,
        _ => throw new ArgumentOutOfRangeException(nameof(error), error, "a VmError without an HTTP status"),
    };

    /// <summary>The VM networks' reasons as HTTP statuses.</summary>
    internal static int NetworkStatus(Network.NetworkError error) => error switch
    {
        Network.NetworkError.InvalidRequest => StatusCodes.Status400BadRequest,
        Network.NetworkError.UnknownBridge => StatusCodes.Status404NotFound,
        Network.NetworkError.SubnetOverlap => StatusCodes.Status409Conflict,
        Network.NetworkError.NeedsRoot => StatusCodes.Status403Forbidden,
        Network.NetworkError.ToolFailed => StatusCodes.Status500InternalServerError,
        _ => throw new ArgumentOutOfRangeException(nameof(error), error, "a NetworkError without an HTTP status"),
    };

    /// <summary>The job manager's and the transfers' reasons as HTTP statuses.</summary>
    internal static int JobStatus(JobError error) => error switch
    {
        JobError.InvalidRequest or JobError.NoSuchFile or JobError.BadImage => StatusCodes.Status400BadRequest,
        JobError.NotFound => StatusCodes.Status404NotFound,
        JobError.TargetExists => StatusCodes.Status409Conflict,
        JobError.ShuttingDown => StatusCodes.Status503ServiceUnavailable,
        JobError.ToolFailed => StatusCodes.Status500InternalServerError,
        _ => throw new ArgumentOutOfRangeException(nameof(error), error, "a JobError without an HTTP status"),
    };

    private static string BadRequestMessage(BadHttpRequestException ex) =>
        ex.InnerException is JsonException json ? $"invalid request body: {json.Message}"
        : ex.Message.Contains("body", StringComparison.OrdinalIgnoreCase) ? "invalid or missing JSON request body"
        : ex.Message;
}
