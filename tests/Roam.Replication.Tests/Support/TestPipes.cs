using System.IO.Pipelines;

namespace Roam.Replication.Tests.Support;

/// <summary>Two duplex pipes wired back to back: what one side writes, the other reads.</summary>
public static class TestPipes
{
    public static (IDuplexPipe Client, IDuplexPipe Server) Connected()
    {
        var toServer = new Pipe();
        var toClient = new Pipe();
        return (new Duplex(toClient.Reader, toServer.Writer), new Duplex(toServer.Reader, toClient.Writer));
    }

    private sealed record Duplex(PipeReader Input, PipeWriter Output) : IDuplexPipe;
}
