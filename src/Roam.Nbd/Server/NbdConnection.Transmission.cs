using System.Runtime.CompilerServices;
using System.Buffers;
using Roam.Nbd.Protocol;
using Roam.Storage.Devices;

namespace Roam.Nbd.Server;

internal sealed partial class NbdConnection
{
    // Concurrency in visible phases: one receive loop (here), requests run concurrently up to a
    // budget of slots, replies go through one lock-protected writer. A slot is one request or 1 MiB
    // of buffered WRITE payload, so memory per connection stays bounded whatever the client sends.
    private const int SlotBytes = 1024 * 1024;
    private SemaphoreSlim? _slots;
    private int _slotCount;
    private int _inFlight;
    private TaskCompletionSource? _drained;
    private readonly Lock _inFlightGate = new();
    private readonly Stack<RequestWorker> _idleWorkers = new();
    private bool _workersEnded;

    private async Task TransmitAsync()
    {
        var export = _export!;
        var device = export.Device;
        long size = device.Size;
        _slotCount = Math.Max(_options.MaxInFlightRequests, _options.MaxInFlightBytes / SlotBytes);
        _slots = new SemaphoreSlim(_slotCount, _slotCount);
        long discard = 0;           // bytes of a rejected oversized WRITE still to drop
        bool disconnect = false;

        try
        {
            while (!disconnect)
            {
                var result = await _input.ReadAsync().ConfigureAwait(false);
                if (result.IsCanceled) break; // soft shutdown
                var buffer = result.Buffer;
                try
                {
                    while (true)
                    {
                        if (discard > 0)
                        {
                            long n = Math.Min(discard, buffer.Length);
                            buffer = buffer.Slice(n);
                            discard -= n;
                            if (discard > 0) break;
                        }
                        var parse = buffer;
                        if (!NbdRequest.TryRead(ref parse, out var request)) break;

                        if (request.Command == NbdCommand.Write && request.Length > (uint)_options.MaxPayloadLength)
                        {
                            // Too big to buffer: drop the payload as it streams past and answer EINVAL, in sync.
                            buffer = parse;
                            discard = request.Length;
                            await ReplyErrorAsync(request, NbdError.EINVAL, $"write of {request.Length} bytes exceeds the maximum block size {_options.MaxPayloadLength}").ConfigureAwait(false);
                            continue;
                        }
                        if (request.Command == NbdCommand.Write && parse.Length < request.Length) break; // wait for the payload

                        byte[]? payload = null;
                        if (request.Command == NbdCommand.Write)
                        {
                            payload = ArrayPool<byte>.Shared.Rent((int)request.Length);
                            parse.Slice(0, request.Length).CopyTo(payload);
                            parse = parse.Slice(request.Length);
                        }
                        buffer = parse;

                        if (request.Command == NbdCommand.Disconnect)
                        {
                            if (payload is not null) ArrayPool<byte>.Shared.Return(payload);
                            disconnect = true;
                            break;
                        }
                        await DispatchAsync(request, payload, device, size, export.ReadOnly).ConfigureAwait(false);
                    }
                }
                finally
                {
                    // Kestrel's contract: consume what was parsed, mark everything seen as examined.
                    _input.AdvanceTo(buffer.Start, buffer.End);
                }
                if (result.IsCompleted)
                {
                    if (!buffer.IsEmpty || discard > 0)
                        throw new NbdProtocolException(NbdRejection.TruncatedRequest, "client closed in the middle of a request");
                    break; // EOF between requests: the client went away without NBD_CMD_DISC
                }
            }
        }
        finally
        {
            await DrainAsync().ConfigureAwait(false);
            if (!export.ReadOnly)
            {
                // Closing flushes, as qemu-nbd does, so a client that disconnects without FLUSH still finds its data after a host crash.
                try { await device.FlushAsync(CancellationToken.None).ConfigureAwait(false); }
                catch (IOException ex) { Log.ConnectionLost(_logger, Id, ex.Message); }
            }
            Log.Disconnected(_logger, Id, disconnect ? "NBD_CMD_DISC" : _shuttingDown ? "server shutdown" : "client closed");
        }
    }

    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))]
    private async ValueTask DispatchAsync(NbdRequest request, byte[]? payload, IBlockDevice device, long size, bool readOnly)
    {
        var error = Validate(request, size, readOnly, out var why);
        if (error != NbdError.None)
        {
            if (payload is not null) ArrayPool<byte>.Shared.Return(payload);
            await ReplyErrorAsync(request, error, why).ConfigureAwait(false);
            return;
        }
        int slots = request.Command is NbdCommand.Write or NbdCommand.Read
            ? Math.Clamp((int)((request.Length + SlotBytes - 1) / SlotBytes), 1, _slotCount)
            : 1;
        // Only this loop acquires, so taking several slots one by one cannot deadlock.
        for (int i = 0; i < slots; i++) await _slots!.WaitAsync().ConfigureAwait(false);
        RequestWorker worker;
        lock (_inFlightGate)
        {
            _inFlight++;
            worker = _idleWorkers.Count > 0 ? _idleWorkers.Pop() : new RequestWorker(this);
        }
        worker.Post(request, payload, device, slots);
    }

    /// <summary>Runs one request on a worker, and gives its slots (and the worker) back.</summary>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))]
    private async ValueTask RunRequestAsync(RequestWorker worker, NbdRequest request, byte[]? payload, IBlockDevice device, int slots)
    {
        try
        {
            await ExecuteAsync(request, payload, device).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is IOException or InvalidOperationException or ObjectDisposedException)
        {
            // The reply could not be written: the client is gone. The receive loop sees it too.
            Log.ConnectionLost(_logger, Id, ex.Message);
        }
        finally
        {
            if (payload is not null) ArrayPool<byte>.Shared.Return(payload);
            _slots!.Release(slots);
            lock (_inFlightGate)
            {
                if (_workersEnded) worker.End();
                else _idleWorkers.Push(worker);
                if (--_inFlight == 0) _drained?.TrySetResult();
            }
        }
    }

    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))]
    private async ValueTask ExecuteAsync(NbdRequest request, byte[]? payload, IBlockDevice device)
    {
        long offset = (long)request.Offset;
        bool fua = (request.Flags & NbdCommandFlags.Fua) != 0; // bit tests, not HasFlag: no boxing per request
        var ct = CancellationToken.None; // a request once started runs to completion: its reply is owed
        // A simple reply puts the error before the data, so a READ is read in full into a pooled
        // buffer first; a failure then still gets a proper error reply instead of a dropped connection.
        byte[]? data = request.Command == NbdCommand.Read ? ArrayPool<byte>.Shared.Rent((int)request.Length) : null;
        IReadOnlyList<Extent>? extents = null;
        BlockDeviceException? failure = null;
        try
        {
            // Phase 1, the device. Every storage failure is this request's alone, whether the device
            // classified it (BlockDeviceException) or a system call's error surfaced as it was.
            try
            {
                switch (request.Command)
                {
                    case NbdCommand.Read:
                        await device.ReadAsync(offset, data.AsMemory(0, (int)request.Length), ct).ConfigureAwait(false);
                        break;
                    case NbdCommand.Write:
                        await device.WriteAsync(offset, payload.AsMemory(0, (int)request.Length), fua, ct).ConfigureAwait(false);
                        break;
                    case NbdCommand.Flush:
                        await device.FlushAsync(ct).ConfigureAwait(false);
                        break;
                    case NbdCommand.Trim:
                        await device.TrimAsync(offset, request.Length, fua, ct).ConfigureAwait(false);
                        break;
                    case NbdCommand.WriteZeroes:
                        await device.ZeroAsync(offset, request.Length,
                            mayDeallocate: (request.Flags & NbdCommandFlags.NoHole) == 0,
                            fastOnly: (request.Flags & NbdCommandFlags.FastZero) != 0, fua, ct).ConfigureAwait(false);
                        break;
                    case NbdCommand.Cache:
                        await device.CacheAsync(offset, request.Length, ct).ConfigureAwait(false);
                        break;
                    case NbdCommand.BlockStatus:
                        extents = await device.GetExtentsAsync(offset, request.Length, ct).ConfigureAwait(false);
                        break;
                }
            }
            catch (IOException ex)
            {
                failure = BlockDeviceException.From(ex);
            }
            catch (UnauthorizedAccessException ex)
            {
                // How .NET reports EACCES/EPERM from pwrite (an immutable or re-permissioned file).
                failure = new BlockDeviceException(BlockDeviceError.ReadOnly, ex.Message, ex);
            }

            // Phase 2, the reply. A failure to write it means the client is gone, which the caller handles.
            if (failure is not null)
            {
                Log.RequestFailed(_logger, Id, request.Command, request.Offset, request.Length, failure.Message);
                await ReplyErrorAsync(request, NbdErrors.From(failure.Error), failure.Message).ConfigureAwait(false);
            }
            else if (request.Command == NbdCommand.Read)
                await _replies.ReadDataAsync(request.Cookie, request.Offset, data.AsMemory(0, (int)request.Length)).ConfigureAwait(false);
            else if (request.Command == NbdCommand.BlockStatus)
                await _replies.BlockStatusAsync(request.Cookie, NbdProtocol.BaseAllocationContextId, Clip(request, extents!)).ConfigureAwait(false);
            else
                await _replies.DoneAsync(request.Cookie).ConfigureAwait(false);
        }
        finally
        {
            if (data is not null) ArrayPool<byte>.Shared.Return(data);
        }
    }

    private static IReadOnlyList<Extent> Clip(NbdRequest request, IReadOnlyList<Extent> extents)
    {
        if ((request.Flags & NbdCommandFlags.RequestOne) != 0 && extents.Count > 1) return [extents[0]];
        // A reply needs only to make progress; cap the chunk so a fragmented file cannot make it huge.
        if (extents.Count > 1024) return extents.Take(1024).ToList();
        return extents;
    }

    /// <summary>Validation happens once, here at the edge (nbdkit's validate_request); layers below only assert.</summary>
    private NbdError Validate(NbdRequest request, long size, bool readOnly, out string why)
    {
        why = "";
        if (_shuttingDown) { why = "server is shutting down"; return NbdError.ESHUTDOWN; }
        var allowed = request.Command switch
        {
            NbdCommand.Read => NbdCommandFlags.DontFragment | NbdCommandFlags.Fua,
            NbdCommand.Write => NbdCommandFlags.Fua,
            NbdCommand.Flush => NbdCommandFlags.Fua,
            NbdCommand.Trim => NbdCommandFlags.Fua,
            NbdCommand.Cache => NbdCommandFlags.Fua,
            NbdCommand.WriteZeroes => NbdCommandFlags.Fua | NbdCommandFlags.NoHole | NbdCommandFlags.FastZero,
            NbdCommand.BlockStatus => NbdCommandFlags.RequestOne | NbdCommandFlags.Fua,
            _ => (NbdCommandFlags?)null,
        };
        if (allowed is null) { why = $"unknown command {(ushort)request.Command}"; return NbdError.EINVAL; }
        if ((request.Flags & ~allowed.Value) != 0) { why = $"flags 0x{(ushort)request.Flags:x} not valid for {request.Command}"; return NbdError.EINVAL; }
        if ((request.Flags & NbdCommandFlags.DontFragment) != 0 && !_replies.StructuredReplies) { why = "DF needs structured replies"; return NbdError.EINVAL; }

        bool isWrite = request.Command is NbdCommand.Write or NbdCommand.Trim or NbdCommand.WriteZeroes;
        if (isWrite && readOnly) { why = "export is read-only"; return NbdError.EPERM; }
        if (request.Command == NbdCommand.Flush)
        {
            if (request.Offset != 0 || request.Length != 0) { why = "flush takes no range"; return NbdError.EINVAL; }
            return NbdError.None;
        }
        if (request.Command == NbdCommand.Read && request.Length > (uint)_options.MaxPayloadLength)
        {
            why = $"read of {request.Length} bytes exceeds the maximum block size {_options.MaxPayloadLength}";
            return NbdError.EINVAL;
        }
        if (request.Offset > (ulong)size || request.Length > (ulong)size - request.Offset)
        {
            why = $"range {request.Offset}+{request.Length} is beyond the end of the export ({size} bytes)";
            return request.Command is NbdCommand.Write or NbdCommand.WriteZeroes ? NbdError.ENOSPC : NbdError.EINVAL;
        }
        if (request.Command == NbdCommand.BlockStatus)
        {
            if (!_replies.StructuredReplies || !_baseAllocationSelected) { why = "no metadata context was negotiated"; return NbdError.EINVAL; }
            if (request.Length == 0) { why = "block status of an empty range"; return NbdError.EINVAL; }
        }
        return NbdError.None;
    }

    private ValueTask ReplyErrorAsync(NbdRequest request, NbdError error, string why)
    {
        Log.RequestRejected(_logger, Id, request.Command, error, why);
        return _replies.ErrorAsync(request.Cookie, error, why);
    }

    private async Task DrainAsync()
    {
        Task? wait = null;
        lock (_inFlightGate)
        {
            if (_inFlight != 0)
            {
                _drained = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
                wait = _drained.Task;
            }
        }
        if (wait is not null)
        {
            try { await wait.WaitAsync(_options.ShutdownGrace).ConfigureAwait(false); }
            catch (TimeoutException) { Log.DrainTimedOut(_logger, Id, _inFlight); }
        }
        // The idle workers end; one still busy past the grace period ends after its request (it finds the stack gone).
        lock (_inFlightGate)
        {
            _workersEnded = true;
            while (_idleWorkers.Count > 0) _idleWorkers.Pop().End();
        }
    }
}
