namespace Roam.Testing;

public static class TestData
{
    /// <summary><paramref name="length"/> random bytes, the same for the same seed (a test's data is reproducible).</summary>
    public static byte[] RandomBytes(int length, int seed)
    {
        var data = new byte[length];
        new Random(seed).NextBytes(data);
        return data;
    }
}
