using System.Runtime.CompilerServices;
using Roam.Storage.Devices;

namespace Roam.Storage.Layers;

/// <summary>
/// Admission of changes (write, zero, trim) to a primary volume, which <see cref="WriteFenceLayer"/> asks on every
/// change: frozen (a hand-over begins), new changes wait; drained, none is in flight; closed (the volume was handed
/// over, or lost a split brain), every waiting and later change fails with a read-only error, on NBD connections
/// already open too. Entering is a counter under a short lock: no allocation unless the fence is frozen.
/// </summary>
public sealed class WriteFence
{
    private readonly Lock _gate = new();
    private int _active;
    private TaskCompletionSource? _frozen;
    private TaskCompletionSource? _drained;
    private string? _closed;

    public bool IsFrozen
    {
        get { lock (_gate) return _frozen is not null; }
    }

    public string? ClosedReason
    {
        get { lock (_gate) return _closed; }
    }

    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    public async ValueTask<Pass> EnterAsync(CancellationToken cancellationToken)
    {
        while (true)
        {
            Task wait;
            lock (_gate)
            {
                if (_closed is not null) throw new BlockDeviceException(BlockDeviceError.ReadOnly, _closed);
                if (_frozen is null)
                {
                    _active++;
                    return new Pass(this);
                }
                wait = _frozen.Task;
            }
            await wait.WaitAsync(cancellationToken).ConfigureAwait(false);
        }
    }

    private void Exit()
    {
        TaskCompletionSource? drained = null;
        lock (_gate)
        {
            if (--_active == 0)
            {
                drained = _drained;
                _drained = null;
            }
        }
        drained?.TrySetResult();
    }

    /// <summary>New changes wait from now on.</summary>
    public void Freeze()
    {
        lock (_gate) _frozen ??= new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
    }

    /// <summary>Completes when no change admitted before the freeze is still running.</summary>
    public Task DrainAsync()
    {
        lock (_gate)
        {
            if (_active == 0) return Task.CompletedTask;
            _drained ??= new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            return _drained.Task;
        }
    }

    /// <summary>Lets the waiting changes through (the hand-over did not happen).</summary>
    public void Thaw()
    {
        TaskCompletionSource? frozen;
        lock (_gate)
        {
            frozen = _frozen;
            _frozen = null;
        }
        frozen?.TrySetResult();
    }

    /// <summary>Refuses every waiting and later change (the volume is not primary here any more).</summary>
    public void Close(string reason)
    {
        TaskCompletionSource? frozen;
        lock (_gate)
        {
            _closed = reason;
            frozen = _frozen;
            _frozen = null;
        }
        frozen?.TrySetResult();
    }

    /// <summary>Admits changes again after <see cref="Close"/> (a hand-over in doubt turned out not to have happened).</summary>
    public void Reopen()
    {
        lock (_gate) _closed = null;
    }

    public readonly struct Pass(WriteFence fence) : IDisposable
    {
        public void Dispose() => fence?.Exit();
    }
}
