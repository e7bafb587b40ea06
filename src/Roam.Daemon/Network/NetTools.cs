using System.Diagnostics;

namespace Roam.Daemon.Network;

/// <summary>
/// Runs the host's network tools (iproute2's ip, nft, dnsmasq) and turns their failures into a <see cref="NetworkException"/>
/// that names the command and what it said. Setting up links needs CAP_NET_ADMIN: without root, roamd says so first.
/// </summary>
internal static class NetTools
{
    public static bool IsRoot => Environment.IsPrivilegedProcess;

    public static void RequireRoot(string what)
    {
        if (!IsRoot)
            throw new NetworkException(NetworkError.NeedsRoot,
                $"{what} needs root (bridges, taps, DHCP and NAT need CAP_NET_ADMIN), and roamd runs as an ordinary user: run roamd as root, or use --network none");
    }

    /// <summary>Runs <paramref name="tool"/> and returns its standard output; a non-zero exit throws with its stderr.</summary>
    public static async Task<string> RunAsync(string tool, IEnumerable<string> arguments, CancellationToken ct, string? stdin = null)
    {
        var start = new ProcessStartInfo(tool)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = stdin is not null,
            UseShellExecute = false,
        };
        foreach (var a in arguments) start.ArgumentList.Add(a);
        Process process;
        try { process = Process.Start(start) ?? throw new InvalidOperationException(tool); }
        catch (System.ComponentModel.Win32Exception ex)
        {
            throw new NetworkException(NetworkError.ToolFailed, $"cannot run {tool} ({ex.Message}): install {PackageOf(tool)}", ex);
        }
        using (process)
        {
            if (stdin is not null)
            {
                await process.StandardInput.WriteAsync(stdin.AsMemory(), ct).ConfigureAwait(false);
                process.StandardInput.Close();
            }
            var output = process.StandardOutput.ReadToEndAsync(ct);
            var error = process.StandardError.ReadToEndAsync(ct);
            await process.WaitForExitAsync(ct).ConfigureAwait(false);
            if (process.ExitCode != 0)
            {
                var said = (await error.ConfigureAwait(false)).Trim();
                throw new NetworkException(NetworkError.ToolFailed,
                    $"{tool} {string.Join(' ', start.ArgumentList)} failed (exit code {process.ExitCode}){(said.Length > 0 ? ": " + said : "")}");
            }
            return await output.ConfigureAwait(false);
        }
    }

    public static Task<string> IpAsync(CancellationToken ct, params string[] arguments) => RunAsync("ip", arguments, ct);

    /// <summary>Whether the link <paramref name="name"/> exists in this network namespace.</summary>
    public static bool LinkExists(string name) => Directory.Exists(Path.Combine("/sys/class/net", name));

    public static bool IsBridge(string name) => Directory.Exists(Path.Combine("/sys/class/net", name, "bridge"));

    private static string PackageOf(string tool) => tool switch
    {
        "ip" => "iproute2",
        "nft" => "nftables",
        "dnsmasq" => "dnsmasq-base",
        _ => tool,
    };
}
