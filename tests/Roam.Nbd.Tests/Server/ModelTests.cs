using CsCheck;
using Roam.Nbd.Protocol;
using Roam.Testing;
using Roam.Testing.Nbd;

namespace Roam.Nbd.Tests.Server;

/// <summary>
/// Random request sequences through a real server and a real sparse file, checked against a byte[]
/// model of the disk. Requests go in batches of up to 8 in flight; a batch never holds two requests
/// whose ranges overlap when either changes data, because the spec lets the server run them in any
/// order. Replies arrive in any order and are matched by cookie.
/// </summary>
public sealed class ModelTests : IAsyncLifetime
{
    private const int VolumeSize = 256 * 1024;
    private static int s_volumes;
    private TestServer _server = null!;

    public Task InitializeAsync()
    {
        _server = TestServer.Start();
        return Task.CompletedTask;
    }

    public async Task DisposeAsync() => await _server.DisposeAsync();

    public enum Kind { Write, Read, Trim, Zero, Flush, Cache, Status }

    public sealed record Op(Kind Kind, long Offset, int Length, NbdCommandFlags Flags, byte Seed)
    {
        public bool Mutates => Kind is Kind.Write or Kind.Trim or Kind.Zero;

        public bool HasRange => Kind is not Kind.Flush;

        public bool Overlaps(Op other) =>
            HasRange && other.HasRange && Offset < other.Offset + other.Length && other.Offset < Offset + Length;

        public byte[] Payload()
        {
            var data = new byte[Length];
            new Random(Seed * 7919 + Length).NextBytes(data);
            return data;
        }

        public override string ToString() => $"{Kind} {Offset}+{Length}{(Flags == 0 ? "" : $" {Flags}")}{(Kind == Kind.Write ? $" #{Seed}" : "")}";
    }

    private static readonly Gen<(long Offset, int Length)> GenRange = Gen.OneOf(
        // Block-aligned: whole blocks get punched and allocated.
        Gen.Select(Gen.Int[0, 63], Gen.Int[1, 16], (block, count) => (block * 4096L, Math.Min(count, 64 - block) * 4096)),
        // Any bytes: partial blocks at both ends, the minimum block size being 1.
        Gen.Int[0, VolumeSize - 1].SelectMany(offset => Gen.Int[1, Math.Min(40_000, VolumeSize - offset)].Select(length => ((long)offset, length))));

    private static readonly Gen<Op> GenOp = Gen.Frequency(
        (5, Gen.Select(GenRange, Gen.Int[0, 9], Gen.Byte, (r, fua, seed) => new Op(Kind.Write, r.Offset, r.Length, fua == 0 ? NbdCommandFlags.Fua : 0, seed))),
        (5, GenRange.Select(r => new Op(Kind.Read, r.Offset, r.Length, 0, 0))),
        (2, GenRange.Select(r => new Op(Kind.Trim, r.Offset, r.Length, 0, 0))),
        (2, Gen.Select(GenRange, Gen.Int[0, 3], (r, f) => new Op(Kind.Zero, r.Offset, r.Length,
            (f & 1) != 0 ? NbdCommandFlags.NoHole : (f & 2) != 0 ? NbdCommandFlags.FastZero : 0, 0))),
        (1, Gen.Const(new Op(Kind.Flush, 0, 0, 0, 0))),
        (1, GenRange.Select(r => new Op(Kind.Cache, r.Offset, r.Length, 0, 0))),
        (3, Gen.Select(GenRange, Gen.Bool, (r, one) => new Op(Kind.Status, r.Offset, r.Length, one ? NbdCommandFlags.RequestOne : 0, 0))));

    [Fact]
    public Task Random_pipelined_requests_match_an_in_memory_model_of_the_disk() =>
        Gen.Select(Gen.Bool, GenOp.Array[1, 60], Gen.Int[1, 8]).SampleAsync(RunAsync, iter: 200);

    private async Task RunAsync(bool structured, Op[] ops, int depth)
    {
        var name = $"model{Interlocked.Increment(ref s_volumes)}";
        _server.CreateVolume(name, VolumeSize);
        var model = new byte[VolumeSize];
        var connection = _server.ServePipe();
        await using (var client = connection.CreateClient())
        {
            await client.StartAsync();
            await client.GoAsync(name, structured, baseAllocation: structured);
            foreach (var batch in Batches(ops, depth))
            {
                var sent = new Dictionary<ulong, Op>();
                foreach (var op in batch) sent[await SendAsync(client, op)] = op;
                var outcome = new Dictionary<ulong, NbdReply>();
                while (outcome.Count < sent.Count)
                {
                    var reply = await client.ReceiveAsync();
                    Assert.True(outcome.TryAdd(reply.Cookie, reply), $"two replies for cookie {reply.Cookie:x}");
                }
                // Reads see data no request of this batch changes, so the model before and after agree on them.
                foreach (var (cookie, op) in sent) Check(op, outcome[cookie], model, structured);
                foreach (var (cookie, op) in sent) Apply(op, outcome[cookie], model);
            }
            await client.DisconnectAsync();
            Assert.True(await client.WaitForCloseAsync());
        }
        await connection.ServerTask.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.Equal(model, await File.ReadAllBytesAsync(_server.VolumePath(name)));
        _server.Store.Delete(name);
    }

    private static IEnumerable<List<Op>> Batches(Op[] ops, int depth)
    {
        var batch = new List<Op>();
        foreach (var op in ops)
        {
            if (batch.Count == depth || batch.Any(o => (o.Mutates || op.Mutates) && o.Overlaps(op)))
            {
                yield return batch;
                batch = [];
            }
            batch.Add(op);
        }
        if (batch.Count > 0) yield return batch;
    }

    private static Task<ulong> SendAsync(RawNbdClient client, Op op) => op.Kind switch
    {
        Kind.Write => client.SendAsync(NbdCommand.Write, (ulong)op.Offset, (uint)op.Length, op.Flags, op.Payload()),
        Kind.Read => client.SendAsync(NbdCommand.Read, (ulong)op.Offset, (uint)op.Length, op.Flags),
        Kind.Trim => client.SendAsync(NbdCommand.Trim, (ulong)op.Offset, (uint)op.Length, op.Flags),
        Kind.Zero => client.SendAsync(NbdCommand.WriteZeroes, (ulong)op.Offset, (uint)op.Length, op.Flags),
        Kind.Flush => client.SendAsync(NbdCommand.Flush, 0, 0),
        Kind.Cache => client.SendAsync(NbdCommand.Cache, (ulong)op.Offset, (uint)op.Length, op.Flags),
        _ => client.SendAsync(NbdCommand.BlockStatus, (ulong)op.Offset, (uint)op.Length, op.Flags),
    };

    private static void Check(Op op, NbdReply reply, byte[] model, bool structured)
    {
        switch (op.Kind)
        {
            case Kind.Read:
                Assert.Equal(NbdError.None, reply.Error);
                Assert.True(model.AsSpan((int)op.Offset, op.Length).SequenceEqual(reply.Data), $"{op} read back different data");
                break;
            case Kind.Status when !structured:
                Assert.Equal(NbdError.EINVAL, reply.Error); // no metadata context without structured replies
                break;
            case Kind.Status:
                Assert.Equal(NbdError.None, reply.Error);
                Assert.NotEmpty(reply.Extents);
                if (op.Flags.HasFlag(NbdCommandFlags.RequestOne)) Assert.Single(reply.Extents);
                long at = op.Offset;
                foreach (var extent in reply.Extents)
                {
                    if (extent.Flags.HasFlag(NbdAllocationFlags.Zero))
                        Assert.True(model.AsSpan((int)at, (int)extent.Length).IndexOfAnyExcept((byte)0) < 0, $"{op}: extent at {at}+{extent.Length} is flagged zero but holds data");
                    at += extent.Length;
                }
                long covered = at - op.Offset;
                Assert.True(op.Flags.HasFlag(NbdCommandFlags.RequestOne) ? covered <= op.Length : covered == op.Length,
                    $"{op}: extents cover {covered} bytes");
                break;
            case Kind.Zero when op.Flags.HasFlag(NbdCommandFlags.FastZero):
                // A fast zero may fail fast, with ENOTSUP and nothing changed; nothing else.
                Assert.Contains(reply.Error, new[] { NbdError.None, NbdError.ENOTSUP });
                break;
            default:
                Assert.Equal(NbdError.None, reply.Error);
                break;
        }
    }

    private static void Apply(Op op, NbdReply reply, byte[] model)
    {
        if (reply.Error != NbdError.None) return;
        if (op.Kind == Kind.Write) op.Payload().CopyTo(model, op.Offset);
        else if (op.Kind is Kind.Trim or Kind.Zero) Array.Clear(model, (int)op.Offset, op.Length);
    }
}
