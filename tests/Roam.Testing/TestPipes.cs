using System.IO.Pipelines;

namespace Roam.Testing;

/// <summary>Two duplex pipes wired back to back: what one side writes, the other reads.</summary>
public static class TestPipes
{
    public static (IDuplexPipe Client, IDuplexPipe Server) Connected(PipeOptions? options = null)
    {
        var toServer = new Pipe(options ?? PipeOptions.Default);
        var toClient = new Pipe(options ?? PipeOptions.Default);
        return (new Duplex(toClient.Reader, toServer.Writer), new Duplex(toServer.Reader, toClient.Writer));
    }

    private sealed record Duplex(PipeReader Input, PipeWriter Output) : IDuplexPipe;
}
