using Roam.Nbd.Protocol;
using Roam.Testing;
using Roam.Testing.Nbd;

namespace Roam.Nbd.Tests.Server;

/// <summary>A fresh server per test (xunit makes a class instance per test) with one 1 MiB volume, "disk".</summary>
public abstract class ServerTestBase : IAsyncLifetime
{
    protected const string Export = "disk";
    protected const long Size = 1024 * 1024;

    protected TestServer Server { get; private set; } = null!;

    public virtual Task InitializeAsync()
    {
        Server = TestServer.Start();
        Server.CreateVolume(Export, Size);
        return Task.CompletedTask;
    }

    public async Task DisposeAsync() => await Server.DisposeAsync();

    protected static byte[] Pattern(int length, byte seed)
    {
        var b = new byte[length];
        for (int i = 0; i < length; i++) b[i] = (byte)(seed + i * 7);
        return b;
    }

    /// <summary>Proves a connection is still served, and in sync: a write then a read of the same bytes.</summary>
    protected static async Task AssertServedAsync(RawNbdClient client, ulong offset = 512 * 1024)
    {
        var data = Pattern(4096, (byte)offset);
        Assert.Equal(NbdError.None, (await client.WriteAsync(offset, data)).Error);
        var read = await client.ReadAsync(offset, 4096);
        Assert.Equal(NbdError.None, read.Error);
        Assert.Equal(data, read.Data);
    }

    /// <summary>A client in option haggling (greeting read, client flags sent).</summary>
    protected async Task<RawNbdClient> HaggleAsync(NbdClientFlags flags = NbdClientFlags.FixedNewstyle | NbdClientFlags.NoZeroes)
    {
        var client = await Server.ConnectAsync();
        await client.StartAsync(flags);
        return client;
    }
}
