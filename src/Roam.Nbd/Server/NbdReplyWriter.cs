using System.Runtime.CompilerServices;
using System.Buffers;
using System.Buffers.Binary;
using System.IO.Pipelines;
using Roam.Nbd.Protocol;
using Roam.Storage.Devices;

namespace Roam.Nbd.Server;

/// <summary>
/// Serialises replies from concurrently completing requests onto one pipe: each reply (header and
/// data) is written and flushed under a lock, so replies never interleave, though they may leave in
/// any order (NBD matches them by cookie).
/// </summary>
internal sealed class NbdReplyWriter(PipeWriter output)
{
    private readonly SemaphoreSlim _lock = new(1, 1);

    public bool StructuredReplies { get; set; }

    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))]
    public async ValueTask SimpleAsync(ulong cookie, NbdError error, ReadOnlyMemory<byte> data = default)
    {
        await _lock.WaitAsync().ConfigureAwait(false);
        try
        {
            var span = output.GetSpan(NbdProtocol.SimpleReplyHeaderSize);
            BinaryPrimitives.WriteUInt32BigEndian(span, NbdProtocol.SimpleReplyMagic);
            BinaryPrimitives.WriteUInt32BigEndian(span[4..], (uint)error);
            BinaryPrimitives.WriteUInt64BigEndian(span[8..], cookie);
            output.Advance(NbdProtocol.SimpleReplyHeaderSize);
            if (!data.IsEmpty) output.Write(data.Span);
            await output.FlushAsync().ConfigureAwait(false);
        }
        finally { _lock.Release(); }
    }

    /// <summary>
    /// A successful READ: one OFFSET_DATA chunk (never fragmented, which is why DF is free to honour).
    /// An empty READ gets a lone NONE chunk instead: OFFSET_DATA must describe at least one byte, and
    /// once structured replies are negotiated a READ may not be answered with a simple reply.
    /// </summary>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))]
    public async ValueTask ReadDataAsync(ulong cookie, ulong offset, ReadOnlyMemory<byte> data)
    {
        if (!StructuredReplies)
        {
            await SimpleAsync(cookie, NbdError.None, data).ConfigureAwait(false);
            return;
        }
        await _lock.WaitAsync().ConfigureAwait(false);
        try
        {
            if (data.IsEmpty)
            {
                WriteChunkHeader(output.GetSpan(NbdProtocol.StructuredReplyHeaderSize), cookie, NbdReplyFlags.Done, NbdReplyType.None, 0);
                output.Advance(NbdProtocol.StructuredReplyHeaderSize);
            }
            else
            {
                var span = output.GetSpan(NbdProtocol.StructuredReplyHeaderSize + 8);
                WriteChunkHeader(span, cookie, NbdReplyFlags.Done, NbdReplyType.OffsetData, 8 + data.Length);
                BinaryPrimitives.WriteUInt64BigEndian(span[NbdProtocol.StructuredReplyHeaderSize..], offset);
                output.Advance(NbdProtocol.StructuredReplyHeaderSize + 8);
                output.Write(data.Span);
            }
            await output.FlushAsync().ConfigureAwait(false);
        }
        finally { _lock.Release(); }
    }

    /// <summary>Success without data: always a simple reply, which the spec allows for every command but READ.</summary>
    public ValueTask DoneAsync(ulong cookie) => SimpleAsync(cookie, NbdError.None);

    /// <summary>An error; with structured replies an ERROR chunk carrying a message.</summary>
    public async ValueTask ErrorAsync(ulong cookie, NbdError error, string message)
    {
        if (!StructuredReplies)
        {
            await SimpleAsync(cookie, error).ConfigureAwait(false);
            return;
        }
        var text = System.Text.Encoding.UTF8.GetBytes(message.Length > 512 ? message[..512] : message);
        await _lock.WaitAsync().ConfigureAwait(false);
        try
        {
            int payload = 4 + 2 + text.Length;
            var span = output.GetSpan(NbdProtocol.StructuredReplyHeaderSize + payload);
            WriteChunkHeader(span, cookie, NbdReplyFlags.Done, NbdReplyType.Error, payload);
            var body = span[NbdProtocol.StructuredReplyHeaderSize..];
            BinaryPrimitives.WriteUInt32BigEndian(body, (uint)error);
            BinaryPrimitives.WriteUInt16BigEndian(body[4..], (ushort)text.Length);
            text.CopyTo(body[6..]);
            output.Advance(NbdProtocol.StructuredReplyHeaderSize + payload);
            await output.FlushAsync().ConfigureAwait(false);
        }
        finally { _lock.Release(); }
    }

    /// <summary>BLOCK_STATUS for base:allocation: (length u32, flags u32) descriptors after the context id.</summary>
    public async ValueTask BlockStatusAsync(ulong cookie, uint contextId, IReadOnlyList<Extent> extents)
    {
        await _lock.WaitAsync().ConfigureAwait(false);
        try
        {
            int payload = 4 + 8 * extents.Count;
            var span = output.GetSpan(NbdProtocol.StructuredReplyHeaderSize + payload);
            WriteChunkHeader(span, cookie, NbdReplyFlags.Done, NbdReplyType.BlockStatus, payload);
            var body = span[NbdProtocol.StructuredReplyHeaderSize..];
            BinaryPrimitives.WriteUInt32BigEndian(body, contextId);
            int at = 4;
            foreach (var e in extents)
            {
                var flags = (e.IsHole ? NbdAllocationFlags.Hole : 0) | (e.IsZero ? NbdAllocationFlags.Zero : 0);
                BinaryPrimitives.WriteUInt32BigEndian(body[at..], (uint)e.Length);
                BinaryPrimitives.WriteUInt32BigEndian(body[(at + 4)..], (uint)flags);
                at += 8;
            }
            output.Advance(NbdProtocol.StructuredReplyHeaderSize + payload);
            await output.FlushAsync().ConfigureAwait(false);
        }
        finally { _lock.Release(); }
    }

    private static void WriteChunkHeader(Span<byte> span, ulong cookie, NbdReplyFlags flags, NbdReplyType type, int length)
    {
        BinaryPrimitives.WriteUInt32BigEndian(span, NbdProtocol.StructuredReplyMagic);
        BinaryPrimitives.WriteUInt16BigEndian(span[4..], (ushort)flags);
        BinaryPrimitives.WriteUInt16BigEndian(span[6..], (ushort)type);
        BinaryPrimitives.WriteUInt64BigEndian(span[8..], cookie);
        BinaryPrimitives.WriteUInt32BigEndian(span[16..], (uint)length);
    }
}
