using System.Net;

namespace Roam.Daemon.Hosting;

/// <summary>What roamd was asked to do, after the command line and the config file are merged.</summary>
internal sealed record RoamdOptions(string DataDir, IPEndPoint? NbdListen)
{
    public const string DefaultDataDir = "/var/lib/roam";
    public const int DefaultNbdPort = 10809;

    public string ControlSocket => Path.Combine(DataDir, "control.sock");

    public string NbdSocket => Path.Combine(DataDir, "nbd.sock");

    /// <summary>Parses ADDR[:PORT] ("127.0.0.1", "[::1]:10809", "localhost:10809"); the port defaults to 10809.</summary>
    public static bool TryParseListen(string text, out IPEndPoint? endpoint)
    {
        endpoint = null;
        text = text.Trim();
        if (text.Length == 0) return false;
        string host = text;
        int port = DefaultNbdPort;
        int colon = text.LastIndexOf(':');
        bool bracketed = text.StartsWith('[');
        bool hasPort = bracketed ? text.Contains("]:", StringComparison.Ordinal) : colon > 0 && text.IndexOf(':') == colon;
        if (hasPort)
        {
            if (!int.TryParse(text.AsSpan(colon + 1), out port) || port is < 0 or > 65535) return false;
            host = text[..colon];
        }
        if (bracketed)
        {
            if (!host.EndsWith(']')) return false;
            host = host[1..^1];
        }
        IPAddress? address = host.Equals("localhost", StringComparison.OrdinalIgnoreCase) ? IPAddress.Loopback
            : IPAddress.TryParse(host, out var parsed) ? parsed : null;
        if (address is null) return false;
        endpoint = new IPEndPoint(address, port);
        return true;
    }
}
