using System.Security.Cryptography;
using HsmVault.Hsm;
using HsmVault.Testing;

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
