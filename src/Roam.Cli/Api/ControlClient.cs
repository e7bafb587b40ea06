using System.Net.Http.Headers;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization.Metadata;
using Roam.Control;

namespace Roam.Cli.Api;

/// <summary>
/// HTTP/JSON to roamd over its Unix control socket. Error answers become
/// <see cref="ControlApiException"/> with roamd's one-line reason; a socket that cannot be reached
/// becomes <see cref="DaemonUnreachableException"/>.
/// </summary>
internal sealed class ControlClient : IDisposable
{
    private static readonly TimeSpan RequestTimeout = TimeSpan.FromSeconds(60);
    private readonly HttpClient _http;

    public ControlClient(string socketPath)
    {
        SocketPath = socketPath;
        var handler = new SocketsHttpHandler
        {
            ConnectCallback = async (_, cancellationToken) =>
            {
                var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
                try
                {
                    await socket.ConnectAsync(new UnixDomainSocketEndPoint(socketPath), cancellationToken).ConfigureAwait(false);
                    return new NetworkStream(socket, ownsSocket: true);
                }
                catch
                {
                    socket.Dispose();
                    throw;
                }
            },
        };
        // The host name is never resolved: every connection goes to the socket.
        _http = new HttpClient(handler) { BaseAddress = new Uri("http://roamd/"), Timeout = Timeout.InfiniteTimeSpan };
    }

    public string SocketPath { get; }

    public async Task<T> GetAsync<T>(string path, JsonTypeInfo<T> result, CancellationToken cancellationToken)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, path);
        return await SendAsync(request, result, cancellationToken).ConfigureAwait(false);
    }

    public async Task<T> PostAsync<TBody, T>(string path, TBody body, JsonTypeInfo<TBody> bodyType, JsonTypeInfo<T> result, CancellationToken cancellationToken)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, path)
        {
            Content = new StringContent(JsonSerializer.Serialize(body, bodyType), Encoding.UTF8, new MediaTypeHeaderValue("application/json")),
        };
        return await SendAsync(request, result, cancellationToken).ConfigureAwait(false);
    }

    public async Task<T> PostAsync<T>(string path, JsonTypeInfo<T> result, CancellationToken cancellationToken)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, path);
        return await SendAsync(request, result, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>A POST that roamd may answer only after <paramref name="timeout"/> (it waits for something on purpose).</summary>
    public async Task<T> PostAsync<T>(string path, JsonTypeInfo<T> result, TimeSpan timeout, CancellationToken cancellationToken)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, path);
        return await SendAsync(request, result, cancellationToken, timeout).ConfigureAwait(false);
    }

    public async Task DeleteAsync(string path, CancellationToken cancellationToken)
    {
        using var request = new HttpRequestMessage(HttpMethod.Delete, path);
        using var response = await SendCoreAsync(request, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>A DELETE that roamd answers with a record.</summary>
    public async Task<T> DeleteAsync<T>(string path, JsonTypeInfo<T> result, CancellationToken cancellationToken)
    {
        using var request = new HttpRequestMessage(HttpMethod.Delete, path);
        return await SendAsync(request, result, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>A path segment for a user-typed name (volume names never need escaping, but typos might).</summary>
    public static string Segment(string value) => Uri.EscapeDataString(value);

    private async Task<T> SendAsync<T>(HttpRequestMessage request, JsonTypeInfo<T> result, CancellationToken cancellationToken, TimeSpan? timeout = null)
    {
        using var response = await SendCoreAsync(request, cancellationToken, timeout).ConfigureAwait(false);
        var body = await response.Content.ReadAsByteArrayAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            return JsonSerializer.Deserialize(body, result) ?? throw new JsonException("empty answer");
        }
        catch (JsonException ex)
        {
            throw new ControlApiException((int)response.StatusCode, $"roamd sent an answer this roam does not understand ({ex.Message}); are roam and roamd the same version?");
        }
    }

    private async Task<HttpResponseMessage> SendCoreAsync(HttpRequestMessage request, CancellationToken cancellationToken, TimeSpan? longer = null)
    {
        HttpResponseMessage response;
        var limit = longer is { } extra && extra > RequestTimeout ? extra : RequestTimeout;
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(limit);
        try
        {
            response = await _http.SendAsync(request, timeout.Token).ConfigureAwait(false);
        }
        catch (HttpRequestException ex)
        {
            throw Unreachable(ex);
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            throw new DaemonUnreachableException($"roamd at {SocketPath} did not answer within {limit.TotalSeconds:0} s");
        }
        if (response.IsSuccessStatusCode) return response;
        using (response)
        {
            string text = await response.Content.ReadAsStringAsync(cancellationToken).ConfigureAwait(false);
            string? message = null;
            try { message = JsonSerializer.Deserialize(text, ControlJsonContext.Default.ErrorResponse)?.Error; }
            catch (JsonException) { }
            throw new ControlApiException((int)response.StatusCode,
                string.IsNullOrWhiteSpace(message) ? $"roamd answered HTTP {(int)response.StatusCode} {response.ReasonPhrase}" : message);
        }
    }

    private DaemonUnreachableException Unreachable(HttpRequestException ex)
    {
        var socketError = ex.InnerException as SocketException ?? ex.InnerException?.InnerException as SocketException;
        if (socketError?.SocketErrorCode == SocketError.AccessDenied)
            return new DaemonUnreachableException($"cannot reach roamd at {SocketPath}: permission denied (run roam as the user roamd runs as)");
        if (socketError is not null || !File.Exists(SocketPath))
        {
            var dataDir = Path.GetDirectoryName(Path.GetFullPath(SocketPath));
            return new DaemonUnreachableException($"cannot reach roamd at {SocketPath}: is it running? (start it with: roamd --data-dir {dataDir})");
        }
        return new DaemonUnreachableException($"lost the connection to roamd at {SocketPath}: {ex.Message}");
    }

    public void Dispose() => _http.Dispose();
}
