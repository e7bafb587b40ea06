using System.Security.Cryptography;

namespace Roam.EndToEnd.Tests.Infrastructure;

/// <summary>Test images: sparse files with known data, and ways to look at files from outside roamd.</summary>
public static class Images
{
    /// <summary>A sparse file of <paramref name="length"/> bytes with random data at each (offset, length); the rest is hole.</summary>
    public static void CreateSparse(string path, long length, params (long Offset, int Length)[] data)
    {
        var random = new Random(12345);
        using var file = new FileStream(path, FileMode.CreateNew, FileAccess.Write);
        file.SetLength(length);
        foreach (var (offset, count) in data)
        {
            var bytes = new byte[count];
            random.NextBytes(bytes);
            file.Position = offset;
            file.Write(bytes);
        }
    }

    /// <summary>Writes explicit zeros (allocated, not a hole) at a range of an existing file.</summary>
    public static void WriteZeros(string path, long offset, int length)
    {
        using var file = new FileStream(path, FileMode.Open, FileAccess.Write);
        file.Position = offset;
        file.Write(new byte[length]);
    }

    public static string Sha256(string path)
    {
        using var file = File.OpenRead(path);
        return Convert.ToHexString(SHA256.HashData(file));
    }

    /// <summary>Bytes the file system allocated for the file, by `stat` (st_blocks * 512): independent of roamd's own code.</summary>
    public static async Task<long> AllocatedBytesAsync(string path)
    {
        var result = await Tools.RunAsync("stat", "--format=%b %B", path);
        result.ShouldSucceed("stat");
        var parts = result.Stdout.Trim().Split(' ');
        return long.Parse(parts[0]) * long.Parse(parts[1]);
    }
}
