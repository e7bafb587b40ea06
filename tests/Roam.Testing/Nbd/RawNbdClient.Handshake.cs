using System.Buffers.Binary;
using System.Text;
using Roam.Nbd.Protocol;

namespace Roam.Testing.Nbd;

public sealed partial class RawNbdClient
{
    /// <summary>Handshake flags from the server's greeting.</summary>
    public NbdHandshakeFlags HandshakeFlags { get; private set; }

    public bool StructuredReplies { get; private set; }

    public ulong ExportSize { get; private set; }

    public NbdTransmissionFlags TransmissionFlags { get; private set; }

    /// <summary>Block size constraints from NBD_INFO_BLOCK_SIZE, when the server sent them.</summary>
    public (uint Minimum, uint Preferred, uint Maximum)? BlockSizes { get; private set; }

    public static async Task<RawNbdClient> ConnectAndGoAsync(string socketPath, string export, bool structuredReplies = true, bool baseAllocation = true)
    {
        var client = await ConnectUnixAsync(socketPath).ConfigureAwait(false);
        try
        {
            await client.StartAsync().ConfigureAwait(false);
            await client.GoAsync(export, structuredReplies, baseAllocation).ConfigureAwait(false);
            return client;
        }
        catch
        {
            await client.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    /// <summary>Reads the greeting, checks both magics and returns the handshake flags.</summary>
    public async Task<NbdHandshakeFlags> ReadGreetingAsync()
    {
        var b = await ReadBytesAsync(18).ConfigureAwait(false);
        if (U64(b) != NbdProtocol.InitMagic) throw new InvalidDataException($"bad init magic 0x{U64(b):x16}");
        if (U64(b.AsSpan(8)) != NbdProtocol.OptionMagic) throw new InvalidDataException($"not newstyle: 0x{U64(b.AsSpan(8)):x16}");
        HandshakeFlags = (NbdHandshakeFlags)U16(b.AsSpan(16));
        return HandshakeFlags;
    }

    public Task SendClientFlagsAsync(NbdClientFlags flags)
    {
        var b = new byte[4];
        BinaryPrimitives.WriteUInt32BigEndian(b, (uint)flags);
        return WriteAsync(b);
    }

    /// <summary>Greeting plus client flags: the client is then in option haggling.</summary>
    public async Task StartAsync(NbdClientFlags flags = NbdClientFlags.FixedNewstyle | NbdClientFlags.NoZeroes)
    {
        await ReadGreetingAsync().ConfigureAwait(false);
        await SendClientFlagsAsync(flags).ConfigureAwait(false);
    }

    public Task SendOptionAsync(NbdOption option, ReadOnlyMemory<byte> data = default) =>
        SendOptionAsync((uint)option, data, (uint)data.Length, NbdProtocol.OptionMagic);

    /// <summary>An option frame with every field chosen by the caller, including a length that lies.</summary>
    public Task SendOptionAsync(uint option, ReadOnlyMemory<byte> data, uint declaredLength, ulong magic)
    {
        var header = new byte[NbdProtocol.OptionHeaderSize];
        BinaryPrimitives.WriteUInt64BigEndian(header, magic);
        BinaryPrimitives.WriteUInt32BigEndian(header.AsSpan(8), option);
        BinaryPrimitives.WriteUInt32BigEndian(header.AsSpan(12), declaredLength);
        return WriteAsync(header, data);
    }

    public async Task<OptionReply> ReadOptionReplyAsync()
    {
        var h = await ReadBytesAsync(NbdProtocol.OptionReplyHeaderSize).ConfigureAwait(false);
        if (U64(h) != NbdProtocol.OptionReplyMagic) throw new InvalidDataException($"bad option reply magic 0x{U64(h):x16}");
        uint length = U32(h.AsSpan(16));
        if (length > 16 * 1024 * 1024) throw new InvalidDataException($"option reply of {length} bytes");
        var data = await ReadBytesAsync((int)length).ConfigureAwait(false);
        return new OptionReply((NbdOption)U32(h.AsSpan(8)), (NbdOptionReply)U32(h.AsSpan(12)), data);
    }

    /// <summary>
    /// Sends an option and reads replies up to the final one (ACK or an error), checking that
    /// every reply names the option it answers. The final reply is the last element.
    /// </summary>
    public async Task<OptionReply[]> NegotiateAsync(NbdOption option, ReadOnlyMemory<byte> data = default)
    {
        await SendOptionAsync(option, data).ConfigureAwait(false);
        return await ReadOptionRepliesAsync(option).ConfigureAwait(false);
    }

    public async Task<OptionReply[]> ReadOptionRepliesAsync(NbdOption option)
    {
        var replies = new List<OptionReply>();
        while (true)
        {
            var reply = await ReadOptionReplyAsync().ConfigureAwait(false);
            if (reply.Option != option) throw new InvalidDataException($"reply to option {reply.Option} while waiting for {option}");
            replies.Add(reply);
            if (!reply.IsFinal) continue;
            if (option == NbdOption.StructuredReply && reply.Type == NbdOptionReply.Ack) StructuredReplies = true;
            return [.. replies];
        }
    }

    /// <summary>
    /// NBD_OPT_STRUCTURED_REPLY and SET_META_CONTEXT base:allocation when asked, then NBD_OPT_GO
    /// (with NBD_INFO_BLOCK_SIZE requested). Throws <see cref="NbdOptionException"/> when one is refused.
    /// </summary>
    public async Task GoAsync(string export, bool structuredReplies = true, bool baseAllocation = true)
    {
        if (structuredReplies)
        {
            Expect(await NegotiateAsync(NbdOption.StructuredReply).ConfigureAwait(false), NbdOptionReply.Ack);
        }
        if (baseAllocation)
        {
            var replies = await NegotiateAsync(NbdOption.SetMetaContext, MetaContextRequest(export, NbdProtocol.BaseAllocationContext)).ConfigureAwait(false);
            Expect(replies, NbdOptionReply.Ack);
            if (replies.Length != 2 || replies[0].Type != NbdOptionReply.MetaContext || replies[0].ContextName != NbdProtocol.BaseAllocationContext)
                throw new InvalidDataException("SET_META_CONTEXT base:allocation did not select exactly that context");
        }
        var go = await NegotiateAsync(NbdOption.Go, InfoRequest(export, NbdInfo.BlockSize)).ConfigureAwait(false);
        Expect(go, NbdOptionReply.Ack);
        ApplyInfo(go);
    }

    /// <summary>Reads NBD_INFO replies: export size and flags (mandatory) and block sizes.</summary>
    public void ApplyInfo(IReadOnlyList<OptionReply> replies)
    {
        bool sawExport = false;
        foreach (var r in replies.Where(r => r.Type == NbdOptionReply.Info))
        {
            var d = r.Data;
            if (d.Length < 2) throw new InvalidDataException("NBD_REP_INFO shorter than its type");
            switch ((NbdInfo)U16(d))
            {
                case NbdInfo.Export:
                    if (d.Length != 12) throw new InvalidDataException($"NBD_INFO_EXPORT of length {d.Length}, the spec says 12");
                    ExportSize = U64(d.AsSpan(2));
                    TransmissionFlags = (NbdTransmissionFlags)U16(d.AsSpan(10));
                    sawExport = true;
                    break;
                case NbdInfo.BlockSize:
                    if (d.Length != 14) throw new InvalidDataException($"NBD_INFO_BLOCK_SIZE of length {d.Length}, the spec says 14");
                    BlockSizes = (U32(d.AsSpan(2)), U32(d.AsSpan(6)), U32(d.AsSpan(10)));
                    break;
            }
        }
        if (!sawExport) throw new InvalidDataException("NBD_OPT_GO succeeded without NBD_INFO_EXPORT");
        if (!TransmissionFlags.HasFlag(NbdTransmissionFlags.HasFlags)) throw new InvalidDataException("NBD_FLAG_HAS_FLAGS is clear");
    }

    /// <summary>
    /// NBD_OPT_EXPORT_NAME: the old way in, whose only failure is a closed connection. Reads the
    /// export size and flags, and with <paramref name="expectZeroes"/> checks the 124 reserved zero bytes.
    /// </summary>
    public async Task ExportNameAsync(string export, bool expectZeroes)
    {
        await SendOptionAsync(NbdOption.ExportName, Encoding.UTF8.GetBytes(export)).ConfigureAwait(false);
        var b = await ReadBytesAsync(10).ConfigureAwait(false);
        ExportSize = U64(b);
        TransmissionFlags = (NbdTransmissionFlags)U16(b.AsSpan(8));
        if (expectZeroes && (await ReadBytesAsync(124).ConfigureAwait(false)).Any(x => x != 0))
            throw new InvalidDataException("the 124 reserved bytes after NBD_OPT_EXPORT_NAME are not zero");
    }

    private static void Expect(IReadOnlyList<OptionReply> replies, NbdOptionReply expected)
    {
        var last = replies[^1];
        if (last.Type != expected) throw new NbdOptionException(last);
    }

    /// <summary>NBD_OPT_INFO / NBD_OPT_GO data: u32 name length, name, u16 count, count × u16 info type.</summary>
    public static byte[] InfoRequest(string export, params NbdInfo[] infos)
    {
        var name = Encoding.UTF8.GetBytes(export);
        var b = new byte[4 + name.Length + 2 + 2 * infos.Length];
        BinaryPrimitives.WriteUInt32BigEndian(b, (uint)name.Length);
        name.CopyTo(b, 4);
        BinaryPrimitives.WriteUInt16BigEndian(b.AsSpan(4 + name.Length), (ushort)infos.Length);
        for (int i = 0; i < infos.Length; i++)
            BinaryPrimitives.WriteUInt16BigEndian(b.AsSpan(6 + name.Length + 2 * i), (ushort)infos[i]);
        return b;
    }

    /// <summary>LIST/SET_META_CONTEXT data: u32 name length, name, u32 query count, count × (u32 length, query).</summary>
    public static byte[] MetaContextRequest(string export, params string[] queries)
    {
        using var ms = new MemoryStream();
        void U32Out(uint v) { Span<byte> s = stackalloc byte[4]; BinaryPrimitives.WriteUInt32BigEndian(s, v); ms.Write(s); }
        var name = Encoding.UTF8.GetBytes(export);
        U32Out((uint)name.Length);
        ms.Write(name);
        U32Out((uint)queries.Length);
        foreach (var q in queries)
        {
            var bytes = Encoding.UTF8.GetBytes(q);
            U32Out((uint)bytes.Length);
            ms.Write(bytes);
        }
        return ms.ToArray();
    }
}

public sealed record OptionReply(NbdOption Option, NbdOptionReply Type, byte[] Data)
{
    /// <summary>ACK and every error (bit 31) end an option's replies.</summary>
    public bool IsFinal => Type == NbdOptionReply.Ack || ((uint)Type & 0x80000000) != 0;

    /// <summary>NBD_REP_SERVER: the export name.</summary>
    public string ExportName => Encoding.UTF8.GetString(Data, 4, (int)BinaryPrimitives.ReadUInt32BigEndian(Data));

    /// <summary>NBD_REP_META_CONTEXT: the context id.</summary>
    public uint ContextId => BinaryPrimitives.ReadUInt32BigEndian(Data);

    /// <summary>NBD_REP_META_CONTEXT: the context name.</summary>
    public string ContextName => Encoding.UTF8.GetString(Data, 4, Data.Length - 4);
}

public sealed class NbdOptionException(OptionReply reply)
    : Exception($"{reply.Option} refused with {reply.Type}: {System.Text.Encoding.UTF8.GetString(reply.Data)}")
{
    public OptionReply Reply { get; } = reply;
}
