using System.Diagnostics.CodeAnalysis;
using System.Globalization;
using System.Net;

namespace Roam.Peers.Trust;

/// <summary>
/// "host:port" where host is a DNS name, an IPv4 address or a bracketed IPv6 address
/// ("[fd00::2]:10810"). The port is required: a guessed default would connect somewhere unintended.
/// </summary>
public readonly record struct PeerAddress(string Host, int Port)
{
    public static PeerAddress Parse(string text) =>
        TryParse(text, out var address, out var error) ? address : throw new FormatException(error);

    public static bool TryParse([NotNullWhen(true)] string? text, out PeerAddress address, [NotNullWhen(false)] out string? error)
    {
        address = default;
        text = text?.Trim();
        if (string.IsNullOrEmpty(text))
        {
            error = "the address is empty; expected host:port";
            return false;
        }
        int colon = text.LastIndexOf(':');
        if (colon <= 0 || colon == text.Length - 1)
        {
            error = $"'{text}' has no port; expected host:port (an IPv6 address goes in brackets: [fd00::2]:{Protocol.PeerProtocol.DefaultPort})";
            return false;
        }
        var host = text[..colon];
        var portText = text[(colon + 1)..];
        if (!int.TryParse(portText, NumberStyles.None, CultureInfo.InvariantCulture, out int port) || port is < 1 or > 65535)
        {
            error = $"'{portText}' in '{text}' is not a port (1-65535)";
            return false;
        }
        if (host.StartsWith('['))
        {
            if (!host.EndsWith(']') || !IPAddress.TryParse(host[1..^1], out var v6) || v6.AddressFamily != System.Net.Sockets.AddressFamily.InterNetworkV6)
            {
                error = $"'{host}' in '{text}' is not a bracketed IPv6 address";
                return false;
            }
            host = host[1..^1];
        }
        else if (host.Contains(':'))
        {
            error = $"'{text}' looks like an IPv6 address without brackets; write [address]:port";
            return false;
        }
        else if (Uri.CheckHostName(host) is not (UriHostNameType.Dns or UriHostNameType.IPv4))
        {
            error = $"'{host}' in '{text}' is not a host name or IPv4 address";
            return false;
        }
        address = new PeerAddress(host, port);
        error = null;
        return true;
    }

    public override string ToString() =>
        Host.Contains(':') ? $"[{Host}]:{Port.ToString(CultureInfo.InvariantCulture)}" : $"{Host}:{Port.ToString(CultureInfo.InvariantCulture)}";
}
