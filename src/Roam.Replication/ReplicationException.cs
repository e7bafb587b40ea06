namespace Roam.Replication;

/// <summary>A refusal or failure of the replication engine; callers branch on <see cref="Error"/>, not on the message.</summary>
public sealed class ReplicationException(ReplicationError error, string message, Exception? inner = null) : Exception(message, inner)
{
    public ReplicationError Error { get; } = error;
}
