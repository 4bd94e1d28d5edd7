using System.Security.Cryptography;
using System.Text.Json;
using HsmVault.Crypto.Internal;
using HsmVault.Crypto.Opaque;
using Xunit;

namespace HsmVault.Testing.Opaque;

/// <summary>Expand(oprf_seed, info, 32) in software, as the token computes it with CKM_SHA512_HMAC.</summary>
public sealed class HmacOprfSeedExpander(byte[] oprfSeed) : IOprfSeedExpander
{
    public void ExpandOprfSeed(ReadOnlySpan<byte> info, Span<byte> destination)
    {
        var message = new byte[info.Length + 1];
        info.CopyTo(message);
        message[^1] = 0x01;
        HMACSHA512.HashData(oprfSeed, message).AsSpan(0, 32).CopyTo(destination);
    }
}

/// <summary>Hands out the RFC vectors' random values in protocol order and fails on any mismatch in size or count.</summary>
public sealed class ScriptedRandom(params byte[][] values) : IOpaqueRandom
{
    private readonly Queue<byte[]> _values = new(values);

    public int Remaining => _values.Count;

    public void GetBytes(Span<byte> destination) => Next(destination);

    public void GetScalar(Span<byte> destination) => Next(destination);

    private void Next(Span<byte> destination)
    {
        Assert.True(_values.Count > 0, "The protocol asked for more randomness than the vector supplies.");
        var value = _values.Dequeue();
        Assert.Equal(value.Length, destination.Length);
        value.CopyTo(destination);
    }
}

/// <summary>One ristretto255 vector of RFC 9807 appendix C (copied from ../shared/vectors).</summary>
public sealed record OpaqueVector(
    int Index, bool IsFake, Dictionary<string, byte[]> Inputs, Dictionary<string, byte[]> Intermediates, Dictionary<string, byte[]> Outputs, byte[] ContextBytes)
{
    /// <summary>Every ristretto255 vector of the file.</summary>
    public static IReadOnlyList<OpaqueVector> All { get; } = LoadAll();

    /// <summary>Indices of the vectors with real records, for [MemberData].</summary>
    public static TheoryData<int> RealIndices => [.. All.Where(v => !v.IsFake).Select(v => v.Index)];

    /// <summary>Indices of the fake-record vectors, for [MemberData].</summary>
    public static TheoryData<int> FakeIndices => [.. All.Where(v => v.IsFake).Select(v => v.Index)];

    /// <summary>The vector at <paramref name="index"/> in the file.</summary>
    public static OpaqueVector At(int index) => All.Single(v => v.Index == index);

    public byte[] Input(string name) => Inputs[name];

    public byte[] OptionalInput(string name) => Inputs.TryGetValue(name, out var value) ? value : [];

    public static IReadOnlyList<OpaqueVector> LoadAll()
    {
        var path = Path.Combine(AppContext.BaseDirectory, "Opaque", "Vectors", "opaque-3dh-ristretto255-sha512.json");
        using var document = JsonDocument.Parse(File.ReadAllText(path));
        var result = new List<OpaqueVector>();
        var index = 0;
        foreach (var vector in document.RootElement.EnumerateArray())
        {
            var config = vector.GetProperty("config");
            if (config.GetProperty("Group").GetString() != "ristretto255")
            {
                index++;
                continue;
            }

            result.Add(new OpaqueVector(
                index++,
                config.GetProperty("Fake").GetString() == "True",
                ReadHex(vector.GetProperty("inputs")),
                ReadHex(vector.GetProperty("intermediates")),
                ReadHex(vector.GetProperty("outputs")),
                Convert.FromHexString(config.GetProperty("Context").GetString()!)));
        }

        return result;
    }

    private static Dictionary<string, byte[]> ReadHex(JsonElement element) =>
        element.EnumerateObject().ToDictionary(p => p.Name, p => Convert.FromHexString(p.Value.GetString()!));
}
