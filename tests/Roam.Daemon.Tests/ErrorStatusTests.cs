using Roam.Daemon.Api;
using Roam.Daemon.Jobs;
using Roam.Daemon.Vms;

namespace Roam.Daemon.Tests;

/// <summary>The domain's reasons become HTTP statuses in one place (Api/ErrorHandling), every reason with one.</summary>
public sealed class ErrorStatusTests
{
    [Fact]
    public void Vm_errors_keep_the_statuses_clients_branch_on()
    {
        var expected = new Dictionary<VmError, int>
        {
            [VmError.InvalidRequest] = 400,
            [VmError.NotFound] = 404,
            [VmError.UnknownPeer] = 404,
            [VmError.NoMigration] = 404,
            [VmError.AlreadyExists] = 409,
            [VmError.WrongState] = 409,
            [VmError.AlreadyMigrating] = 409,
            [VmError.DestinationRefused] = 409,
            [VmError.PeerUnavailable] = 503,
            [VmError.QemuFailed] = 500,
        };
        Assert.Equal(Enum.GetValues<VmError>().Order(), expected.Keys.Order()); // every reason, exhaustively
        foreach (var (error, status) in expected)
        {
            var (mapped, message) = ErrorHandling.Map(new VmException(error, "why"));
            Assert.True(status == mapped, $"{error}: {mapped}, expected {status}");
            Assert.Equal("why", message);
        }
    }

    [Fact]
    public void Network_errors_keep_the_statuses_clients_branch_on()
    {
        var expected = new Dictionary<Roam.Daemon.Network.NetworkError, int>
        {
            [Roam.Daemon.Network.NetworkError.InvalidRequest] = 400,
            [Roam.Daemon.Network.NetworkError.UnknownBridge] = 404,
            [Roam.Daemon.Network.NetworkError.SubnetOverlap] = 409,
            [Roam.Daemon.Network.NetworkError.NeedsRoot] = 403,
            [Roam.Daemon.Network.NetworkError.ToolFailed] = 500,
        };
        Assert.Equal(Enum.GetValues<Roam.Daemon.Network.NetworkError>().Order(), expected.Keys.Order());
        foreach (var (error, status) in expected)
        {
            var (mapped, message) = ErrorHandling.Map(new Roam.Daemon.Network.NetworkException(error, "why"));
            Assert.True(status == mapped, $"{error}: {mapped}, expected {status}");
            Assert.Equal("why", message);
        }
    }

    [Fact]
    public void Job_errors_keep_the_statuses_clients_branch_on()
    {
        var expected = new Dictionary<JobError, int>
        {
            [JobError.InvalidRequest] = 400,
            [JobError.NoSuchFile] = 400,
            [JobError.BadImage] = 400,
            [JobError.NotFound] = 404,
            [JobError.TargetExists] = 409,
            [JobError.ShuttingDown] = 503,
            [JobError.ToolFailed] = 500,
        };
        Assert.Equal(Enum.GetValues<JobError>().Order(), expected.Keys.Order());
        foreach (var (error, status) in expected)
            Assert.True(status == ErrorHandling.Map(new JobException(error, "why")).Status, $"{error}");
    }

    [Fact]
    public void A_reason_outside_the_enum_is_a_bug_not_a_status()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => ErrorHandling.VmStatus((VmError)999));
        Assert.Throws<ArgumentOutOfRangeException>(() => ErrorHandling.JobStatus((JobError)999));
    }
}
