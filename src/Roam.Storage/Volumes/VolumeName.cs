using System.Text.RegularExpressions;

namespace Roam.Storage.Volumes;

/// <summary>Volume names are file names and NBD export names at once, so they stay short and plain.</summary>
public static partial class VolumeName
{
    public const int MaxLength = 64;

    // \z, not $: "$" would also match before a trailing newline.
    [GeneratedRegex(@"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}\z")]
    private static partial Regex Pattern();

    public static bool IsValid(string? name) => name is not null && Pattern().IsMatch(name) && !name.EndsWith(".tmp", StringComparison.Ordinal);

    public static void Validate(string? name)
    {
        if (!IsValid(name))
            throw new VolumeException(VolumeError.InvalidName,
                $"invalid volume name '{name}': use 1-{MaxLength} letters, digits, '.', '_' or '-', starting with a letter or digit");
    }
}
