using System.IO.Pipelines;
using System.Security.Cryptography;
using Roam.Daemon.Vms;

namespace Roam.Daemon.Tests;

/// <summary>A VM's kernel and initrd sent to a destination that lacks them: kept by content, and only if they arrive whole.</summary>
public sealed class BootFilesTests : IDisposable
{
    private readonly TestDirectory _dir = new();

    private string Source(byte[] content)
    {
        var path = Path.Combine(_dir.Path, "src-" + Guid.NewGuid().ToString("N"));
        File.WriteAllBytes(path, content);
        return path;
    }

    private static async Task<PipeReader> StreamOf(byte[] bytes, bool complete = true)
    {
        var pipe = new Pipe(new PipeOptions(pauseWriterThreshold: 0)); // all of it buffered: nobody reads yet
        await pipe.Writer.WriteAsync(bytes);
        if (complete) await pipe.Writer.CompleteAsync();
        return pipe.Reader;
    }

    [Fact]
    public async Task A_file_sent_whole_is_kept_by_its_hash_and_found_from_then_on()
    {
        var content = RandomNumberGenerator.GetBytes(300_000);
        var sender = new BootFiles(Path.Combine(_dir.Path, "a"));
        var receiver = new BootFiles(Path.Combine(_dir.Path, "b")) { IgnoreSamePath = true };
        var offer = sender.Describe(Source(content));
        Assert.Equal(Convert.ToHexStringLower(SHA256.HashData(content)), offer.Sha256);
        Assert.Null(receiver.FindLocal(offer));

        var pipe = new Pipe();
        var sending = BootFiles.SendAsync(offer, pipe.Writer, default);
        var kept = await receiver.ReceiveAsync(offer, pipe.Reader, default);
        await sending;
        Assert.Equal(content, File.ReadAllBytes(kept));
        Assert.Equal(kept, receiver.FindLocal(offer));
        Assert.Single(Directory.GetFiles(receiver.Directory)); // no part file left
    }

    [Fact]
    public void A_file_at_the_same_path_with_the_same_content_is_used_as_it_is()
    {
        var path = Source(RandomNumberGenerator.GetBytes(4096));
        var offer = new BootFiles(Path.Combine(_dir.Path, "a")).Describe(path);
        Assert.Equal(path, new BootFiles(Path.Combine(_dir.Path, "b")).FindLocal(offer));
        File.WriteAllBytes(path, RandomNumberGenerator.GetBytes(4096)); // same path, other content
        Assert.Null(new BootFiles(Path.Combine(_dir.Path, "b")).FindLocal(offer));
    }

    [Fact]
    public async Task Bytes_that_do_not_match_the_offer_are_refused_and_nothing_is_kept()
    {
        var content = RandomNumberGenerator.GetBytes(100_000);
        var offer = new BootFiles(Path.Combine(_dir.Path, "a")).Describe(Source(content));
        var receiver = new BootFiles(Path.Combine(_dir.Path, "b")) { IgnoreSamePath = true };

        var tampered = (byte[])content.Clone();
        tampered[5000] ^= 1;
        await Assert.ThrowsAsync<InvalidDataException>(async () => await receiver.ReceiveAsync(offer, await StreamOf(tampered), default));
        await Assert.ThrowsAsync<IOException>(async () => await receiver.ReceiveAsync(offer, await StreamOf(content[..50_000]), default));
        await Assert.ThrowsAsync<InvalidDataException>(async () => await receiver.ReceiveAsync(offer with { Sha256 = "../../etc/passwd" }, await StreamOf(content), default));
        await Assert.ThrowsAsync<InvalidDataException>(async () => await receiver.ReceiveAsync(offer with { Size = 1L << 40 }, await StreamOf(content), default));
        Assert.Null(receiver.FindLocal(offer));
        Assert.Empty(Directory.Exists(receiver.Directory) ? Directory.GetFiles(receiver.Directory) : []);
    }

    [Fact]
    public void A_named_path_that_is_no_file_of_the_offered_size_is_not_read()
    {
        // A peer names the path: /dev/zero would keep this host hashing forever, were it read.
        var files = new BootFiles(Path.Combine(_dir.Path, "b"));
        Assert.Null(files.FindLocal(new BootFileOffer("/dev/zero", 0, new string('a', 64))));
        Assert.Null(files.FindLocal(new BootFileOffer("/dev/zero", 4096, new string('a', 64))));
    }

    public void Dispose() => _dir.Dispose();
}
