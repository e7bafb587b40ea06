using System.Buffers;
using System.Buffers.Binary;
using System.Text;
using Roam.Nbd.Protocol;

namespace Roam.Nbd.Server;

internal sealed partial class NbdConnection
{
    private bool _noZeroes;
    private string? _metaContextExport;
    private bool _baseAllocationSelected;

    /// <summary>Fixed newstyle negotiation. True when the client entered transmission with an export.</summary>
    private async Task<bool> NegotiateAsync()
    {
        var hello = new byte[18];
        BinaryPrimitives.WriteUInt64BigEndian(hello, NbdProtocol.InitMagic);
        BinaryPrimitives.WriteUInt64BigEndian(hello.AsSpan(8), NbdProtocol.OptionMagic);
        BinaryPrimitives.WriteUInt16BigEndian(hello.AsSpan(16), (ushort)(NbdHandshakeFlags.FixedNewstyle | NbdHandshakeFlags.NoZeroes));
        await _output.WriteAsync(hello).ConfigureAwait(false);

        var flagBytes = await ReadExactAsync(4).ConfigureAwait(false);
        if (flagBytes is null) return false;
        var clientFlags = (NbdClientFlags)BinaryPrimitives.ReadUInt32BigEndian(flagBytes);
        if ((clientFlags & ~(NbdClientFlags.FixedNewstyle | NbdClientFlags.NoZeroes)) != 0)
            throw new NbdProtocolException(NbdRejection.UnknownClientFlags, $"unknown client flags 0x{(uint)clientFlags:x}");
        _noZeroes = clientFlags.HasFlag(NbdClientFlags.NoZeroes);

        while (true)
        {
            var header = await ReadExactAsync(NbdProtocol.OptionHeaderSize).ConfigureAwait(false);
            if (header is null) return false;
            if (BinaryPrimitives.ReadUInt64BigEndian(header) != NbdProtocol.OptionMagic)
                throw new NbdProtocolException(NbdRejection.BadOptionMagic, "bad option magic");
            var option = (NbdOption)BinaryPrimitives.ReadUInt32BigEndian(header.AsSpan(8));
            uint length = BinaryPrimitives.ReadUInt32BigEndian(header.AsSpan(12));

            if (length > NbdProtocol.MaxOptionLength)
            {
                // Too big to be real; drain it without buffering so the stream stays in sync, then say why.
                // NBD_OPT_EXPORT_NAME cannot be answered with an option reply, so it can only be refused by closing.
                if (length > 16 * 1024 * 1024 || option == NbdOption.ExportName)
                    throw new NbdProtocolException(NbdRejection.OptionTooLong, $"option {option} claims {length} bytes");
                if (!await SkipAsync(length).ConfigureAwait(false)) return false;
                await OptionReplyAsync(option, NbdOptionReply.ErrTooBig, "option too long").ConfigureAwait(false);
                continue;
            }
            var data = await ReadExactAsync((int)length).ConfigureAwait(false);
            if (data is null) return false;
            Log.Option(_logger, Id, option, length);

            if (_shuttingDown && option != NbdOption.Abort)
            {
                // NBD_OPT_ABORT is still acknowledged below; NBD_OPT_EXPORT_NAME has no error reply, so it just closes.
                if (option != NbdOption.ExportName)
                    await OptionReplyAsync(option, NbdOptionReply.ErrShutdown, "server is shutting down").ConfigureAwait(false);
                return false;
            }

            switch (option)
            {
                case NbdOption.ExportName:
                    return await HandleExportNameAsync(data).ConfigureAwait(false);
                case NbdOption.Abort:
                    // The client may already have closed; the ACK is a courtesy.
                    try { await OptionReplyAsync(option, NbdOptionReply.Ack).ConfigureAwait(false); }
                    catch (IOException) { }
                    return false;
                case NbdOption.List:
                    await HandleListAsync(data).ConfigureAwait(false);
                    break;
                case NbdOption.Info:
                case NbdOption.Go:
                    if (await HandleInfoOrGoAsync(option, data).ConfigureAwait(false)) return true;
                    break;
                case NbdOption.StructuredReply:
                    if (data.Length != 0)
                        await OptionReplyAsync(option, NbdOptionReply.ErrInvalid, "structured reply takes no data").ConfigureAwait(false);
                    else
                    {
                        _replies.StructuredReplies = true;
                        await OptionReplyAsync(option, NbdOptionReply.Ack).ConfigureAwait(false);
                    }
                    break;
                case NbdOption.ListMetaContext:
                case NbdOption.SetMetaContext:
                    await HandleMetaContextAsync(option, data).ConfigureAwait(false);
                    break;
                case NbdOption.StartTls:
                    // The server has no TLS at all (NOTLS mode), which the spec answers with ERR_UNSUP; ERR_POLICY is
                    // for a server that has TLS but refuses it. The client may go on in plaintext.
                    await OptionReplyAsync(option, NbdOptionReply.ErrUnsupported, "TLS is not supported by this server").ConfigureAwait(false);
                    break;
                default:
                    await OptionReplyAsync(option, NbdOptionReply.ErrUnsupported, $"option {(uint)option} is not supported").ConfigureAwait(false);
                    break;
            }
        }
    }

    private async Task<bool> HandleExportNameAsync(byte[] data)
    {
        var name = Encoding.UTF8.GetString(data);
        var export = data.Length <= NbdProtocol.MaxStringLength ? _exports.Open(name) : null;
        if (export is null)
            // NBD_OPT_EXPORT_NAME has no error reply: the spec's only answer is to close.
            throw new NbdProtocolException(NbdRejection.UnknownExport, $"unknown export '{name}'");
        _export = export;
        var reply = new byte[_noZeroes ? 10 : 134];
        BinaryPrimitives.WriteUInt64BigEndian(reply, (ulong)export.Device.Size);
        BinaryPrimitives.WriteUInt16BigEndian(reply.AsSpan(8), (ushort)TransmissionFlags(export));
        await _output.WriteAsync(reply).ConfigureAwait(false);
        if (_metaContextExport != name) _baseAllocationSelected = false;
        Log.ExportOpened(_logger, Id, name, export.Device.Size);
        return true;
    }

    private async Task HandleListAsync(byte[] data)
    {
        if (data.Length != 0)
        {
            await OptionReplyAsync(NbdOption.List, NbdOptionReply.ErrInvalid, "list takes no data").ConfigureAwait(false);
            return;
        }
        foreach (var name in _exports.ListExports())
        {
            var bytes = Encoding.UTF8.GetBytes(name);
            var body = new byte[4 + bytes.Length];
            BinaryPrimitives.WriteUInt32BigEndian(body, (uint)bytes.Length);
            bytes.CopyTo(body, 4);
            await OptionReplyAsync(NbdOption.List, NbdOptionReply.Server, body).ConfigureAwait(false);
        }
        await OptionReplyAsync(NbdOption.List, NbdOptionReply.Ack).ConfigureAwait(false);
    }

    private async Task<bool> HandleInfoOrGoAsync(NbdOption option, byte[] data)
    {
        // u32 name length | name | u16 count | count x u16 info type
        if (data.Length < 6 || !TryReadName(data, out var name, out int at) || data.Length < at + 2)
        {
            await OptionReplyAsync(option, NbdOptionReply.ErrInvalid, "malformed export request").ConfigureAwait(false);
            return false;
        }
        int count = BinaryPrimitives.ReadUInt16BigEndian(data.AsSpan(at));
        if (data.Length != at + 2 + 2 * count)
        {
            await OptionReplyAsync(option, NbdOptionReply.ErrInvalid, "information request count does not match the option length").ConfigureAwait(false);
            return false;
        }
        bool wantsName = false;
        for (int i = 0; i < count; i++)
            wantsName |= (NbdInfo)BinaryPrimitives.ReadUInt16BigEndian(data.AsSpan(at + 2 + 2 * i)) == NbdInfo.Name;

        var export = _exports.Open(name);
        if (export is null)
        {
            await OptionReplyAsync(option, NbdOptionReply.ErrUnknown, $"no export named '{name}'").ConfigureAwait(false);
            return false;
        }
        bool keep = false;
        try
        {
            var info = new byte[12];
            BinaryPrimitives.WriteUInt16BigEndian(info, (ushort)NbdInfo.Export);
            BinaryPrimitives.WriteUInt64BigEndian(info.AsSpan(2), (ulong)export.Device.Size);
            BinaryPrimitives.WriteUInt16BigEndian(info.AsSpan(10), (ushort)TransmissionFlags(export));
            await OptionReplyAsync(option, NbdOptionReply.Info, info).ConfigureAwait(false);

            if (wantsName)
            {
                var nameBytes = Encoding.UTF8.GetBytes(name);
                var nameInfo = new byte[2 + nameBytes.Length];
                BinaryPrimitives.WriteUInt16BigEndian(nameInfo, (ushort)NbdInfo.Name);
                nameBytes.CopyTo(nameInfo, 2);
                await OptionReplyAsync(option, NbdOptionReply.Info, nameInfo).ConfigureAwait(false);
            }

            var blockSize = new byte[14];
            BinaryPrimitives.WriteUInt16BigEndian(blockSize, (ushort)NbdInfo.BlockSize);
            BinaryPrimitives.WriteUInt32BigEndian(blockSize.AsSpan(2), NbdProtocol.MinBlockSize);
            BinaryPrimitives.WriteUInt32BigEndian(blockSize.AsSpan(6), NbdProtocol.PreferredBlockSize);
            BinaryPrimitives.WriteUInt32BigEndian(blockSize.AsSpan(10), (uint)_options.MaxPayloadLength);
            await OptionReplyAsync(option, NbdOptionReply.Info, blockSize).ConfigureAwait(false);

            await OptionReplyAsync(option, NbdOptionReply.Ack).ConfigureAwait(false);
            if (option == NbdOption.Go)
            {
                // Meta contexts chosen for another export do not carry over.
                if (_metaContextExport != name) _baseAllocationSelected = false;
                _export = export;
                keep = true;
                Log.ExportOpened(_logger, Id, name, export.Device.Size);
                return true;
            }
            return false;
        }
        finally
        {
            if (!keep) export.Dispose();
        }
    }

    private async Task HandleMetaContextAsync(NbdOption option, byte[] data)
    {
        // SET replaces the selection even when it fails, so a refused SET leaves nothing selected.
        if (option == NbdOption.SetMetaContext) _baseAllocationSelected = false;
        // u32 name length | name | u32 query count | count x (u32 length | query)
        if (!TryReadName(data, out var name, out int at) || data.Length < at + 4)
        {
            await OptionReplyAsync(option, NbdOptionReply.ErrInvalid, "malformed meta context request").ConfigureAwait(false);
            return;
        }
        uint count = BinaryPrimitives.ReadUInt32BigEndian(data.AsSpan(at));
        at += 4;
        var queries = new List<string>();
        for (uint i = 0; i < count; i++)
        {
            if (data.Length < at + 4) { await OptionReplyAsync(option, NbdOptionReply.ErrInvalid, "truncated query").ConfigureAwait(false); return; }
            uint len = BinaryPrimitives.ReadUInt32BigEndian(data.AsSpan(at));
            at += 4;
            if (len > NbdProtocol.MaxStringLength || data.Length < at + len)
            {
                await OptionReplyAsync(option, NbdOptionReply.ErrInvalid, "truncated query").ConfigureAwait(false);
                return;
            }
            queries.Add(Encoding.UTF8.GetString(data, at, (int)len));
            at += (int)len;
        }
        if (at != data.Length)
        {
            await OptionReplyAsync(option, NbdOptionReply.ErrInvalid, "trailing bytes after the queries").ConfigureAwait(false);
            return;
        }
        if (option == NbdOption.SetMetaContext && !_replies.StructuredReplies)
        {
            await OptionReplyAsync(option, NbdOptionReply.ErrInvalid, "negotiate structured replies first").ConfigureAwait(false);
            return;
        }
        if (!_exports.ListExports().Contains(name))
        {
            await OptionReplyAsync(option, NbdOptionReply.ErrUnknown, $"no export named '{name}'").ConfigureAwait(false);
            return;
        }

        // base:allocation is the one context served. LIST with no query lists everything; "base:" lists the namespace.
        bool match = option == NbdOption.ListMetaContext && count == 0
            || queries.Any(q => q == NbdProtocol.BaseAllocationContext || (option == NbdOption.ListMetaContext && q == "base:"));
        if (option == NbdOption.SetMetaContext)
        {
            _metaContextExport = name;
            _baseAllocationSelected = match;
        }
        if (match)
        {
            var ctx = Encoding.UTF8.GetBytes(NbdProtocol.BaseAllocationContext);
            var body = new byte[4 + ctx.Length];
            BinaryPrimitives.WriteUInt32BigEndian(body, option == NbdOption.SetMetaContext ? NbdProtocol.BaseAllocationContextId : 0);
            ctx.CopyTo(body, 4);
            await OptionReplyAsync(option, NbdOptionReply.MetaContext, body).ConfigureAwait(false);
        }
        await OptionReplyAsync(option, NbdOptionReply.Ack).ConfigureAwait(false);
    }

    private static bool TryReadName(byte[] data, out string name, out int next)
    {
        name = "";
        next = 0;
        if (data.Length < 4) return false;
        uint len = BinaryPrimitives.ReadUInt32BigEndian(data);
        if (len > NbdProtocol.MaxStringLength || data.Length - 4 < len) return false;
        name = Encoding.UTF8.GetString(data, 4, (int)len);
        next = 4 + (int)len;
        return true;
    }

    private NbdTransmissionFlags TransmissionFlags(NbdExport export)
    {
        var flags = NbdTransmissionFlags.HasFlags | NbdTransmissionFlags.SendFlush | NbdTransmissionFlags.SendFua
            | NbdTransmissionFlags.SendCache
            // All connections to a volume share one file and fdatasync covers every completed write.
            | NbdTransmissionFlags.CanMultiConn;
        if (export.ReadOnly) flags |= NbdTransmissionFlags.ReadOnly;
        else
        {
            if (export.Device.Capabilities.CanTrim) flags |= NbdTransmissionFlags.SendTrim;
            // FAST_ZERO is a flag of WRITE_ZEROES: the spec wants it clear whenever WRITE_ZEROES is.
            if (export.Device.Capabilities.CanZero)
                flags |= NbdTransmissionFlags.SendWriteZeroes | (export.Device.Capabilities.CanFastZero ? NbdTransmissionFlags.SendFastZero : 0);
        }
        if (_replies.StructuredReplies) flags |= NbdTransmissionFlags.SendDf;
        return flags;
    }

    private ValueTask OptionReplyAsync(NbdOption option, NbdOptionReply reply, string message) =>
        OptionReplyAsync(option, reply, Encoding.UTF8.GetBytes(message));

    private async ValueTask OptionReplyAsync(NbdOption option, NbdOptionReply reply, ReadOnlyMemory<byte> data = default)
    {
        var header = _output.GetSpan(NbdProtocol.OptionReplyHeaderSize);
        BinaryPrimitives.WriteUInt64BigEndian(header, NbdProtocol.OptionReplyMagic);
        BinaryPrimitives.WriteUInt32BigEndian(header[8..], (uint)option);
        BinaryPrimitives.WriteUInt32BigEndian(header[12..], (uint)reply);
        BinaryPrimitives.WriteUInt32BigEndian(header[16..], (uint)data.Length);
        _output.Advance(NbdProtocol.OptionReplyHeaderSize);
        if (!data.IsEmpty) _output.Write(data.Span);
        await _output.FlushAsync().ConfigureAwait(false);
    }

    /// <summary>Reads exactly <paramref name="count"/> bytes; null on a clean EOF before the first byte.</summary>
    private async ValueTask<byte[]?> ReadExactAsync(int count)
    {
        if (count == 0) return [];
        while (true)
        {
            var result = await _input.ReadAtLeastAsync(count).ConfigureAwait(false);
            if (result.IsCanceled)
            {
                // Shutdown while waiting for an option: nothing is in flight yet, just close.
                return null;
            }
            var buffer = result.Buffer;
            if (buffer.Length >= count)
            {
                var bytes = buffer.Slice(0, count).ToArray();
                _input.AdvanceTo(buffer.GetPosition(count));
                return bytes;
            }
            _input.AdvanceTo(buffer.Start, buffer.End);
            if (result.IsCompleted)
            {
                if (buffer.Length == 0) return null;
                throw new NbdProtocolException(NbdRejection.TruncatedHandshake, "client closed mid-handshake");
            }
        }
    }

    private async ValueTask<bool> SkipAsync(long count)
    {
        while (count > 0)
        {
            var result = await _input.ReadAsync().ConfigureAwait(false);
            if (result.IsCanceled) return false;
            var buffer = result.Buffer;
            long n = Math.Min(count, buffer.Length);
            _input.AdvanceTo(buffer.GetPosition(n));
            count -= n;
            if (count > 0 && result.IsCompleted) return false;
        }
        return true;
    }
}
