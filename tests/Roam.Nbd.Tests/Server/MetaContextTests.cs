using Roam.Nbd.Protocol;
using Roam.Testing.Nbd;

namespace Roam.Nbd.Tests.Server;

/// <summary>NBD_OPT_LIST_META_CONTEXT / SET_META_CONTEXT with base:allocation, and what BLOCK_STATUS needs from them.</summary>
public sealed class MetaContextTests : ServerTestBase
{
    private async Task<RawNbdClient> StructuredAsync()
    {
        var client = await HaggleAsync();
        Assert.Equal(NbdOptionReply.Ack, (await client.NegotiateAsync(NbdOption.StructuredReply))[^1].Type);
        return client;
    }

    [Fact]
    public async Task List_without_queries_lists_base_allocation_with_the_reserved_id_0()
    {
        await using var client = await StructuredAsync();

        var replies = await client.NegotiateAsync(NbdOption.ListMetaContext, RawNbdClient.MetaContextRequest(Export));

        Assert.Equal(NbdOptionReply.Ack, replies[^1].Type);
        var context = Assert.Single(replies[..^1]);
        Assert.Equal((NbdOptionReply.MetaContext, 0u, "base:allocation"), (context.Type, context.ContextId, context.ContextName));
    }

    [Fact]
    public async Task List_with_the_base_namespace_wildcard_lists_base_allocation()
    {
        await using var client = await StructuredAsync();

        var replies = await client.NegotiateAsync(NbdOption.ListMetaContext, RawNbdClient.MetaContextRequest(Export, "base:"));

        Assert.Equal("base:allocation", Assert.Single(replies[..^1]).ContextName);
    }

    [Fact]
    public async Task Unknown_namespaces_and_leaf_names_are_ignored_not_refused()
    {
        await using var client = await StructuredAsync();

        var list = await client.NegotiateAsync(NbdOption.ListMetaContext, RawNbdClient.MetaContextRequest(Export, "qemu:dirty-bitmap:x", "base:nosuch"));
        var set = await client.NegotiateAsync(NbdOption.SetMetaContext, RawNbdClient.MetaContextRequest(Export, "x-roam:thing", "base:"));

        Assert.Equal(NbdOptionReply.Ack, Assert.Single(list).Type);
        Assert.Equal(NbdOptionReply.Ack, Assert.Single(set).Type);
    }

    [Fact]
    public async Task Set_selects_base_allocation_once_even_when_asked_twice()
    {
        await using var client = await StructuredAsync();

        var replies = await client.NegotiateAsync(NbdOption.SetMetaContext,
            RawNbdClient.MetaContextRequest(Export, "base:allocation", "base:allocation"));

        Assert.Equal(NbdOptionReply.Ack, replies[^1].Type);
        Assert.Equal(NbdProtocol.BaseAllocationContextId, Assert.Single(replies[..^1]).ContextId);
    }

    [Fact]
    public async Task Set_before_structured_replies_replies_ERR_INVALID()
    {
        await using var client = await HaggleAsync();

        var replies = await client.NegotiateAsync(NbdOption.SetMetaContext, RawNbdClient.MetaContextRequest(Export, "base:allocation"));

        Assert.Equal(NbdOptionReply.ErrInvalid, Assert.Single(replies).Type);
    }

    [Fact]
    public async Task Set_for_an_unknown_export_replies_ERR_UNKNOWN()
    {
        await using var client = await StructuredAsync();

        var replies = await client.NegotiateAsync(NbdOption.SetMetaContext, RawNbdClient.MetaContextRequest("nosuch", "base:allocation"));

        Assert.Equal(NbdOptionReply.ErrUnknown, Assert.Single(replies).Type);
    }

    [Fact]
    public async Task Query_running_past_the_option_data_replies_ERR_INVALID()
    {
        await using var client = await StructuredAsync();
        var data = RawNbdClient.MetaContextRequest(Export, "base:allocation");

        var replies = await client.NegotiateAsync(NbdOption.ListMetaContext, data[..^3]);

        Assert.Equal(NbdOptionReply.ErrInvalid, Assert.Single(replies).Type);
    }

    [Fact]
    public async Task Block_status_reports_holes_and_data_once_base_allocation_is_selected()
    {
        await using var client = await Server.ConnectAndGoAsync(Export);
        Assert.Equal(NbdError.None, (await client.WriteAsync(64 * 1024, Pattern(64 * 1024, 1))).Error);

        var reply = await client.BlockStatusAsync(0, 256 * 1024);

        Assert.Equal(NbdError.None, reply.Error);
        Assert.Equal(NbdProtocol.BaseAllocationContextId, reply.ContextId);
        Assert.Equal(
            [new BlockExtent(64 * 1024, NbdAllocationFlags.Hole | NbdAllocationFlags.Zero), new BlockExtent(64 * 1024, 0), new BlockExtent(128 * 1024, NbdAllocationFlags.Hole | NbdAllocationFlags.Zero)],
            reply.Extents);
    }

    [Fact]
    public async Task Block_status_with_REQ_ONE_returns_exactly_one_extent_within_the_request()
    {
        await using var client = await Server.ConnectAndGoAsync(Export);
        Assert.Equal(NbdError.None, (await client.WriteAsync(8192, Pattern(4096, 2))).Error);

        var reply = await client.BlockStatusAsync(0, 64 * 1024, NbdCommandFlags.RequestOne);

        Assert.Equal(new BlockExtent(8192, NbdAllocationFlags.Hole | NbdAllocationFlags.Zero), Assert.Single(reply.Extents));
    }

    [Fact]
    public async Task Block_status_without_set_meta_context_replies_EINVAL_and_session_continues()
    {
        await using var client = await Server.ConnectAndGoAsync(Export, structuredReplies: true, baseAllocation: false);

        var reply = await client.BlockStatusAsync(0, 4096);

        Assert.Equal(NbdError.EINVAL, reply.Error);
        await AssertServedAsync(client);
    }

    [Fact]
    public async Task Block_status_without_structured_replies_replies_EINVAL_as_a_simple_reply()
    {
        await using var client = await Server.ConnectAndGoAsync(Export, structuredReplies: false, baseAllocation: false);

        var reply = await client.BlockStatusAsync(0, 4096);

        Assert.Equal((NbdError.EINVAL, 0), (reply.Error, reply.Chunks));
        await AssertServedAsync(client);
    }

    [Fact]
    public async Task A_failed_set_meta_context_drops_the_earlier_selection()
    {
        // "Issuing this command replaces all previously-set metadata contexts (including when this command fails)".
        await using var client = await StructuredAsync();
        Assert.Equal(NbdOptionReply.Ack, (await client.NegotiateAsync(NbdOption.SetMetaContext, RawNbdClient.MetaContextRequest(Export, "base:allocation")))[^1].Type);
        var failed = await client.NegotiateAsync(NbdOption.SetMetaContext, RawNbdClient.MetaContextRequest("nosuch", "base:allocation"));
        Assert.Equal(NbdOptionReply.ErrUnknown, Assert.Single(failed).Type);
        await client.GoAsync(Export, structuredReplies: false, baseAllocation: false);

        var reply = await client.BlockStatusAsync(0, 4096);

        Assert.Equal(NbdError.EINVAL, reply.Error);
    }

    [Fact]
    public async Task A_context_chosen_for_another_export_does_not_carry_over_to_go()
    {
        Server.CreateVolume("other", 64 * 1024);
        await using var client = await StructuredAsync();
        Assert.Equal(NbdOptionReply.Ack, (await client.NegotiateAsync(NbdOption.SetMetaContext, RawNbdClient.MetaContextRequest("other", "base:allocation")))[^1].Type);
        await client.GoAsync(Export, structuredReplies: false, baseAllocation: false);

        var reply = await client.BlockStatusAsync(0, 4096);

        Assert.Equal(NbdError.EINVAL, reply.Error);
    }

    [Fact]
    public async Task Set_with_no_queries_selects_nothing()
    {
        await using var client = await StructuredAsync();
        Assert.Equal(NbdOptionReply.Ack, (await client.NegotiateAsync(NbdOption.SetMetaContext, RawNbdClient.MetaContextRequest(Export, "base:allocation")))[^1].Type);
        var none = await client.NegotiateAsync(NbdOption.SetMetaContext, RawNbdClient.MetaContextRequest(Export));
        Assert.Equal(NbdOptionReply.Ack, Assert.Single(none).Type);
        await client.GoAsync(Export, structuredReplies: false, baseAllocation: false);

        var reply = await client.BlockStatusAsync(0, 4096);

        Assert.Equal(NbdError.EINVAL, reply.Error);
    }
}
