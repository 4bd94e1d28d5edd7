using System.Collections.Concurrent;
using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using Grpc.Core;
using HsmVault.Cli.Commands;
using HsmVault.Hsm;
using HsmVault.Testing.Opaque;


namespace HsmVault.Testing.Daemons;

/// <summary>
/// Everything one daemon member needs on disk, made for real: a provisioned SoftHSM2 token
/// with its OPAQUE server key, two tenants' ES256 key pairs (public halves trusted by the
/// daemon), and a data folder. The in-process <see cref="TestDaemon"/> and the child-process
/// <see cref="ChildDaemon"/> both start from one of these, so a test can stop one kind and
/// start the other over the same token and data.
/// </summary>
public sealed class DaemonSetup : IDisposable
{
    /// <summary>The fleet id: the audience of every JWT.</summary>
    public const string FleetId = "e2e-fleet";

    /// <summary>The main tenant (JWT issuer).</summary>
    public const string Tenant = "e2e-tenant";

    /// <summary>A second trusted tenant, with its own key.</summary>
    public const string OtherTenant = "e2e-tenant-b";

    private readonly ConcurrentDictionary<string, byte> _secrets = new(StringComparer.Ordinal);

    private DaemonSetup(string workDirectory, TokenOptions token, ECDsa tenantKey, ECDsa otherTenantKey)
    {
        WorkDirectory = workDirectory;
        Token = token;
        TenantKey = tenantKey;
        OtherTenantKey = otherTenantKey;
        DataDirectory = Path.Combine(workDirectory, "data");
        TenantPrivateKeyFile = Path.Combine(workDirectory, "tenant.key.pem");
        TenantPublicKeyFile = Path.Combine(workDirectory, "tenant.pub.pem");
        OtherTenantPublicKeyFile = Path.Combine(workDirectory, "tenant-b.pub.pem");
        File.WriteAllText(TenantPrivateKeyFile, tenantKey.ExportPkcs8PrivateKeyPem());
        if (!OperatingSystem.IsWindows())
        {
            File.SetUnixFileMode(TenantPrivateKeyFile, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        }
        File.WriteAllText(TenantPublicKeyFile, tenantKey.ExportSubjectPublicKeyInfoPem());
        File.WriteAllText(OtherTenantPublicKeyFile, otherTenantKey.ExportSubjectPublicKeyInfoPem());

        // The PIN must never show up in a log line.
        var pin = File.ReadAllText(token.PinFile!).Trim();
        AddSecret(pin);
    }

    /// <summary>Temporary folder of this member (config, keys, data).</summary>
    public string WorkDirectory { get; }

    /// <summary>How to open the member's token.</summary>
    public TokenOptions Token { get; }

    /// <summary>The member's data folder (SQLite state).</summary>
    public string DataDirectory { get; }

    /// <summary>The main tenant's signing key.</summary>
    public ECDsa TenantKey { get; }

    /// <summary>The second tenant's signing key.</summary>
    public ECDsa OtherTenantKey { get; }

    /// <summary>The main tenant's private key as a PEM file (for the CLI's --tenant-key).</summary>
    public string TenantPrivateKeyFile { get; }

    /// <summary>The main tenant's public key, trusted by the daemon.</summary>
    public string TenantPublicKeyFile { get; }

    /// <summary>The second tenant's public key, trusted by the daemon.</summary>
    public string OtherTenantPublicKeyFile { get; }

    /// <summary>Strings that must never appear in any daemon output: the PIN, test passwords, backup keys.</summary>
    public IReadOnlyCollection<string> Secrets => [.. _secrets.Keys];

    /// <summary>Creates a token, provisions it (fleet keys and the OPAQUE server key), and writes the tenants' keys.</summary>
    /// <param name="maxConcurrentOperations">The daemon's cap on concurrent token operations.</param>
    public static DaemonSetup Create(int maxConcurrentOperations = 2)
    {
        var token = SoftHsmEnvironment.Shared.CreateProvisionedToken(maxConcurrentOperations: maxConcurrentOperations);
        using (var opened = Pkcs11VaultToken.Open(token))
        {
            FleetKeys.CreateAkeKey(opened);
        }

        var workDirectory = Directory.CreateTempSubdirectory("hsmvault-e2e-").FullName;
        return new DaemonSetup(workDirectory, token, ECDsa.Create(ECCurve.NamedCurves.nistP256), ECDsa.Create(ECCurve.NamedCurves.nistP256));
    }

    /// <summary>
    /// The daemon's configuration as flat keys, with <see cref="TestOpaqueSettings"/>'s OPAQUE
    /// configuration; the listening URL defaults to an ephemeral loopback port.
    /// </summary>
    public Dictionary<string, string?> Configuration(string url = "http://127.0.0.1:0")
    {
        var settings = new Dictionary<string, string?>(StringComparer.Ordinal)
        {
            ["HsmVault:FleetId"] = FleetId,
            ["HsmVault:MemberId"] = "member-1",
            ["HsmVault:DataDirectory"] = DataDirectory,
            ["HsmVault:Token:ModulePath"] = Token.ModulePath,
            ["HsmVault:Token:TokenLabel"] = Token.TokenLabel,
            ["HsmVault:Token:PinFile"] = Token.PinFile,
            ["HsmVault:Token:MaxConcurrentOperations"] = Token.MaxConcurrentOperations.ToString(CultureInfo.InvariantCulture),
            ["HsmVault:Auth:Tenants:0:Issuer"] = Tenant,
            ["HsmVault:Auth:Tenants:0:PublicKeyFile"] = TenantPublicKeyFile,
            ["HsmVault:Auth:Tenants:1:Issuer"] = OtherTenant,
            ["HsmVault:Auth:Tenants:1:PublicKeyFile"] = OtherTenantPublicKeyFile,
            ["Kestrel:Endpoints:Grpc:Url"] = url,
        };
        TestOpaqueSettings.AddTo(settings);
        return settings;
    }

    /// <summary>Writes flat configuration keys as the nested JSON file an operator would write; returns its path.</summary>
    public string WriteJsonConfig(IReadOnlyDictionary<string, string?> settings, string name = "hsmvaultd.json") =>
        DaemonConfigFile.Write(settings, Path.Combine(WorkDirectory, name));

    /// <summary>A valid JWT for <paramref name="user"/> of <paramref name="tenant"/> (default: the main tenant).</summary>
    public string Mint(string user, string tenant = Tenant) =>
        DevelopmentTokens.Mint(tenant == OtherTenant ? OtherTenantKey : TenantKey, tenant, user, FleetId, TimeSpan.FromMinutes(30));

    /// <summary>gRPC metadata carrying a valid JWT for <paramref name="user"/>.</summary>
    public Metadata Headers(string user, string tenant = Tenant) => new() { { "authorization", "Bearer " + Mint(user, tenant) } };

    /// <summary>Remembers a string that no daemon output may contain.</summary>
    public void AddSecret(string secret)
    {
        ArgumentException.ThrowIfNullOrEmpty(secret);
        _secrets.TryAdd(secret, 0);
    }

    /// <summary>A fresh random password, remembered as a secret.</summary>
    public byte[] NewPassword()
    {
        var password = "pw-" + Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(12));
        AddSecret(password);
        return Encoding.UTF8.GetBytes(password);
    }

    /// <summary>A fresh random 32-byte backup key; its hex and base64 forms are remembered as secrets.</summary>
    public byte[] NewBackupKey()
    {
        var key = RandomNumberGenerator.GetBytes(32);
        AddSecret(Convert.ToHexStringLower(key));
        AddSecret(Convert.ToBase64String(key));
        return key;
    }

    /// <summary>The secrets that occur in <paramref name="text"/> (case-insensitively); empty when clean.</summary>
    public IReadOnlyList<string> SecretsIn(string text) =>
        [.. Secrets.Where(secret => text.Contains(secret, StringComparison.OrdinalIgnoreCase))];

    /// <summary>Deletes the work folder (the token stays in the process's SoftHSM2 folder).</summary>
    public void Dispose()
    {
        TenantKey.Dispose();
        OtherTenantKey.Dispose();
        try
        {
            Directory.Delete(WorkDirectory, recursive: true);
        }
        catch (IOException)
        {
            // Best effort: a leftover temp folder is harmless.
        }
    }
}
