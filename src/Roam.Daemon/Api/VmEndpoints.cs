using Roam.Control;
using Roam.Daemon.Migration;
using Roam.Daemon.Vms;

namespace Roam.Daemon.Api;

/// <summary>/v1/vms: VMs run by this roamd (QEMU on the volume's NBD export), and their live migration ("vm-migrate" jobs).</summary>
internal static class VmEndpoints
{
    public static void MapVmEndpoints(this IEndpointRouteBuilder app)
    {
        var vms = app.MapGroup("/v1/vms");
        vms.MapGet("/", (VmService service) => service.List());
        vms.MapPost("/", (CreateVmRequest request, VmService service) =>
        {
            var view = service.Create(request);
            return TypedResults.Created($"/v1/vms/{view.Name}", view);
        });
        vms.MapGet("/{name}", (string name, VmService service) => service.View(service.Get(name)));
        vms.MapDelete("/{name}", async (string name, VmService service) =>
        {
            await service.DeleteAsync(name).ConfigureAwait(false);
            return TypedResults.NoContent();
        });
        vms.MapPost("/{name}/start", (string name, VmService service, CancellationToken ct) => service.StartAsync(name, ct));
        vms.MapPost("/{name}/stop", (string name, StopVmRequest? request, VmService service) =>
        {
            double seconds = request?.TimeoutSeconds ?? 10;
            if (seconds is < 0 or > 3600) throw new ApiException(ApiException.BadRequest, "the stop timeout must be between 0 and 3600 s");
            return service.StopAsync(name, TimeSpan.FromSeconds(seconds), kill: false);
        });
        vms.MapPost("/{name}/kill", (string name, VmService service) => service.StopAsync(name, TimeSpan.Zero, kill: true));
        vms.MapPost("/{name}/migrate", async (string name, MigrateVmRequest request, VmService service, CancellationToken ct) =>
        {
            var job = await service.StartMigrationAsync(name, request.To,
                MigrationEndpoints.ParseBandwidth(request.Bandwidth) ?? MigrationBandwidth.Unlimited, request.DowntimeLimitMs, ct).ConfigureAwait(false);
            return TypedResults.Accepted($"/v1/jobs/{job.Id}", job.ToView());
        });
        vms.MapGet("/{name}/migration", (string name, VmService service) => service.GetMigration(name));
    }
}
