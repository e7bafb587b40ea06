using System.ComponentModel;
using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;

namespace Roam.Daemon.Jobs;

/// <summary>
/// qemu-img, for the image formats roamd does not parse itself (qcow2). Progress comes from
/// `convert -p`, which prints "    (12.34/100%)\r" even into a pipe.
/// </summary>
internal sealed partial class QemuImg
{
    public const string MissingMessage = "qemu-img is not installed, and qcow2 images need it (Debian/Ubuntu: apt-get install qemu-utils)";

    public string Executable { get; init; } = "qemu-img";

    [GeneratedRegex(@"\((\d+(?:\.\d+)?)/100%\)")]
    private static partial Regex ProgressPattern();

    /// <summary>The virtual size of an image, from `qemu-img info --output=json`.</summary>
    public async Task<long> VirtualSizeAsync(string path, string format, CancellationToken cancellationToken)
    {
        var stdout = new StringBuilder();
        // -U: read without taking the image lock, so an image some VM has open can still be inspected.
        var (exit, stderr) = await RunAsync(["info", "-U", "--output=json", "-f", format, path], line => stdout.AppendLine(line), cancellationToken).ConfigureAwait(false);
        if (exit != 0) throw new JobException(JobError.BadImage, $"qemu-img cannot read {path} as {format}: {LastLine(stderr)}");
        try
        {
            using var doc = JsonDocument.Parse(stdout.ToString());
            return doc.RootElement.GetProperty("virtual-size").GetInt64();
        }
        catch (Exception ex) when (ex is JsonException or KeyNotFoundException or InvalidOperationException or FormatException)
        {
            throw new JobException(JobError.ToolFailed, $"qemu-img info gave no virtual size for {path}");
        }
    }

    /// <summary>Runs `qemu-img convert -p ...`, reporting its percentage; fails with qemu-img's last error line.</summary>
    public async Task ConvertAsync(IReadOnlyList<string> arguments, Action<double> percent, CancellationToken cancellationToken)
    {
        var (exit, stderr) = await RunAsync(["convert", "-p", .. arguments], line =>
        {
            var match = ProgressPattern().Match(line);
            if (match.Success) percent(double.Parse(match.Groups[1].ValueSpan, CultureInfo.InvariantCulture));
        }, cancellationToken).ConfigureAwait(false);
        cancellationToken.ThrowIfCancellationRequested();
        if (exit != 0) throw new IOException($"qemu-img convert failed: {LastLine(stderr)}");
    }

    private async Task<(int ExitCode, string Stderr)> RunAsync(IReadOnlyList<string> arguments, Action<string> onLine, CancellationToken cancellationToken)
    {
        var start = new ProcessStartInfo(Executable)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            UseShellExecute = false,
        };
        foreach (var a in arguments) start.ArgumentList.Add(a);
        Process process;
        try { process = Process.Start(start) ?? throw new JobException(JobError.ToolFailed, MissingMessage); }
        catch (Win32Exception) { throw new JobException(JobError.ToolFailed, MissingMessage); }
        using (process)
        {
            process.StandardInput.Close();
            var stderrTask = process.StandardError.ReadToEndAsync(CancellationToken.None);
            await using (cancellationToken.Register(() => Kill(process)))
            {
                // Progress lines end in '\r', not '\n', so split on both by hand.
                var buffer = new char[4096];
                var line = new StringBuilder();
                int n;
                while ((n = await process.StandardOutput.ReadAsync(buffer, CancellationToken.None).ConfigureAwait(false)) > 0)
                {
                    for (int i = 0; i < n; i++)
                    {
                        if (buffer[i] is '\r' or '\n')
                        {
                            if (line.Length > 0) onLine(line.ToString());
                            line.Clear();
                        }
                        else line.Append(buffer[i]);
                    }
                }
                if (line.Length > 0) onLine(line.ToString());
                await process.WaitForExitAsync(CancellationToken.None).ConfigureAwait(false);
            }
            return (process.ExitCode, await stderrTask.ConfigureAwait(false));
        }
    }

    private static void Kill(Process process)
    {
        try { process.Kill(entireProcessTree: true); }
        catch (InvalidOperationException) { } // already exited
    }

    private static string LastLine(string text)
    {
        var lines = text.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        if (lines.Length == 0) return "no error message";
        var last = lines[^1];
        return last.StartsWith("qemu-img: ", StringComparison.Ordinal) ? last["qemu-img: ".Length..] : last;
    }
}
