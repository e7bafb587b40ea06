namespace Roam.Daemon.Jobs;

/// <summary>Why roamd refuses or fails a job (import, export, migrate), mapped to HTTP in Api/ErrorHandling.</summary>
internal enum JobError
{
    /// <summary>The request itself is wrong: a missing or relative path, an unknown format.</summary>
    InvalidRequest,
    /// <summary>No job with that id.</summary>
    NotFound,
    /// <summary>The file to read is not there, or not a file.</summary>
    NoSuchFile,
    /// <summary>The image cannot be read as asked (qemu-img refuses it, it is empty, unreadable).</summary>
    BadImage,
    /// <summary>The target exists and --force was not given.</summary>
    TargetExists,
    /// <summary>roamd is shutting down and starts no jobs.</summary>
    ShuttingDown,
    /// <summary>A tool the job needs (qemu-img) is missing or gave no usable answer.</summary>
    ToolFailed,
}

/// <summary>A job refused or failed, with its <see cref="JobError"/> reason and the one line a client shows.</summary>
internal sealed class JobException(JobError error, string message) : Exception(message)
{
    public JobError Error { get; } = error;
}
