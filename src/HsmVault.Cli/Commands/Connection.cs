using System.Security.Cryptography;
using Grpc.Net.Client;
using HsmVault.Client;
using Microsoft.IdentityModel.JsonWebTokens;
using Microsoft.IdentityModel.Tokens;

namespace HsmVault.Cli.Commands;

/// <summary>
/// How the CLI reaches a member and proves who the user is: a JWT from a file, or, for
/// development, one minted on the spot with the tenant's private key.
/// </summary>
internal static class Connection
{
    public const string DefaultServer = "http://127.0.0.1:7101";

    public static (GrpcChannel Channel, VaultClient Client) Open(Arguments args)
    {
        var server = args.Optional("server", "HSMVAULT_SERVER") ?? DefaultServer;
        var jwtFile = args.Optional("jwt-file", "HSMVAULT_JWT_FILE");
        var tenantKeyFile = args.Optional("tenant-key", "HSMVAULT_TENANT_KEY_FILE");
        var tenant = args.Optional("tenant", "HSMVAULT_TENANT") ?? "dev-tenant";
        var user = args.Optional("user");
        if (jwtFile is null && (tenantKeyFile is null || user is null))
        {
            throw new UsageException("say who you are: --jwt-file FILE (or HSMVAULT_JWT_FILE), or for development --user U with --tenant-key FILE (or HSMVAULT_TENANT_KEY_FILE)");
        }

        var channel = GrpcChannel.ForAddress(server);
        VaultClient? client = null;
        client = new VaultClient(channel.CreateCallInvoker(), async cancellationToken =>
        {
            if (jwtFile is not null)
            {
                return (await File.ReadAllTextAsync(jwtFile, cancellationToken)).Trim();
            }

            var fleet = await client!.GetFleetInfoAsync(cancellationToken);
            return DevelopmentTokens.Mint(tenantKeyFile!, tenant, user!, fleet.FleetId, TimeSpan.FromMinutes(5));
        });
        return (channel, client);
    }
}

/// <summary>Development JWTs: ES256, signed with a tenant's private key kept in a PEM file.</summary>
public static class DevelopmentTokens
{
    /// <summary>Mints a token for <paramref name="user"/> of <paramref name="tenant"/>, for <paramref name="fleetId"/>.</summary>
    public static string Mint(string privateKeyFile, string tenant, string user, string fleetId, TimeSpan lifetime)
    {
        using var key = ECDsa.Create();
        key.ImportFromPem(File.ReadAllText(privateKeyFile));
        return Mint(key, tenant, user, fleetId, lifetime);
    }

    /// <summary>Mints a token with an in-memory key.</summary>
    public static string Mint(ECDsa key, string tenant, string user, string fleetId, TimeSpan lifetime)
    {
        var now = DateTime.UtcNow;
        return new JsonWebTokenHandler().CreateToken(new SecurityTokenDescriptor
        {
            Issuer = tenant,
            Audience = fleetId,
            Claims = new Dictionary<string, object> { [JwtRegisteredClaimNames.Sub] = user },
            IssuedAt = now,
            NotBefore = now,
            Expires = now + lifetime,
            // No provider cache: the caller owns (and disposes) the key, so a cached provider
            // would outlive it.
            SigningCredentials = new SigningCredentials(
                new ECDsaSecurityKey(key) { CryptoProviderFactory = new CryptoProviderFactory { CacheSignatureProviders = false } },
                SecurityAlgorithms.EcdsaSha256),
        });
    }

    /// <summary>Writes a new P-256 tenant key pair as PEM files (private file mode 0600).</summary>
    public static void CreateKeyPair(string privateKeyFile, string publicKeyFile)
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        WritePrivate(privateKeyFile, key.ExportPkcs8PrivateKeyPem());
        File.WriteAllText(publicKeyFile, key.ExportSubjectPublicKeyInfoPem());
    }

    private static void WritePrivate(string path, string pem)
    {
        using var stream = PrivateFiles.Create(path, FileMode.CreateNew);
        using var writer = new StreamWriter(stream);
        writer.Write(pem);
    }
}
