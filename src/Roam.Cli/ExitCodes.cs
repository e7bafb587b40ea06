namespace Roam.Cli;

/// <summary>What `roam` exits with; scripts may rely on these (they are in `roam --help`).</summary>
internal static class ExitCodes
{
    public const int Success = 0;

    /// <summary>roamd refused or failed the request; the reason is on stderr as "roam: ...".</summary>
    public const int Failed = 1;

    /// <summary>The command line is wrong: unknown command or option, missing or invalid argument.</summary>
    public const int Usage = 2;

    /// <summary>roamd could not be reached at the control socket.</summary>
    public const int Unreachable = 3;
}
