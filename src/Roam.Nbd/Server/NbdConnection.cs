using System.IO.Pipelines;
using Microsoft.Extensions.Logging;
using Roam.Nbd.Protocol;

namespace Roam.Nbd.Server;

/// <summary>
/// One NBD client, from the first handshake byte to close. The protocol sees only a duplex pipe, so
/// tests can run it over in-memory pipes; the listener owns the socket. Two failure kinds never mix:
/// a per-request error becomes an error reply and the session goes on; a protocol error
/// (<see cref="NbdProtocolException"/>) ends the connection through <see cref="Break"/>.
/// </summary>
internal sealed partial class NbdConnection
{
    private readonly PipeReader _input;
    private readonly PipeWriter _output;
    private readonly INbdExportProvider _exports;
    private readonly NbdServerOptions _options;
    private readonly ILogger _logger;
    private readonly NbdReplyWriter _replies;
    private readonly Lock _lifetimeGate = new();
    private volatile bool _shuttingDown;
    private bool _ended;
    private NbdExport? _export;

    public NbdConnection(long id, IDuplexPipe transport, INbdExportProvider exports, NbdServerOptions options, ILogger logger)
    {
        Id = id;
        _input = transport.Input;
        _output = transport.Output;
        _exports = exports;
        _options = options;
        _logger = logger;
        _replies = new NbdReplyWriter(_output);
    }

    public long Id { get; }

    public string? ExportName => _export?.Name;

    /// <summary>Runs the handshake and then the transmission phase until the client leaves or the server stops.</summary>
    public async Task RunAsync()
    {
        try
        {
            if (await NegotiateAsync().ConfigureAwait(false))
                await TransmitAsync().ConfigureAwait(false);
        }
        catch (NbdProtocolException ex)
        {
            Break(ex);
        }
        catch (Exception ex) when (ex is IOException or OperationCanceledException or ObjectDisposedException or System.Net.Sockets.SocketException)
        {
            Log.ConnectionLost(_logger, Id, ex.Message);
        }
        finally
        {
            lock (_lifetimeGate) _ended = true;
            try
            {
                await _input.CompleteAsync().ConfigureAwait(false);
                // Completing the writer flushes what is still buffered, which fails when the client is
                // already gone (replies it never read): the connection is over either way.
                await _output.CompleteAsync().ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is IOException or ObjectDisposedException or System.Net.Sockets.SocketException)
            {
                Log.ConnectionLost(_logger, Id, ex.Message);
            }
            finally
            {
                _export?.Dispose(); // the volume's lease, which would otherwise block its deletion
            }
        }
    }

    /// <summary>
    /// Soft disconnect (the server is stopping): stop reading new requests, finish those in flight,
    /// flush, close. In the handshake a client waiting between options is closed at once; an option
    /// already on its way in is answered NBD_REP_ERR_SHUTDOWN (ABORT still gets its ACK).
    /// </summary>
    public void BeginShutdown()
    {
        // The server calls this on a snapshot of its connections, so the connection may have ended
        // (and completed its pipes) in the meantime; then there is nothing left to wake.
        lock (_lifetimeGate)
        {
            if (_ended) return;
            _shuttingDown = true;
            _input.CancelPendingRead();
        }
    }

    /// <summary>The one door out for protocol errors: log once, and the caller's finally closes both pipes.</summary>
    private void Break(NbdProtocolException ex) => Log.ProtocolError(_logger, Id, ex.Rejection, ex.Message);
}
