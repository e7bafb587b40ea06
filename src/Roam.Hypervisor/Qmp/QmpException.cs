namespace Roam.Hypervisor.Qmp;

/// <summary>
/// QEMU answered a command with an error reply: <c>{"error": {"class": "...", "desc": "..."}, "id": N}</c>.
/// The connection is still usable; only this command failed.
/// </summary>
public sealed class QmpException(string command, string errorClass, string description)
    : Exception($"QMP command '{command}' failed: {errorClass}: {description}")
{
    public string Command { get; } = command;

    /// <summary>The QMP error class: GenericError, CommandNotFound, DeviceNotActive, DeviceNotFound, KVMMissingCap.</summary>
    public string Class { get; } = errorClass;

    public string Description { get; } = description;
}

/// <summary>
/// The QMP connection closed (almost always because QEMU exited or was killed). Every command still
/// waiting for its reply fails with this, and so does every later command on the same client.
/// </summary>
public sealed class QmpConnectionClosedException(string message, Exception? inner = null) : IOException(message, inner);
