using Roam.Nbd.Protocol;

namespace Roam.Nbd.Server;

public sealed class NbdServerOptions
{
    /// <summary>Requests processed at once per connection; more wait in the socket (back-pressure).</summary>
    public int MaxInFlightRequests { get; set; } = 64;

    /// <summary>WRITE payload bytes buffered at once per connection, beyond which reading pauses.</summary>
    public int MaxInFlightBytes { get; set; } = 64 * 1024 * 1024;

    /// <summary>Largest READ or WRITE accepted (advertised as the maximum block size).</summary>
    public int MaxPayloadLength { get; set; } = NbdProtocol.MaxPayloadLength;

    /// <summary>How long a soft shutdown waits for requests in flight before closing anyway.</summary>
    public TimeSpan ShutdownGrace { get; set; } = TimeSpan.FromSeconds(10);
}
