using Microsoft.Extensions.Logging;
using Roam.Control;
using Roam.Storage.Devices;
using Roam.Storage.Transfer;
using Roam.Storage.Volumes;

namespace Roam.Daemon.Jobs;

internal sealed partial class TransferService
{
    /// <summary>Creates volume <paramref name="name"/> sized for the image and starts copying the image into it.</summary>
    public async Task<Job> StartImportAsync(string name, ImportRequest request, CancellationToken cancellationToken)
    {
        VolumeName.Validate(name);
        if (store.TryGet(name, out _)) throw new VolumeException(VolumeError.AlreadyExists, $"volume '{name}' already exists; import creates a new volume");
        var path = RequireAbsolutePath(request.Path);
        if (Directory.Exists(path)) throw new JobException(JobError.NoSuchFile, $"{path} is a directory, not an image file");
        if (!File.Exists(path)) throw new JobException(JobError.NoSuchFile, $"no such file: {path}");
        string format;
        long fileLength;
        try
        {
            format = ImageFormats.Parse(request.Format) ?? ImageFormats.Detect(path);
            fileLength = new FileInfo(path).Length;
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            throw new JobException(JobError.BadImage, $"cannot read {path}: {ex.Message}");
        }
        long virtualSize = format == ImageFormats.Raw ? fileLength : await qemuImg.VirtualSizeAsync(path, format, cancellationToken).ConfigureAwait(false);
        if (virtualSize == 0) throw new JobException(JobError.BadImage, $"{path} is empty; there is nothing to import");

        store.Create(name, RoundUpToSector(virtualSize));
        try
        {
            return jobs.Start("import", name, path, format, virtualSize,
                (job, ct) => format == ImageFormats.Raw ? ImportRawAsync(job, name, path, fileLength, ct) : ImportWithQemuImgAsync(job, name, path, format, ct),
                job => RemoveVolumeAsync(job, name));
        }
        catch
        {
            store.Delete(name);
            throw;
        }
    }

    private async Task<long> ImportRawAsync(Job job, string name, string path, long length, CancellationToken cancellationToken)
    {
        using (var lease = store.Open(name))
        using (var source = new FileBlockDevice(path, length, readOnly: true))
        {
            await SparseCopy.CopyAsync(source, lease.Device, length, job.Report, cancellationToken).ConfigureAwait(false);
        }
        return store.Status(name).AllocatedBytes;
    }

    private async Task<long> ImportWithQemuImgAsync(Job job, string name, string path, string format, CancellationToken cancellationToken)
    {
        // The lease keeps the volume from being deleted before qemu-img has connected.
        using (store.Open(name))
        {
            // --target-is-zero: the volume was just created, so qemu-img need not zero it first.
            await qemuImg.ConvertAsync(["-n", "--target-is-zero", "-f", format, "-O", "raw", path, nbd.UnixUri(name)],
                percent => job.Report((long)(job.BytesTotal * percent / 100)), cancellationToken).ConfigureAwait(false);
        }
        return store.Status(name).AllocatedBytes;
    }

    /// <summary>Deletes the half-made volume of a failed import, waiting for NBD clients (a killed qemu-img) to let go.</summary>
    private async Task RemoveVolumeAsync(Job job, string name)
    {
        for (int attempt = 0; ; attempt++)
        {
            try
            {
                store.Delete(name);
                Log.JobRemovedVolume(logger, job.Id, name);
                return;
            }
            catch (VolumeException ex) when (ex.Error == VolumeError.NotFound) { return; }
            catch (VolumeException ex) when (ex.Error == VolumeError.InUse && attempt < 100)
            {
                await Task.Delay(50).ConfigureAwait(false);
            }
        }
    }
}
