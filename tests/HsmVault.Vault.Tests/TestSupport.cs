using System.Security.Cryptography;
using System.Text.Json;
using HsmVault.Crypto.Internal;
using HsmVault.Hsm;
using HsmVault.Testing;

namespace HsmVault.Vault.Tests;

/// <summary>Hands out the RFC vectors' random values in protocol order and fails on any mismatch in size or count.</summary>
internal sealed class ScriptedRandom(params byte[][] values) : IOpaqueRandom
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

/// <summary>One ristretto255 vector of RFC 9807 appendix C.</summary>
internal sealed record OpaqueVector(
    int Index, bool IsFake, Dictionary<string, byte[]> Inputs, Dictionary<string, byte[]> Outputs, byte[] ContextBytes)
{
    public byte[] Input(string name) => Inputs[name];

    public byte[] OptionalInput(string name) => Inputs.TryGetValue(name, out var value) ? value : [];

    public static IReadOnlyList<OpaqueVector> LoadAll()
    {
        var path = Path.Combine(AppContext.BaseDirectory, "Vectors", "opaque-3dh-ristretto255-sha512.json");
        using var document = JsonDocument.Parse(File.ReadAllText(path));
        var result = new List<OpaqueVector>();
        var index = 0;
        foreach (var vector in document.RootElement.EnumerateArray())
        {
            var config = vector.GetProperty("config");
            if (config.GetProperty("Group").GetString() == "ristretto255")
            {
                result.Add(new OpaqueVector(
                    index,
                    config.GetProperty("Fake").GetString() == "True",
                    ReadHex(vector.GetProperty("inputs")),
                    ReadHex(vector.GetProperty("outputs")),
                    Convert.FromHexString(config.GetProperty("Context").GetString()!)));
            }

            index++;
        }

        return result;
    }

    private static Dictionary<string, byte[]> ReadHex(JsonElement element) =>
        element.EnumerateObject().ToDictionary(p => p.Name, p => Convert.FromHexString(p.Value.GetString()!));
}

/// <summary>A clock that moves only when the test says so.</summary>
internal sealed class FakeTimeProvider : TimeProvider
{
    private DateTimeOffset _now = new(2026, 1, 1, 0, 0, 0, TimeSpan.Zero);

    public override DateTimeOffset GetUtcNow() => _now;

    public void Advance(TimeSpan by) => _now += by;
}

/// <summary>A temporary folder removed when disposed.</summary>
internal sealed class TempDirectory : IDisposable
{
    public string Path { get; } = Directory.CreateTempSubdirectory("hsmvault-vault-tests-").FullName;

    public string Sub(string name) => System.IO.Path.Combine(Path, name);

    public void Dispose()
    {
        try
        {
            Directory.Delete(Path, recursive: true);
        }
        catch (IOException)
        {
            // Best effort: a leftover temp folder is harmless.
        }
    }
}

internal static class Tokens
{
    /// <summary>A fresh SoftHSM2 token with generated fleet keys, opened.</summary>
    public static Pkcs11VaultToken OpenProvisioned() => SoftHsmEnvironment.Shared.OpenProvisionedToken();

    /// <summary>A fresh SoftHSM2 token whose OPRF seed is <paramref name="oprfSeed"/> (the other fleet keys generated), opened.</summary>
    public static Pkcs11VaultToken OpenWithOprfSeed(byte[] oprfSeed)
    {
        var options = SoftHsmEnvironment.Shared.CreateToken();
        TokenProvisioner.ImportOprfSeed(options, oprfSeed);
        TokenProvisioner.ProvisionFleetKeys(options, new FleetKeyGenerationOptions { KeepExisting = true });
        return Pkcs11VaultToken.Open(options);
    }
}

internal static class Bytes
{
    /// <summary>Whether <paramref name="needle"/> occurs anywhere in the file (read without disturbing a writer that has it open).</summary>
    public static bool FileContains(string path, ReadOnlySpan<byte> needle)
    {
        if (!File.Exists(path))
        {
            return false;
        }

        using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
        using var memory = new MemoryStream();
        stream.CopyTo(memory);
        return memory.GetBuffer().AsSpan(0, (int)memory.Length).IndexOf(needle) >= 0;
    }

    public static byte[] Random(int length) => RandomNumberGenerator.GetBytes(length);

    public static byte[] Filled(int length, byte value)
    {
        var result = new byte[length];
        result.AsSpan().Fill(value);
        return result;
    }

    public static string Hex(byte[] value) => Convert.ToHexString(value);
}
