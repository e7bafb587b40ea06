using Roam.Control;
using Roam.Storage.Devices;
using Roam.Storage.Transfer;
using Roam.Storage.Volumes;

namespace Roam.Daemon.Jobs;

internal sealed partial class TransferService
{
    /// <summary>
    /// Starts writing volume <paramref name="name"/> to an image file. The image is written beside
    /// the target under a temporary name and renamed over it only when complete and synced, so a
    /// failed or cancelled export leaves any earlier file untouched.
    /// </summary>
    public Job StartExport(string name, ExportRequest request)
    {
        store.Get(name);
        var path = RequireAbsolutePath(request.Path);
        if (Directory.Exists(path)) throw new JobException(JobError.InvalidRequest, $"{path} is a directory; give the image file's path");
        var dir = Path.GetDirectoryName(path)!;
        if (!Directory.Exists(dir)) throw new JobException(JobError.InvalidRequest, $"directory {dir} does not exist");
        if (File.Exists(path) && !request.Force)
            throw new JobException(JobError.TargetExists, $"{path} already exists; add --force to overwrite it");
        var format = ImageFormats.Parse(request.Format) ?? ImageFormats.ForOutput(path);
        var temp = Path.Combine(dir, $".{Path.GetFileName(path)}.roam-{Guid.NewGuid():N}.tmp");

        var lease = store.Open(name);
        try
        {
            long size = lease.Info.Size;
            return jobs.Start("export", name, path, format, size, async (job, ct) =>
            {
                try
                {
                    if (format == ImageFormats.Raw) await ExportRawAsync(job, lease, temp, ct).ConfigureAwait(false);
                    else await ExportWithQemuImgAsync(job, name, format, temp, ct).ConfigureAwait(false);
                    Commit(temp, path, request.Force);
                    return SparseFiles.AllocatedBytes(path);
                }
                finally { lease.Dispose(); }
            }, _ =>
            {
                File.Delete(temp);
                return Task.CompletedTask;
            });
        }
        catch
        {
            lease.Dispose();
            throw;
        }
    }

    private static async Task ExportRawAsync(Job job, VolumeLease lease, string temp, CancellationToken cancellationToken)
    {
        long size = lease.Info.Size;
        SparseFiles.CreateSparse(temp, size);
        using var destination = new FileBlockDevice(temp, size, readOnly: false);
        await SparseCopy.CopyAsync(lease.Device, destination, size, job.Report, cancellationToken).ConfigureAwait(false);
    }

    private async Task ExportWithQemuImgAsync(Job job, string name, string format, string temp, CancellationToken cancellationToken)
    {
        await qemuImg.ConvertAsync(["-f", "raw", "-O", format, nbd.UnixUri(name), temp],
            percent => job.Report((long)(job.BytesTotal * percent / 100)), cancellationToken).ConfigureAwait(false);
        SparseFiles.Sync(temp);
    }

    private static void Commit(string temp, string path, bool overwrite)
    {
        try { File.Move(temp, path, overwrite); }
        catch (IOException) when (!overwrite && File.Exists(path))
        {
            throw new IOException($"{path} appeared while exporting; not overwriting it (add --force to overwrite)");
        }
        SparseFiles.SyncDirectory(Path.GetDirectoryName(path)!);
    }
}
