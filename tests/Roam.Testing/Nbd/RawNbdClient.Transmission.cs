using System.Text;
using Roam.Nbd.Protocol;

namespace Roam.Testing.Nbd;

public sealed partial class RawNbdClient
{
    private readonly Dictionary<ulong, NbdRequest> _pending = [];
    private readonly Dictionary<ulong, ReplyBuilder> _building = [];
    private ulong _nextCookie = 0x1000;

    /// <summary>Requests sent and not yet answered.</summary>
    public int PendingCount => _pending.Count;

    /// <summary>Sends one request (WRITE's payload follows the header) and returns its cookie.</summary>
    public async Task<ulong> SendAsync(NbdCommand command, ulong offset, uint length, NbdCommandFlags flags = NbdCommandFlags.None,
        ReadOnlyMemory<byte> payload = default, ulong? cookie = null)
    {
        ulong c = cookie ?? _nextCookie++;
        var request = new NbdRequest(flags, command, c, offset, length);
        var header = new byte[NbdProtocol.RequestHeaderSize];
        request.WriteTo(header);
        if (command != NbdCommand.Disconnect) _pending[c] = request;
        await WriteAsync(header, payload).ConfigureAwait(false);
        return c;
    }

    /// <summary>
    /// Reads messages until one request's reply is complete (a simple reply, or a structured chunk
    /// with DONE) and returns it; replies may come in any order, matched by cookie.
    /// </summary>
    public async Task<NbdReply> ReceiveAsync()
    {
        while (true)
        {
            var head = await ReadBytesAsync(4).ConfigureAwait(false);
            uint magic = U32(head);
            if (magic == NbdProtocol.SimpleReplyMagic)
                return await ReadSimpleReplyAsync().ConfigureAwait(false);
            if (magic != NbdProtocol.StructuredReplyMagic)
                throw new InvalidDataException($"bad reply magic 0x{magic:x8}");
            if (!StructuredReplies) throw new InvalidDataException("a structured reply although structured replies were not negotiated");
            if (await ReadChunkAsync().ConfigureAwait(false) is { } done) return done;
        }
    }

    /// <summary>Sends one request and waits for its reply; nothing else may be in flight.</summary>
    public async Task<NbdReply> RequestAsync(NbdCommand command, ulong offset, uint length, NbdCommandFlags flags = NbdCommandFlags.None,
        ReadOnlyMemory<byte> payload = default)
    {
        if (_pending.Count != 0) throw new InvalidOperationException("RequestAsync with requests in flight; use SendAsync and ReceiveAsync");
        ulong cookie = await SendAsync(command, offset, length, flags, payload).ConfigureAwait(false);
        var reply = await ReceiveAsync().ConfigureAwait(false);
        if (reply.Cookie != cookie) throw new InvalidDataException($"reply for cookie {reply.Cookie:x} to request {cookie:x}");
        return reply;
    }

    public Task<NbdReply> ReadAsync(ulong offset, uint length, NbdCommandFlags flags = NbdCommandFlags.None) =>
        RequestAsync(NbdCommand.Read, offset, length, flags);

    public Task<NbdReply> WriteAsync(ulong offset, ReadOnlyMemory<byte> data, NbdCommandFlags flags = NbdCommandFlags.None) =>
        RequestAsync(NbdCommand.Write, offset, (uint)data.Length, flags, data);

    public Task<NbdReply> FlushAsync() => RequestAsync(NbdCommand.Flush, 0, 0);

    public Task<NbdReply> TrimAsync(ulong offset, uint length) => RequestAsync(NbdCommand.Trim, offset, length);

    public Task<NbdReply> WriteZeroesAsync(ulong offset, uint length, NbdCommandFlags flags = NbdCommandFlags.None) =>
        RequestAsync(NbdCommand.WriteZeroes, offset, length, flags);

    public Task<NbdReply> BlockStatusAsync(ulong offset, uint length, NbdCommandFlags flags = NbdCommandFlags.None) =>
        RequestAsync(NbdCommand.BlockStatus, offset, length, flags);

    /// <summary>NBD_CMD_DISC: no reply; the server finishes what is in flight and closes.</summary>
    public Task DisconnectAsync() => SendAsync(NbdCommand.Disconnect, 0, 0);

    private async Task<NbdReply> ReadSimpleReplyAsync()
    {
        var b = await ReadBytesAsync(12).ConfigureAwait(false);
        var error = (NbdError)U32(b);
        ulong cookie = U64(b.AsSpan(4));
        var request = TakePending(cookie);
        if (request.Command == NbdCommand.Read && StructuredReplies)
            throw new InvalidDataException("a simple reply to NBD_CMD_READ after structured replies were negotiated");
        if (request.Command == NbdCommand.BlockStatus && error == NbdError.None)
            throw new InvalidDataException("a successful NBD_CMD_BLOCK_STATUS must be a structured reply");
        // Only a successful READ carries data, exactly the requested length.
        var data = request.Command == NbdCommand.Read && error == NbdError.None
            ? await ReadBytesAsync((int)request.Length).ConfigureAwait(false)
            : [];
        return new NbdReply(cookie, request, error, null, data, [], 0, Chunks: 0);
    }

    /// <summary>One structured chunk; returns the finished reply when the chunk carries DONE.</summary>
    private async Task<NbdReply?> ReadChunkAsync()
    {
        var h = await ReadBytesAsync(NbdProtocol.StructuredReplyHeaderSize - 4).ConfigureAwait(false);
        var flags = (NbdReplyFlags)U16(h);
        var type = (NbdReplyType)U16(h.AsSpan(2));
        ulong cookie = U64(h.AsSpan(4));
        uint length = U32(h.AsSpan(12));
        if (!_pending.TryGetValue(cookie, out var request)) throw new InvalidDataException($"chunk for unknown cookie {cookie:x}");
        if (length > NbdProtocol.MaxPayloadLength + 4096) throw new InvalidDataException($"chunk of {length} bytes");
        var p = await ReadBytesAsync((int)length).ConfigureAwait(false);
        if (!_building.TryGetValue(cookie, out var reply)) _building[cookie] = reply = new ReplyBuilder(request);
        reply.Add(type, p);
        if (!flags.HasFlag(NbdReplyFlags.Done)) return null;
        _building.Remove(cookie);
        TakePending(cookie);
        return reply.Finish();
    }

    private NbdRequest TakePending(ulong cookie)
    {
        if (!_pending.Remove(cookie, out var request)) throw new InvalidDataException($"reply for unknown cookie {cookie:x}");
        return request;
    }

    /// <summary>Assembles one structured reply and checks each chunk against the spec's rules for its type.</summary>
    private sealed class ReplyBuilder(NbdRequest request)
    {
        private readonly byte[] _data = request.Command == NbdCommand.Read ? new byte[request.Length] : [];
        private readonly List<(ulong Start, ulong End)> _covered = [];
        private readonly List<BlockExtent> _extents = [];
        private NbdError _error;
        private string? _message;
        private uint _contextId;
        private int _chunks;
        private bool _sawStatus;

        public void Add(NbdReplyType type, byte[] p)
        {
            _chunks++;
            switch (type)
            {
                case NbdReplyType.None:
                    if (p.Length != 0) throw Bad("NBD_REPLY_TYPE_NONE with a payload");
                    break;
                case NbdReplyType.OffsetData:
                    if (request.Command != NbdCommand.Read) throw Bad("OFFSET_DATA in reply to a non-READ");
                    if (p.Length < 9) throw Bad($"OFFSET_DATA of length {p.Length}; the spec says at least 9");
                    p.AsSpan(8).CopyTo(Cover(U64(p), (ulong)(p.Length - 8)));
                    break;
                case NbdReplyType.OffsetHole:
                    if (request.Command != NbdCommand.Read) throw Bad("OFFSET_HOLE in reply to a non-READ");
                    if (p.Length != 12 || U32(p.AsSpan(8)) == 0) throw Bad("OFFSET_HOLE must be 12 bytes with a nonzero size");
                    Cover(U64(p), U32(p.AsSpan(8))).Clear();
                    break;
                case NbdReplyType.BlockStatus:
                    if (request.Command != NbdCommand.BlockStatus) throw Bad("BLOCK_STATUS chunk in reply to another command");
                    if (p.Length < 12 || (p.Length - 4) % 8 != 0) throw Bad($"BLOCK_STATUS of length {p.Length}; the spec says 4 + a positive multiple of 8");
                    if (_sawStatus) throw Bad("two BLOCK_STATUS chunks for one context");
                    _sawStatus = true;
                    _contextId = U32(p);
                    for (int at = 4; at < p.Length; at += 8)
                    {
                        uint len = U32(p.AsSpan(at));
                        if (len == 0) throw Bad("a block status descriptor of length 0");
                        _extents.Add(new BlockExtent(len, (NbdAllocationFlags)U32(p.AsSpan(at + 4))));
                    }
                    break;
                case NbdReplyType.Error:
                case NbdReplyType.ErrorOffset:
                    if (p.Length < 6) throw Bad("an error chunk shorter than 6 bytes");
                    _error = (NbdError)U32(p);
                    if (_error == NbdError.None) throw Bad("an error chunk with error 0");
                    int messageLength = U16(p.AsSpan(4));
                    if (6 + messageLength + (type == NbdReplyType.ErrorOffset ? 8 : 0) != p.Length) throw Bad("an error chunk whose message length does not fit");
                    _message = Encoding.UTF8.GetString(p, 6, messageLength);
                    break;
                default:
                    throw Bad($"unknown chunk type {(ushort)type}");
            }
        }

        public NbdReply Finish()
        {
            if (request.Command == NbdCommand.Read && _error == NbdError.None)
            {
                ulong total = _covered.Aggregate(0UL, (sum, r) => sum + (r.End - r.Start));
                if (total != request.Length) throw Bad($"a successful READ covered {total} of {request.Length} bytes");
            }
            if (request.Command == NbdCommand.BlockStatus && _error == NbdError.None && !_sawStatus)
                throw Bad("a successful BLOCK_STATUS without a BLOCK_STATUS chunk");
            return new NbdReply(request.Cookie, request, _error, _message, _error == NbdError.None ? _data : [], _extents, _contextId, _chunks);
        }

        private Span<byte> Cover(ulong offset, ulong length)
        {
            if (offset < request.Offset || offset + length > request.Offset + request.Length)
                throw Bad($"content chunk {offset}+{length} outside the request {request.Offset}+{request.Length}");
            ulong start = offset - request.Offset, end = start + length;
            if (_covered.Any(r => start < r.End && r.Start < end)) throw Bad("overlapping content chunks");
            _covered.Add((start, end));
            return _data.AsSpan((int)start, (int)length);
        }

        private InvalidDataException Bad(string what) => new($"cookie {request.Cookie:x} ({request.Command}): {what}");
    }
}

/// <summary>One request's complete reply. <see cref="Data"/> is a READ's data; <see cref="Extents"/> a BLOCK_STATUS's.</summary>
public sealed record NbdReply(ulong Cookie, NbdRequest Request, NbdError Error, string? Message, byte[] Data,
    IReadOnlyList<BlockExtent> Extents, uint ContextId, int Chunks)
{
    public NbdReply EnsureSuccess() =>
        Error == NbdError.None ? this : throw new InvalidOperationException($"{Request.Command} {Request.Offset}+{Request.Length} failed: {Error} {Message}");
}

/// <summary>A base:allocation descriptor.</summary>
public readonly record struct BlockExtent(uint Length, NbdAllocationFlags Flags);
