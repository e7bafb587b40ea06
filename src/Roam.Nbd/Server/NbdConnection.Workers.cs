using System.Threading.Tasks.Sources;
using Roam.Nbd.Protocol;
using Roam.Storage.Devices;

namespace Roam.Nbd.Server;

internal sealed partial class NbdConnection
{
    /// <summary>
    /// A long-lived loop that runs the requests posted to it one after another, kept in a per-connection pool (at most
    /// one per slot). A fire-and-forget task per request would allocate a state machine each (a discarded task is
    /// never returned to a pool); a worker waits for its next request on a reusable <see cref="IValueTaskSource"/>.
    /// A posted request runs on a thread-pool thread (queued to that thread's local queue, with no allocation), whose
    /// local queue then also takes the request's file I/O: the request's pooled state machines are mostly rented and
    /// returned on one thread, where the pool keeps them, and the receive loop goes straight back to reading.
    /// </summary>
    private sealed class RequestWorker : IValueTaskSource<bool>
    {
        private readonly NbdConnection _connection;
        private ManualResetValueTaskSourceCore<bool> _next;
        private NbdRequest _request;
        private byte[]? _payload;
        private IBlockDevice? _device;
        private int _slots;

        public RequestWorker(NbdConnection connection)
        {
            _connection = connection;
            _next.RunContinuationsAsynchronously = true;
            _ = RunAsync();
        }

        /// <summary>Runs this request next; the worker is idle (taken from the pool, or new).</summary>
        public void Post(NbdRequest request, byte[]? payload, IBlockDevice device, int slots)
        {
            (_request, _payload, _device, _slots) = (request, payload, device, slots);
            _next.SetResult(true);
        }

        /// <summary>Ends the idle worker's loop (the connection is over).</summary>
        public void End() => _next.SetResult(false);

        private async Task RunAsync()
        {
            while (await new ValueTask<bool>(this, _next.Version).ConfigureAwait(false))
            {
                var (request, payload, device, slots) = (_request, _payload, _device!, _slots);
                (_payload, _device) = (null, null);
                await _connection.RunRequestAsync(this, request, payload, device, slots).ConfigureAwait(false);
            }
        }

        bool IValueTaskSource<bool>.GetResult(short token)
        {
            bool more = _next.GetResult(token);
            _next.Reset(); // before the worker goes back to the pool: the next Post finds it ready
            return more;
        }

        ValueTaskSourceStatus IValueTaskSource<bool>.GetStatus(short token) => _next.GetStatus(token);

        void IValueTaskSource<bool>.OnCompleted(Action<object?> continuation, object? state, short token, ValueTaskSourceOnCompletedFlags flags) =>
            _next.OnCompleted(continuation, state, token, flags);
    }
}
