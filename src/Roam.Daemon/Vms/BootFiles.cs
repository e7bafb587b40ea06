using System.Collections.Concurrent;
using System.IO.Pipelines;
using System.Security.Cryptography;
using Roam.Storage.Volumes;

namespace Roam.Daemon.Vms;

/// <summary>A VM's kernel or initrd as the source describes it: its path there, size and SHA-256 (hex).</summary>
internal sealed record BootFileOffer(string Path, long Size, string Sha256);

/// <summary>
/// The kernel and initrd a VM boots from (-kernel/-initrd). QEMU reads them when it starts, the incoming QEMU of a
/// migration included, so a destination that lacks them could not take the VM; the source sends them through the
/// peer channel instead, and the destination keeps them by content in DATA_DIR/vms/boot/SHA256. A file found at the
/// same path with the same content is used as it is.
/// </summary>
internal sealed class BootFiles(string dataDir)
{
    private readonly ConcurrentDictionary<(string Path, long Size, DateTime Written), string> _hashes = new();

    public string Directory { get; } = Path.Combine(dataDir, "vms", "boot");

    /// <summary>Tests only: act as if files at the source's paths were not there (the two hosts share one file system).</summary>
    public bool IgnoreSamePath { get; init; } = Environment.GetEnvironmentVariable("ROAM_TEST_BOOT_FILES_ELSEWHERE") == "1";

    public static IEnumerable<string> Of(VmDefinition d) => new[] { d.Kernel, d.Initrd }.OfType<string>();

    /// <summary>Describes a local file (its hash is remembered while its size and time are unchanged).</summary>
    public BootFileOffer Describe(string path)
    {
        var info = new FileInfo(path);
        if (!info.Exists) throw new FileNotFoundException($"{path} does not exist on this host", path);
        var key = (info.FullName, info.Length, info.LastWriteTimeUtc);
        var sha = _hashes.GetOrAdd(key, k =>
        {
            using var stream = File.OpenRead(k.Path);
            return Convert.ToHexStringLower(SHA256.HashData(stream));
        });
        return new BootFileOffer(info.FullName, info.Length, sha);
    }

    /// <summary>Where this host holds the offered content: the same path with the same content, or the kept copy; null when it lacks it.</summary>
    public string? FindLocal(BootFileOffer offer)
    {
        if (!IsSha256(offer.Sha256)) return null;
        // Only a regular file of the offered size is hashed: the path comes from a peer (trusted, but a /dev/zero or a
        // huge file must not keep this host hashing).
        var same = new FileInfo(offer.Path);
        if (!IgnoreSamePath && offer.Size > 0 && same.Exists && same.Length == offer.Size && !same.Attributes.HasFlag(FileAttributes.Device))
        {
            try
            {
                var here = Describe(offer.Path);
                if (here.Size == offer.Size && here.Sha256 == offer.Sha256) return here.Path;
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException) { }
        }
        var kept = Path.Combine(Directory, offer.Sha256);
        return File.Exists(kept) && new FileInfo(kept).Length == offer.Size ? kept : null;
    }

    /// <summary>Sends the file's bytes (exactly the offered size).</summary>
    public static async Task SendAsync(BootFileOffer offer, PipeWriter output, CancellationToken cancellationToken)
    {
        await using var stream = File.OpenRead(offer.Path);
        if (stream.Length != offer.Size) throw new IOException($"{offer.Path} changed while being sent");
        await stream.CopyToAsync(output, cancellationToken).ConfigureAwait(false);
        await output.FlushAsync(cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// Receives exactly <see cref="BootFileOffer.Size"/> bytes, checks them against the offered hash and keeps them
    /// (durably, under their hash); returns the path. Nothing is kept from a short or wrong stream.
    /// </summary>
    public async Task<string> ReceiveAsync(BootFileOffer offer, PipeReader input, CancellationToken cancellationToken)
    {
        if (!IsSha256(offer.Sha256) || offer.Size is < 1 or > MaxSize) throw new InvalidDataException($"not a boot file: {offer.Size} bytes, SHA-256 '{offer.Sha256}'");
        System.IO.Directory.CreateDirectory(Directory);
        var path = Path.Combine(Directory, offer.Sha256);
        var temp = path + "." + Guid.NewGuid().ToString("N") + ".part";
        try
        {
            using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
            await using (var file = new FileStream(temp, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 << 16, useAsync: true))
            {
                long left = offer.Size;
                while (left > 0)
                {
                    var result = await input.ReadAsync(cancellationToken).ConfigureAwait(false);
                    var buffer = result.Buffer;
                    if (buffer.Length > left) buffer = buffer.Slice(0, left);
                    foreach (var segment in buffer)
                    {
                        hash.AppendData(segment.Span);
                        await file.WriteAsync(segment, cancellationToken).ConfigureAwait(false);
                    }
                    left -= buffer.Length;
                    input.AdvanceTo(buffer.End);
                    if (left > 0 && result.IsCompleted) throw new IOException($"the stream ended {left} bytes short of the {offer.Size}-byte boot file");
                }
                file.Flush(flushToDisk: true);
            }
            var sha = Convert.ToHexStringLower(hash.GetHashAndReset());
            if (sha != offer.Sha256) throw new InvalidDataException($"the boot file received has SHA-256 {sha}, not the {offer.Sha256} offered");
            File.Move(temp, path, overwrite: true);
            DurableFile.SyncDirectoryOf(path);
            return path;
        }
        finally
        {
            try { File.Delete(temp); }
            catch (IOException) { }
        }
    }

    /// <summary>A bound on what a peer may make this host store: kernels and initrds are tens of MiB.</summary>
    private const long MaxSize = 1L << 30;

    private static bool IsSha256(string? s) => s is { Length: 64 } && s.All(char.IsAsciiHexDigitLower);
}
