using System.Runtime.CompilerServices;
using System.Buffers;
using System.Buffers.Binary;
using System.IO.Pipelines;
using BenchmarkDotNet.Attributes;
using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Jobs;
using BenchmarkDotNet.Running;
using BenchmarkDotNet.Toolchains.InProcess.Emit;
using Microsoft.Extensions.Logging.Abstractions;
using Roam.Nbd.Server;
using Roam.Replication.Engine;
using Roam.Testing;
using Roam.Testing.Replication;

namespace Roam.Bench;

/// <summary>
/// NBD READ and WRITE (4 KiB, one request in flight) through roamd's whole export stack, over in-memory pipes, with
/// the bytes allocated per request: the NBD connection, then the role router, then either the fenced file of a plain
/// primary or a replicated primary's fence, activity log and mirror (with one asynchronous replica on loopback TLS),
/// down to the sparse file. The client side is a few pooled pipe operations and allocates nothing itself.
/// </summary>
[MemoryDiagnoser]
public class LayerAllocations
{
    private const string Volume = "bench";
    private const int Block = 4096;
    private const long VolumeSize = 64L << 20;
    private const uint Extent = 4u << 20; // requests stay in one activity-log extent: no log transaction per write

    private ReplNode? _primary, _replica;
    private NbdServer? _server;
    private IDuplexPipe _client = null!;
    private readonly byte[] _request = new byte[28 + Block];
    private ulong _cookie;
    private uint _next;

    /// <summary>plain: a primary with no replica; replicated: one asynchronous replica attached and in sync.</summary>
    [Params("plain", "replicated")]
    public string Stack { get; set; } = "plain";

    [GlobalSetup]
    public void Setup() => SetupAsync().GetAwaiter().GetResult();

    private async Task SetupAsync()
    {
        if (Stack == "replicated")
        {
            (_primary, _replica) = await ReplNode.PairAsync().ConfigureAwait(false);
            _primary.Store.Create(Volume, VolumeSize);
            await _primary.Service.AddReplicaAsync(Volume, "beta", ReplicaMode.Async).ConfigureAwait(false);
            await _primary.WaitInSyncAsync(Volume, "beta", TimeSpan.FromMinutes(2)).ConfigureAwait(false);
        }
        else
        {
            _primary = (await ReplNode.MeshAsync(ReplNode.TestOptions, "alpha").ConfigureAwait(false))[0];
            _primary.Store.Create(Volume, VolumeSize);
        }
        _server = new NbdServer(_primary.Exports, new NbdServerOptions(), NullLogger.Instance);
        var (client, server) = TestPipes.Connected();
        _client = client;
        _ = _server.ServeAsync(server);
        await HandshakeAsync().ConfigureAwait(false);
        TestData.RandomBytes(Block, 7).CopyTo(_request.AsSpan(28));
        for (int i = 0; i < 64; i++) await Write().ConfigureAwait(false); // warm every path once
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _client.Output.Complete();
        _server?.DisposeAsync().AsTask().GetAwaiter().GetResult();
        _primary?.DisposeAsync().AsTask().GetAwaiter().GetResult();
        _replica?.DisposeAsync().AsTask().GetAwaiter().GetResult();
    }

    [Benchmark]
    public ValueTask Write() => RequestAsync(command: 1, Block, replyData: 0);

    [Benchmark]
    public ValueTask Read() => RequestAsync(command: 0, 0, replyData: Block);

    /// <summary>One request and its simple reply (16 bytes, then the data of a READ).</summary>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))]
    private async ValueTask RequestAsync(ushort command, int payload, int replyData)
    {
        uint offset = _next;
        _next = (_next + Block) % Extent;
        var header = _request.AsSpan(0, 28);
        BinaryPrimitives.WriteUInt32BigEndian(header, 0x25609513);
        BinaryPrimitives.WriteUInt16BigEndian(header[4..], 0);
        BinaryPrimitives.WriteUInt16BigEndian(header[6..], command);
        BinaryPrimitives.WriteUInt64BigEndian(header[8..], ++_cookie);
        BinaryPrimitives.WriteUInt64BigEndian(header[16..], offset);
        BinaryPrimitives.WriteUInt32BigEndian(header[24..], Block);
        await _client.Output.WriteAsync(_request.AsMemory(0, 28 + payload)).ConfigureAwait(false);
        await ReadReplyAsync(16 + replyData).ConfigureAwait(false);
    }

    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))]
    private async ValueTask ReadReplyAsync(int length)
    {
        while (true)
        {
            var result = await _client.Input.ReadAsync().ConfigureAwait(false);
            var buffer = result.Buffer;
            if (buffer.Length >= length)
            {
                Span<byte> reply = stackalloc byte[16];
                buffer.Slice(0, 16).CopyTo(reply);
                uint error = BinaryPrimitives.ReadUInt32BigEndian(reply[4..]);
                ulong cookie = BinaryPrimitives.ReadUInt64BigEndian(reply[8..]);
                _client.Input.AdvanceTo(buffer.GetPosition(length));
                if (error != 0 || cookie != _cookie) throw new InvalidDataException($"reply {cookie}: error {error}");
                return;
            }
            if (result.IsCompleted) throw new EndOfStreamException("the server closed the connection");
            _client.Input.AdvanceTo(buffer.Start, buffer.End);
        }
    }

    /// <summary>Fixed newstyle, no zeroes, NBD_OPT_EXPORT_NAME: the shortest handshake, then simple replies.</summary>
    private async Task HandshakeAsync()
    {
        await ReadExactlyAsync(18).ConfigureAwait(false);                            // NBDMAGIC, IHAVEOPT, flags
        var hello = new byte[4 + 16 + Volume.Length];
        BinaryPrimitives.WriteUInt32BigEndian(hello, 3);                              // FIXED_NEWSTYLE | NO_ZEROES
        BinaryPrimitives.WriteUInt64BigEndian(hello.AsSpan(4), 0x49484156454F5054);   // IHAVEOPT
        BinaryPrimitives.WriteUInt32BigEndian(hello.AsSpan(12), 1);                   // NBD_OPT_EXPORT_NAME
        BinaryPrimitives.WriteUInt32BigEndian(hello.AsSpan(16), (uint)Volume.Length);
        System.Text.Encoding.ASCII.GetBytes(Volume, hello.AsSpan(20));
        await _client.Output.WriteAsync(hello).ConfigureAwait(false);
        var export = await ReadExactlyAsync(10).ConfigureAwait(false);               // size, transmission flags
        if (BinaryPrimitives.ReadUInt64BigEndian(export) != VolumeSize) throw new InvalidDataException("unexpected export size");
    }

    private async Task<byte[]> ReadExactlyAsync(int length)
    {
        while (true)
        {
            var result = await _client.Input.ReadAsync().ConfigureAwait(false);
            if (result.Buffer.Length >= length)
            {
                var bytes = result.Buffer.Slice(0, length).ToArray();
                _client.Input.AdvanceTo(result.Buffer.GetPosition(length));
                return bytes;
            }
            if (result.IsCompleted) throw new EndOfStreamException("the server closed the connection in the handshake");
            _client.Input.AdvanceTo(result.Buffer.Start, result.Buffer.End);
        }
    }

    /// <summary>Runs in this process (no generated project to build), short enough for an on-demand run.</summary>
    public static int Run(string[] args)
    {
        var job = Job.ShortRun.WithToolchain(InProcessEmitToolchain.Instance);
        var config = DefaultConfig.Instance.AddJob(job).WithOptions(ConfigOptions.DisableOptimizationsValidator);
        var summary = BenchmarkRunner.Run<LayerAllocations>(config, args);
        return summary.HasCriticalValidationErrors || summary.Reports.Any(r => !r.Success) ? 1 : 0;
    }
}
