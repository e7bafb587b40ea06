using Roam.Replication.Engine;

namespace Roam.Replication.Tests.Support;

/// <summary>Three in-process hosts that trust each other (alpha, beta, gamma), for tests of replicas beyond a pair.</summary>
public abstract class ThreeHostsTest : IAsyncLifetime
{
    protected const string Vol = "disk";
    protected const long MiB = 1024 * 1024;

    protected ReplNode Alpha { get; private set; } = null!;
    protected ReplNode Beta { get; private set; } = null!;
    protected ReplNode Gamma { get; private set; } = null!;

    protected virtual ReplicationOptions Options => ReplNode.TestOptions;

    protected static byte[] Random(int length, int seed) => TestData.RandomBytes(length, seed);

    public async Task InitializeAsync()
    {
        var nodes = await ReplNode.MeshAsync(Options, "alpha", "beta", "gamma");
        (Alpha, Beta, Gamma) = (nodes[0], nodes[1], nodes[2]);
    }

    public async Task DisposeAsync()
    {
        await Alpha.DisposeAsync();
        await Beta.DisposeAsync();
        await Gamma.DisposeAsync();
    }
}
