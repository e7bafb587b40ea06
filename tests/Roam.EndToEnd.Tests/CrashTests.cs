using System.Buffers.Binary;
using Roam.EndToEnd.Tests.Infrastructure;
using Roam.Nbd.Protocol;
using Roam.Testing.Nbd;

namespace Roam.EndToEnd.Tests;

/// <summary>
/// roamd killed with SIGKILL in the middle of work, then started again on the same data dir: it must
/// come back by itself (the data-dir lock dies with the process, metadata is never half-written) and
/// hold every write it acknowledged.
/// </summary>
public sealed class CrashTests : IDisposable
{
    private const int BlockSize = 4096;
    private const int BlocksInVolume = 64 * 1024;        // 256 MiB: the writer never wraps around in one run
    private readonly TestDirectory _dir = new();

    private string DataDir => Path.Combine(_dir.Path, "data");

    [Theory]
    [InlineData(150)]
    [InlineData(450)]
    [InlineData(900)]
    public async Task Kill9_during_write_load_keeps_every_acknowledged_and_flushed_write(int killAfterMs)
    {
        var roamd = await RoamdProcess.StartAsync(DataDir);
        (await RoamRunner.RunAsync(roamd.ControlSocket, "volume", "create", "crash", "--size", $"{BlocksInVolume * BlockSize}")).ShouldSucceed();

        var client = await RawNbdClient.ConnectAndGoAsync(roamd.NbdSocket, "crash");
        var acknowledged = new HashSet<int>();
        var flushed = new HashSet<int>();
        var killer = Task.Run(async () =>
        {
            await Task.Delay(killAfterMs);
            RoamdProcess.Signal(roamd.Process.Id, RoamdProcess.SigKill);
        });

        // Pipelined batches of 16 writes (every 5th with FUA), and a FLUSH after every fourth batch:
        // a write acknowledged before a FLUSH was sent is durable once that FLUSH is acknowledged.
        int next = 0;
        var sinceFlush = new List<int>();
        try
        {
            for (int batch = 0; next < BlocksInVolume - 16; batch++)
            {
                var cookies = new Dictionary<ulong, (int Block, bool Fua)>();
                for (int i = 0; i < 16; i++, next++)
                {
                    bool fua = next % 5 == 0;
                    ulong cookie = await client.SendAsync(NbdCommand.Write, (ulong)next * BlockSize, BlockSize,
                        fua ? NbdCommandFlags.Fua : NbdCommandFlags.None, Pattern(next));
                    cookies[cookie] = (next, fua);
                }
                for (int i = 0; i < 16; i++)
                {
                    var reply = (await client.ReceiveAsync()).EnsureSuccess();
                    var (block, fua) = cookies[reply.Cookie];
                    acknowledged.Add(block);
                    if (fua) flushed.Add(block); else sinceFlush.Add(block);
                }
                if (batch % 4 == 3)
                {
                    (await client.FlushAsync()).EnsureSuccess();
                    flushed.UnionWith(sinceFlush);
                    sinceFlush.Clear();
                }
            }
        }
        catch (Exception ex) when (ex is IOException or InvalidDataException or EndOfStreamException or TimeoutException or System.Net.Sockets.SocketException)
        {
            // The daemon died under the writer: expected.
        }
        await killer;
        await roamd.Process.WaitForExitAsync();
        await client.DisposeAsync();
        await roamd.DisposeAsync();
        Assert.True(acknowledged.Count > 0, "the writer got no acknowledgement before the kill; raise the delay");
        Assert.True(flushed.Count > 0 || killAfterMs < 300, "no flush completed before the kill");

        // Restart on the same data dir: the lock is free again and the volume is intact.
        await using var restarted = await RoamdProcess.StartAsync(DataDir);
        var reader = await RawNbdClient.ConnectAndGoAsync(restarted.NbdSocket, "crash");
        var missing = new List<int>();
        foreach (int block in acknowledged.Order())
        {
            var data = (await reader.ReadAsync((ulong)block * BlockSize, BlockSize)).EnsureSuccess().Data;
            if (!data.AsSpan().SequenceEqual(Pattern(block))) missing.Add(block);
        }
        await reader.DisposeAsync();
        Assert.True(missing.Count == 0,
            $"{missing.Count} of {acknowledged.Count} acknowledged writes ({flushed.Count} flushed) lost after kill -9, first: {string.Join(", ", missing.Take(10))}");
    }

    [Fact]
    public async Task Kill9_during_volume_management_leaves_consistent_metadata()
    {
        // Create, grow and delete volumes in a loop while roamd is killed at some point in it; after a
        // restart every listed volume's data file matches its metadata and no debris is left.
        var roamd = await RoamdProcess.StartAsync(DataDir);
        var churning = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var churn = Task.Run(async () =>
        {
            for (int i = 0; ; i++)
            {
                var name = $"v{i % 4}";
                var r = await RoamRunner.RunAsync(roamd.ControlSocket, "volume", "create", name, "--size", "1M");
                if (r.ExitCode == 3) return i; // daemon gone
                await RoamRunner.RunAsync(roamd.ControlSocket, "volume", "resize", name, "--size", "2M");
                if (i % 2 == 1) await RoamRunner.RunAsync(roamd.ControlSocket, "volume", "delete", name);
                churning.TrySetResult();
            }
        });
        // Killed in the loop, not before it: a round's time depends on the machine (each step starts the roam CLI), so
        // the kill waits for the first round to complete rather than for a fixed delay.
        await churning.Task.WaitAsync(TimeSpan.FromSeconds(60));
        await Task.Delay(500);
        RoamdProcess.Signal(roamd.Process.Id, RoamdProcess.SigKill);
        int rounds = await churn.WaitAsync(TimeSpan.FromSeconds(30));
        Assert.True(rounds > 0, "the churn loop never ran before the kill");
        await roamd.DisposeAsync();

        await using var restarted = await RoamdProcess.StartAsync(DataDir);
        var list = (await RoamRunner.RunAsync(restarted.ControlSocket, "volume", "list", "--json")).ShouldSucceed().Json;
        var volumesDir = Path.Combine(DataDir, "volumes");
        var names = list.EnumerateArray().Select(v => v.GetProperty("name").GetString()!).ToHashSet();
        foreach (var v in list.EnumerateArray())
        {
            var name = v.GetProperty("name").GetString()!;
            long size = v.GetProperty("size").GetInt64();
            Assert.Equal(size, new FileInfo(Path.Combine(volumesDir, name + ".raw")).Length);
        }
        Assert.Empty(Directory.GetFiles(volumesDir, "*.tmp"));
        foreach (var raw in Directory.GetFiles(volumesDir, "*.raw"))
            Assert.Contains(Path.GetFileNameWithoutExtension(raw), names);
    }

    private static byte[] Pattern(int block)
    {
        // Block number and its complement in every 8 bytes: a block written to the wrong place or torn shows.
        var data = new byte[BlockSize];
        for (int at = 0; at < BlockSize; at += 8)
        {
            BinaryPrimitives.WriteInt32LittleEndian(data.AsSpan(at), block);
            BinaryPrimitives.WriteInt32LittleEndian(data.AsSpan(at + 4), ~block ^ at);
        }
        return data;
    }

    public void Dispose() => _dir.Dispose();
}
