using Roam.EndToEnd.Tests.Infrastructure;

namespace Roam.EndToEnd.Tests;

/// <summary>Base for tests that need one running roamd on a fresh data dir (started per test).</summary>
public abstract class RoamdTest : IAsyncLifetime
{
    protected TestDirectory Dir { get; } = new();

    protected RoamdProcess Roamd { get; private set; } = null!;

    protected string DataDir => Path.Combine(Dir.Path, "data");

    /// <summary>Extra roamd arguments (e.g. --nbd-listen).</summary>
    protected virtual string[] RoamdArguments => [];

    /// <summary>Extra environment for roamd.</summary>
    protected virtual IReadOnlyDictionary<string, string>? RoamdEnvironment => null;

    public async Task InitializeAsync() => Roamd = await RoamdProcess.StartAsync(DataDir, RoamdArguments, RoamdEnvironment);

    public async Task DisposeAsync()
    {
        await Roamd.DisposeAsync();
        Dir.Dispose();
    }

    protected Task<CliResult> Roam(params string[] arguments) => RoamRunner.RunAsync(Roamd.ControlSocket, arguments);

    protected async Task<System.Text.Json.JsonElement> ShowAsync(string volume) =>
        (await Roam("volume", "show", volume, "--json")).ShouldSucceed().Json;

    /// <summary>Polls until the volume's open connection count is <paramref name="expected"/>.</summary>
    protected async Task WaitForConnectionsAsync(string volume, int expected)
    {
        var deadline = DateTime.UtcNow.AddSeconds(15);
        int count;
        while ((count = (await ShowAsync(volume)).GetProperty("openConnections").GetInt32()) != expected)
        {
            Assert.True(DateTime.UtcNow < deadline, $"volume {volume} has {count} open connection(s), expected {expected}");
            await Task.Delay(50);
        }
    }
}
