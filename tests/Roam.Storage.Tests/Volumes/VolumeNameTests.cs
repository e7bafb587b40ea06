using Roam.Storage.Volumes;

namespace Roam.Storage.Tests.Volumes;

public sealed class VolumeNameTests
{
    [Theory]
    [InlineData("a")]
    [InlineData("9")]
    [InlineData("vm-1.disk_2")]
    [InlineData("A.B-C_D")]
    [InlineData("x.tmpfile")]
    public void Plain_names_are_valid(string name)
    {
        Assert.True(VolumeName.IsValid(name));
        VolumeName.Validate(name);
    }

    [Fact]
    public void Sixty_four_characters_is_the_limit()
    {
        Assert.True(VolumeName.IsValid(new string('a', VolumeName.MaxLength)));
        Assert.False(VolumeName.IsValid(new string('a', VolumeName.MaxLength + 1)));
    }

    [Theory]
    [InlineData(null)]
    [InlineData("")]
    [InlineData("-a")]
    [InlineData(".hidden")]
    [InlineData("_a")]
    [InlineData("a/b")]
    [InlineData("../etc")]
    [InlineData("a b")]
    [InlineData("a:b")]
    [InlineData("ä")]
    [InlineData("disk.tmp")]    // the suffix of an unfinished metadata write
    [InlineData("a\0b")]
    public void Names_that_would_be_unsafe_as_file_or_export_names_are_invalid(string? name)
    {
        Assert.False(VolumeName.IsValid(name));
        var ex = Assert.Throws<VolumeException>(() => VolumeName.Validate(name));
        Assert.Equal(VolumeError.InvalidName, ex.Error);
    }

    [Fact]
    public void A_trailing_newline_is_invalid()
    {
        // Regex '$' also matches before a final '\n', so "^...$" alone lets "disk\n" through
        // (and the store would create "disk\n.raw").
        Assert.False(VolumeName.IsValid("disk\n"));
    }
}
