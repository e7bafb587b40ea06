using System.Globalization;
using System.Security.Cryptography;

namespace Roam.Daemon.Network;

/// <summary>A NIC's Ethernet address, kept in the VM's definition so that it follows the VM (ARP caches, DHCP leases).</summary>
internal static class MacAddress
{
    /// <summary>QEMU's own prefix (as libvirt uses it): locally administered in practice, never a real vendor's card.</summary>
    private static readonly byte[] QemuPrefix = [0x52, 0x54, 0x00];

    public static string Generate()
    {
        Span<byte> mac = stackalloc byte[6];
        QemuPrefix.CopyTo(mac);
        RandomNumberGenerator.Fill(mac[3..]);
        return Format(mac);
    }

    /// <summary>Parses aa:bb:cc:dd:ee:ff (or with dashes) into its lower-case colon form; a multicast or all-zero address is refused.</summary>
    public static string Parse(string text)
    {
        var parts = text.Trim().Split(text.Contains('-', StringComparison.Ordinal) ? '-' : ':');
        Span<byte> mac = stackalloc byte[6];
        if (parts.Length != 6) throw Invalid(text, "six hexadecimal octets, e.g. 52:54:00:12:34:56");
        for (int i = 0; i < 6; i++)
        {
            if (parts[i].Length != 2 || !byte.TryParse(parts[i], NumberStyles.HexNumber, CultureInfo.InvariantCulture, out mac[i]))
                throw Invalid(text, "six hexadecimal octets, e.g. 52:54:00:12:34:56");
        }
        if ((mac[0] & 1) != 0) throw Invalid(text, "a unicast address (the first octet's lowest bit clear)");
        if (!mac.ContainsAnyExcept((byte)0)) throw Invalid(text, "an address other than 00:00:00:00:00:00");
        return Format(mac);
    }

    private static string Format(ReadOnlySpan<byte> mac) => string.Join(':', mac.ToArray().Select(b => b.ToString("x2", CultureInfo.InvariantCulture)));

    private static NetworkException Invalid(string text, string need) =>
        new(NetworkError.InvalidRequest, $"invalid MAC address '{text}': use {need}");
}
