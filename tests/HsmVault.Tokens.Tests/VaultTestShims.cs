using System.Security.Cryptography;
using HsmVault.Hsm;
using HsmVault.Testing;

// The vault tests linked from HsmVault.Vault.Tests (VaultHarness, OpaqueVectorThroughTokenTests)
// find their token through these helpers: here they open NSS softoken, so the same tests run
// over a second PKCS#11 implementation.
namespace HsmVault.Vault.Tests;

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
    public string Path { get; } = Directory.CreateTempSubdirectory("hsmvault-tokens-tests-").FullName;

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
    /// <summary>A fresh part of the NSS token with generated fleet keys, opened.</summary>
    public static Pkcs11VaultToken OpenProvisioned() => NssEnvironment.Shared.OpenProvisionedToken();

    /// <summary>A fresh part of the NSS token whose OPRF seed is <paramref name="oprfSeed"/> (the other fleet keys generated), opened.</summary>
    public static Pkcs11VaultToken OpenWithOprfSeed(byte[] oprfSeed)
    {
        var options = NssEnvironment.Shared.CreateToken();
        TokenProvisioner.ImportOprfSeed(options, oprfSeed);
        TokenProvisioner.ProvisionFleetKeys(options, new FleetKeyGenerationOptions { KeepExisting = true });
        return Pkcs11VaultToken.Open(options);
    }
}

internal static class Bytes
{
    public static byte[] Random(int length) => RandomNumberGenerator.GetBytes(length);

    public static string Hex(byte[] value) => Convert.ToHexString(value);
}
