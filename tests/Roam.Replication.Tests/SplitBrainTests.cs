using Roam.Replication.Engine;
using Roam.Storage.Devices;

namespace Roam.Replication.Tests;

public sealed class SplitBrainTests : ReplicationTestBase
{
    /// <summary>Both sides write apart after a forced promote; returns the old primary's device.</summary>
    private async Task<(IBlockDevice Alpha, IBlockDevice Beta, byte[] AlphaWrite, byte[] BetaWrite)> SplitAsync()
    {
        var device = await ReplicatedAsync(8 * MiB, ReplicaMode.Sync);
        await device.WriteAsync(0, Random(256 * 1024, 1), false, default);
        await Secondary.Service.PromoteAsync(Vol, force: true);
        var beta = Secondary.Open(Vol, out _);
        var betaWrite = Random(64 * 1024, 2);
        await beta.WriteAsync(2 * MiB, betaWrite, false, default);
        var alphaWrite = Random(64 * 1024, 3);
        await device.WriteAsync(4 * MiB, alphaWrite, false, default);
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(10);
        while (Primary.Replica(Vol).State != ReplicaState.SplitBrain && DateTime.UtcNow < deadline) await Task.Delay(20);
        Assert.Equal(ReplicaState.SplitBrain, Primary.Replica(Vol).State);
        return (device, beta, alphaWrite, betaWrite);
    }

    private static bool Holds(byte[] raw, long offset, byte[] data) => raw.AsSpan((int)offset, data.Length).SequenceEqual(data);

    [Fact]
    public async Task Resolving_for_the_old_primary_overwrites_the_promoted_replica()
    {
        var (alpha, _, alphaWrite, betaWrite) = await SplitAsync();
        Assert.False(Holds(Secondary.ReadRaw(Vol), 4 * MiB, alphaWrite));
        // The promoted side sees it too, by itself, from alpha's attach: it says so and how to settle it.
        Assert.Contains("split brain with alpha", Secondary.Service.GetStatus(Vol).Notice);
        Assert.Contains("roam volume resolve disk --keep HOST", Secondary.Service.GetStatus(Vol).Notice);
        await Secondary.Service.ResolveAsync(Vol, "alpha");
        await Primary.Service.ResolveAsync(Vol, "alpha");
        await Primary.WaitInSyncAsync(Vol);
        AssertSame();
        Assert.True(Holds(Secondary.ReadRaw(Vol), 4 * MiB, alphaWrite));
        Assert.False(Holds(Secondary.ReadRaw(Vol), 2 * MiB, betaWrite));
        Assert.Equal(VolumeRole.Replica, Secondary.Service.GetStatus(Vol).Role);
        await alpha.WriteAsync(MiB, Random(4096, 4), false, default);
    }

    [Fact]
    public async Task Resolving_for_the_promoted_replica_overwrites_the_old_primary()
    {
        var (alpha, _, alphaWrite, betaWrite) = await SplitAsync();
        await Primary.Service.ResolveAsync(Vol, "beta");
        var ex = await Assert.ThrowsAsync<BlockDeviceException>(() => alpha.WriteAsync(0, new byte[512], false, default).AsTask());
        Assert.Equal(BlockDeviceError.ReadOnly, ex.Error);
        Assert.True(Holds(Primary.ReadRaw(Vol), 4 * MiB, alphaWrite), "nothing is overwritten before the winner syncs");
        await Secondary.Service.ResolveAsync(Vol, "beta");
        await Secondary.WaitInSyncAsync(Vol);
        AssertSame();
        Assert.Null(Secondary.Service.GetStatus(Vol).Notice);
        Assert.True(Holds(Primary.ReadRaw(Vol), 2 * MiB, betaWrite));
        Assert.False(Holds(Primary.ReadRaw(Vol), 4 * MiB, alphaWrite));
        Assert.Equal(VolumeRole.Replica, Primary.Service.GetStatus(Vol).Role);
        Assert.Equal(VolumeRole.Primary, Secondary.Service.GetStatus(Vol).Role);
    }
}
