using Roam.Control;
using Roam.Daemon.Jobs;

namespace Roam.Daemon.Api;

/// <summary>/v1/jobs: progress and cancellation of imports and exports.</summary>
internal static class JobEndpoints
{
    public static void MapJobEndpoints(this IEndpointRouteBuilder app)
    {
        var jobs = app.MapGroup("/v1/jobs");
        jobs.MapGet("/", (JobManager manager) => (IReadOnlyList<JobView>)[.. manager.List().Select(j => j.ToView())]);
        jobs.MapGet("/{id}", (string id, JobManager manager) => manager.Get(id).ToView());
        jobs.MapPost("/{id}/cancel", (string id, JobManager manager) => manager.Cancel(id).ToView());
    }
}
