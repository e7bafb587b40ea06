using Microsoft.Extensions.Logging;
using Roam.Daemon.Hosting;
using Roam.Storage.Volumes;

namespace Roam.Daemon.Jobs;

/// <summary>
/// Imports images into new volumes and exports volumes to image files, as jobs. Everything that can
/// be refused up front (bad name, missing file, existing output) is refused before a job starts, so
/// the client gets the reason as the HTTP answer; what fails later ends the job as "failed".
/// </summary>
internal sealed partial class TransferService(VolumeStore store, JobManager jobs, NbdEndpoints nbd, QemuImg qemuImg, ILogger<TransferService> logger)
{
    private const int SectorSize = 512;

    private static string RequireAbsolutePath(string? path)
    {
        if (string.IsNullOrWhiteSpace(path)) throw new JobException(JobError.InvalidRequest, "a file path is required");
        if (!Path.IsPathFullyQualified(path)) throw new JobException(JobError.InvalidRequest, $"path '{path}' must be absolute");
        return Path.GetFullPath(path);
    }

    private static long RoundUpToSector(long size) => (size + SectorSize - 1) / SectorSize * SectorSize;
}
