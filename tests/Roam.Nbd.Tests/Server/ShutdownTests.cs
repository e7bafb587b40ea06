using Roam.Nbd.Server;
using Roam.Testing;

namespace Roam.Nbd.Tests.Server;

/// <summary>Stopping the server: a soft disconnect of every client, whatever state each is in.</summary>
public sealed class ShutdownTests : ServerTestBase
{
    [Fact]
    public async Task Stopping_the_server_closes_idle_and_negotiating_clients()
    {
        await using var idle = await Server.ConnectAndGoAsync(Export);
        await using var negotiating = await HaggleAsync();

        await Server.Server.StopAsync();

        Assert.True(await idle.WaitForCloseAsync(TimeSpan.FromSeconds(5)));
        Assert.True(await negotiating.WaitForCloseAsync(TimeSpan.FromSeconds(5)));
        Assert.Empty(Server.Log.Rejections);
    }

    [Fact]
    public async Task A_connection_that_already_ended_ignores_a_late_shutdown()
    {
        // Regression: StopAsync soft-disconnects a snapshot of the connections; one that ended (and
        // was disposed) in between made BeginShutdown throw ObjectDisposedException out of StopAsync.
        var direct = new NbdConnection(99, new EndedPipe(), new VolumeExportProvider(Server.Store), new NbdServerOptions(), Server.Log);
        await direct.RunAsync();

        direct.BeginShutdown();

        Assert.Empty(Server.Log.Rejections);
    }

    /// <summary>A transport whose client has already gone: reads see EOF at once, writes go nowhere.</summary>
    private sealed class EndedPipe : System.IO.Pipelines.IDuplexPipe
    {
        public System.IO.Pipelines.PipeReader Input { get; } = System.IO.Pipelines.PipeReader.Create(Stream.Null);

        public System.IO.Pipelines.PipeWriter Output { get; } = System.IO.Pipelines.PipeWriter.Create(Stream.Null);
    }
}
