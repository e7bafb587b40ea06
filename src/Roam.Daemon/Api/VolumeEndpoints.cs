using Roam.Control;
using Roam.Daemon.Hosting;
using Roam.Daemon.Jobs;
using Roam.Storage.Volumes;

namespace Roam.Daemon.Api;

/// <summary>/v1/volumes: the volume store, plus import and export jobs.</summary>
internal static class VolumeEndpoints
{
    public static void MapVolumeEndpoints(this IEndpointRouteBuilder app)
    {
        var volumes = app.MapGroup("/v1/volumes");

        volumes.MapGet("/", (VolumeStore store, NbdEndpoints nbd) =>
            (IReadOnlyList<VolumeView>)[.. store.List().Select(v => View(store, nbd, v.Name))]);

        volumes.MapPost("/", (CreateVolumeRequest request, VolumeStore store, NbdEndpoints nbd) =>
        {
            var name = request.Name ?? "";
            VolumeName.Validate(name);
            store.Create(name, ParseSize(request.Size));
            return TypedResults.Created($"/v1/volumes/{name}", View(store, nbd, name));
        });

        volumes.MapGet("/{name}", (string name, VolumeStore store, NbdEndpoints nbd) => View(store, nbd, name));

        volumes.MapPost("/{name}/resize", (string name, ResizeVolumeRequest request, VolumeStore store, NbdEndpoints nbd) =>
        {
            store.Resize(name, ParseSize(request.Size));
            return View(store, nbd, name);
        });

        volumes.MapDelete("/{name}", (string name, VolumeStore store) =>
        {
            store.Delete(name);
            return TypedResults.NoContent();
        });

        volumes.MapPost("/{name}/import", async (string name, ImportRequest request, TransferService transfers, CancellationToken ct) =>
        {
            var job = await transfers.StartImportAsync(name, request, ct).ConfigureAwait(false);
            return TypedResults.Accepted($"/v1/jobs/{job.Id}", job.ToView());
        });

        volumes.MapPost("/{name}/export", (string name, ExportRequest request, TransferService transfers) =>
        {
            var job = transfers.StartExport(name, request);
            return TypedResults.Accepted($"/v1/jobs/{job.Id}", job.ToView());
        });
    }

    public static VolumeView View(VolumeStore store, NbdEndpoints nbd, string name)
    {
        var s = store.Status(name);
        return new VolumeView(s.Name, s.Size, s.AllocatedBytes, s.OpenCount, s.Id, s.Created, nbd.UrisFor(s.Name));
    }

    private static long ParseSize(string? text)
    {
        if (string.IsNullOrWhiteSpace(text)) throw new VolumeException(VolumeError.InvalidSize, "a size is required (examples: 512, 64K, 10M, 10G, 2T)");
        if (!ByteSize.TryParse(text, out var bytes))
            throw new VolumeException(VolumeError.InvalidSize, $"'{text}' is not a size (examples: 512, 64K, 10M, 10G, 2T)");
        return bytes;
    }
}
