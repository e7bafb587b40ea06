using System.Buffers.Binary;
using System.IO.Pipelines;
using Roam.Nbd.Protocol;
using Roam.Testing;
using Roam.Testing.Nbd;

namespace Roam.Nbd.Tests.Fuzz;

/// <summary>
/// Random and mutated byte streams, as a hostile or broken client would send them. After each input
/// the client closes its side; the server must then end the connection on its own, without an
/// unhandled exception, within a few seconds (no crash, no hang). Meanwhile a bystander stays
/// connected to another volume, and afterwards both it and a fresh client read back the data
/// written before the fuzzing. The seed is fixed, so a failure names an iteration that replays;
/// ROAM_FUZZ_ITERATIONS runs longer.
/// </summary>
public sealed class FuzzTests : IAsyncLifetime
{
    private const string Keep = "keep";
    private const string Target = "fuzz";
    private const int VolumeSize = 1024 * 1024;
    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(10);
    private static readonly byte[] KeptData = Enumerable.Range(0, 64 * 1024).Select(i => (byte)(i * 31 + 7)).ToArray();

    private TestServer _server = null!;
    private RawNbdClient _bystander = null!;

    private static int Iterations =>
        int.TryParse(Environment.GetEnvironmentVariable("ROAM_FUZZ_ITERATIONS"), out int n) && n > 0 ? n : 300;

    public async Task InitializeAsync()
    {
        _server = TestServer.Start();
        _server.CreateVolume(Keep, VolumeSize);
        _server.CreateVolume(Target, VolumeSize);
        _bystander = await _server.ConnectAndGoAsync(Keep);
        Assert.Equal(NbdError.None, (await _bystander.WriteAsync(128 * 1024, KeptData, NbdCommandFlags.Fua)).Error);
    }

    public async Task DisposeAsync()
    {
        await _bystander.DisposeAsync();
        await _server.DisposeAsync();
    }

    [Fact]
    public async Task Random_and_mutated_handshakes_never_crash_or_hang_the_server()
    {
        var random = new Random(0x5eed);
        for (int i = 0; i < Iterations; i++)
        {
            var input = random.Next(4) == 0 ? RandomBytes(random, 1, 600) : Mutate(ValidHandshake(random), random);
            await FeedAsync(input, i);
        }
        await AssertKeptDataIntactAsync();
    }

    [Fact]
    public async Task Random_and_mutated_requests_after_go_never_crash_or_hang_the_server()
    {
        var random = new Random(0xf00d);
        for (int i = 0; i < Iterations; i++)
        {
            var requests = ValidRequests(random);
            var body = random.Next(4) == 0 ? RandomBytes(random, 1, 2000) : Mutate(requests, random);
            await FeedAsync([.. ValidHandshake(random, withRequests: false), .. body], i);
        }
        await AssertKeptDataIntactAsync();
    }

    private async Task FeedAsync(byte[] input, int iteration)
    {
        try
        {
            if (iteration % 10 == 9) await FeedSocketAsync(input);
            else await FeedPipeAsync(input);
        }
        catch (Exception ex)
        {
            Assert.Fail($"iteration {iteration}, input {Convert.ToHexString(input.AsSpan(0, Math.Min(input.Length, 4096)))}: {ex}");
        }
    }

    private async Task FeedPipeAsync(byte[] input)
    {
        var connection = _server.ServePipe();
        var drain = DrainAsync(connection.Client.Input);
        await connection.Client.Output.WriteAsync(input);
        await connection.Client.Output.CompleteAsync();

        // WaitAsync rethrows whatever ended the connection's task: an exception the server failed to handle.
        await connection.ServerTask.WaitAsync(Deadline);
        await drain.WaitAsync(Deadline);
    }

    private async Task FeedSocketAsync(byte[] input)
    {
        await using var client = await _server.ConnectAsync();
        try
        {
            await client.SendRawAsync(input);
            await client.CloseSendAsync();
        }
        catch (IOException) { } // the server may close before taking it all; it was allowed to
        Assert.True(await client.WaitForCloseAsync(Deadline), "the server kept the connection open after the client's EOF");
    }

    private static async Task DrainAsync(PipeReader reader)
    {
        while (true)
        {
            var result = await reader.ReadAsync();
            reader.AdvanceTo(result.Buffer.End);
            if (result.IsCompleted) return;
        }
    }

    private async Task AssertKeptDataIntactAsync()
    {
        Assert.Equal(KeptData, (await _bystander.ReadAsync(128 * 1024, (uint)KeptData.Length)).Data);
        await using var fresh = await _server.ConnectAndGoAsync(Keep);
        Assert.Equal(KeptData, (await fresh.ReadAsync(128 * 1024, (uint)KeptData.Length)).Data);
        Assert.Equal(NbdError.None, (await fresh.WriteAsync(0, new byte[] { 1, 2, 3 })).Error);
        Assert.Equal(2, _server.Server.ConnectionCount); // the bystander and this client: no fuzzed connection lingers
    }

    /// <summary>Client flags, a few options the server answers, then GO (or EXPORT_NAME) into "fuzz" and some requests.</summary>
    private static byte[] ValidHandshake(Random random, bool withRequests = true)
    {
        var bytes = new List<byte>();
        bytes.AddRange(U32((uint)(NbdClientFlags.FixedNewstyle | NbdClientFlags.NoZeroes)));
        bool structured = random.Next(2) == 0;
        if (structured) bytes.AddRange(Option(NbdOption.StructuredReply, []));
        for (int n = random.Next(4); n > 0; n--)
        {
            bytes.AddRange(random.Next(6) switch
            {
                0 => Option(NbdOption.List, []),
                1 => Option(NbdOption.Info, RawNbdClient.InfoRequest(Target, NbdInfo.BlockSize, NbdInfo.Name)),
                2 => Option(NbdOption.ListMetaContext, RawNbdClient.MetaContextRequest(Target)),
                3 => Option(NbdOption.SetMetaContext, RawNbdClient.MetaContextRequest(Target, "base:allocation")),
                4 => Option(NbdOption.StartTls, []),
                _ => Option((NbdOption)random.Next(12, 1000), RandomBytes(random, 0, 20)),
            });
        }
        bytes.AddRange(random.Next(4) == 0
            ? Option(NbdOption.ExportName, System.Text.Encoding.UTF8.GetBytes(Target))
            : Option(NbdOption.Go, RawNbdClient.InfoRequest(Target)));
        if (withRequests) bytes.AddRange(ValidRequests(random));
        return [.. bytes];
    }

    /// <summary>Well-formed requests of every kind, some of them invalid for the export (ranges, flags, commands).</summary>
    private static byte[] ValidRequests(Random random)
    {
        var bytes = new List<byte>();
        for (int n = random.Next(1, 12); n > 0; n--)
        {
            var command = (NbdCommand)(random.Next(12) switch { 9 => random.Next(0, 0x10000), 10 or 11 => random.Next(0, 8), var c => c });
            uint length = (uint)(random.Next(5) == 0 ? random.Next(0, 70_000) : random.Next(0, 8) * 4096);
            ulong offset = (ulong)(random.Next(5) == 0 ? random.NextInt64(0, 2 * VolumeSize) : random.Next(0, 256) * 4096);
            var flags = (NbdCommandFlags)(random.Next(3) == 0 ? random.Next(0, 0x40) : 0);
            if (command == NbdCommand.Disconnect && random.Next(3) != 0) command = NbdCommand.Read;
            var header = new byte[NbdProtocol.RequestHeaderSize];
            new NbdRequest(flags, command, (ulong)random.NextInt64(), offset, length).WriteTo(header);
            bytes.AddRange(header);
            if (command == NbdCommand.Write) bytes.AddRange(RandomBytes(random, (int)length, (int)length + 1));
        }
        return [.. bytes];
    }

    /// <summary>AFL-style havoc: a handful of bit flips, byte sets, boundary integers, inserts, deletes, duplicates and truncations.</summary>
    private static byte[] Mutate(byte[] input, Random random)
    {
        var bytes = new List<byte>(input);
        uint[] interesting = [0, 1, 0x7f, 0x80, 0xff, 0x1000, 0xffff, 0x10000, 0x7fffffff, 0x80000000, 0xffffffff, 0x02000000, 0x02000001];
        for (int n = random.Next(1, 6); n > 0 && bytes.Count > 0; n--)
        {
            int at = random.Next(bytes.Count);
            switch (random.Next(7))
            {
                case 0: bytes[at] ^= (byte)(1 << random.Next(8)); break;
                case 1: bytes[at] = (byte)random.Next(256); break;
                case 2 when at + 4 <= bytes.Count:
                    var value = U32(interesting[random.Next(interesting.Length)]);
                    for (int k = 0; k < 4; k++) bytes[at + k] = value[k];
                    break;
                case 3: bytes.InsertRange(at, RandomBytes(random, 1, 32)); break;
                case 4: bytes.RemoveRange(at, Math.Min(random.Next(1, 32), bytes.Count - at)); break;
                case 5:
                    int length = Math.Min(random.Next(1, 64), bytes.Count - at);
                    bytes.InsertRange(random.Next(bytes.Count), bytes.GetRange(at, length));
                    break;
                default: bytes.RemoveRange(at, bytes.Count - at); break;
            }
        }
        return [.. bytes];
    }

    private static byte[] Option(NbdOption option, byte[] data) =>
        [.. U64(NbdProtocol.OptionMagic), .. U32((uint)option), .. U32((uint)data.Length), .. data];

    private static byte[] RandomBytes(Random random, int min, int max)
    {
        var b = new byte[random.Next(min, max)];
        random.NextBytes(b);
        return b;
    }

    private static byte[] U32(uint v)
    {
        var b = new byte[4];
        BinaryPrimitives.WriteUInt32BigEndian(b, v);
        return b;
    }

    private static byte[] U64(ulong v)
    {
        var b = new byte[8];
        BinaryPrimitives.WriteUInt64BigEndian(b, v);
        return b;
    }
}
