using System.Security.Cryptography;
using Grpc.Net.Client;
using HsmVault.Client;
using HsmVault.Crypto.Signatures;
using HsmVault.Transparency;
using HsmVault.Transparency.Bundles;
using HsmVault.Transparency.Notes;
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

        var successorJwtFile = args.Optional("successor-jwt-file", "HSMVAULT_SUCCESSOR_JWT_FILE");
        var trust = FleetTrustOptions.Read(args);
        var channel = GrpcChannel.ForAddress(server);

        // Each fleet gets a token with its own fleet id as audience: minted here in development, or read
        // from the successor's JWT file. A successor is reached at its bundle's first member endpoint; its
        // channel lives as long as this process.
        VaultClient Connect(GrpcChannel to, string? tokenFile)
        {
            VaultClient? client = null;
            client = new VaultClient(to.CreateCallInvoker(), trust: trust, bearerToken: async cancellationToken =>
            {
                if (jwtFile is not null)
                {
                    var file = tokenFile ?? throw new UsageException(
                        "the fleet names a successor, whose members need a JWT for their fleet id: pass it with --successor-jwt-file FILE (or HSMVAULT_SUCCESSOR_JWT_FILE)");
                    return (await File.ReadAllTextAsync(file, cancellationToken)).Trim();
                }

                var fleet = await client!.GetFleetInfoAsync(cancellationToken);
                return DevelopmentTokens.Mint(tenantKeyFile!, tenant, user!, fleet.FleetId, TimeSpan.FromMinutes(5));
            }, successorClient: successor => Connect(GrpcChannel.ForAddress(successor.Bundle.Members[0].Endpoint), successorJwtFile));
            return client;
        }

        var client = Connect(channel, jwtFile);
        return (channel, client);
    }
}

/// <summary>
/// The CLI's trust in fleets: the pinned witness keys, the witness policy, the operator keys and
/// the trust state file, from options or environment variables. Without pinned witnesses the CLI
/// refuses to talk to a fleet, unless told with --unverified-fleet that it is a development fleet.
/// </summary>
internal static class FleetTrustOptions
{
    /// <summary>The trust state's default file: <c>$XDG_CONFIG_HOME/hsmvault/trust-state.json</c> (<c>~/.config/...</c>).</summary>
    public static string DefaultTrustStateFile =>
        Path.Combine(Environment.GetEnvironmentVariable("XDG_CONFIG_HOME") is { Length: > 0 } config ? config
            : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".config"), "hsmvault", "trust-state.json");

    /// <summary>The trust settings, or null for --unverified-fleet.</summary>
    /// <exception cref="UsageException">Nothing is pinned and --unverified-fleet is not given, or a key does not parse.</exception>
    public static FleetTrust? Read(Arguments args)
    {
        var witnessKeys = ManyOrEnvironment(args, "witness-key", "HSMVAULT_WITNESS_KEYS");
        var operatorKeys = ManyOrEnvironment(args, "operator-key", "HSMVAULT_OPERATOR_KEYS");
        var policy = args.Optional("witness-policy", "HSMVAULT_WITNESS_POLICY");
        var stateFile = args.Optional("trust-state", "HSMVAULT_TRUST_STATE") ?? DefaultTrustStateFile;
        if (args.Flag("unverified-fleet"))
        {
            Console.Error.WriteLine("hsmvault: warning: --unverified-fleet: the fleet's keys and Argon2id parameters are taken from whoever answers (development only)");
            return null;
        }

        if (witnessKeys.Count == 0 || operatorKeys.Count == 0)
        {
            throw new UsageException(
                "pin the fleet's witnesses and operator: --witness-key VKEY ... (HSMVAULT_WITNESS_KEYS) and --operator-key KEY ... (HSMVAULT_OPERATOR_KEYS), "
                + "optionally --witness-policy K (HSMVAULT_WITNESS_POLICY, default: every pinned witness) and --trust-state FILE (HSMVAULT_TRUST_STATE); "
                + "or, for a development fleet without a validation bundle, --unverified-fleet");
        }

        var witnesses = witnessKeys.Select(ParseWitnessKey).ToList();
        var required = policy is null ? witnesses.Count
            : int.TryParse(policy, out var k) && k >= 1 && k <= witnesses.Count ? k
            : throw new UsageException($"--witness-policy must be a number of witnesses from 1 to the {witnesses.Count} pinned; got '{policy}'");
        Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(stateFile))!);
        return new FleetTrust(new BundleTrustPolicy(witnesses, required, [.. operatorKeys.Select(ParseOperatorKey)]), stateFile);
    }

    /// <summary>An operator key: the base64 public key (65-byte P-256 point or 32-byte Ed25519 key), or a file holding it (as <c>operator-key new --public</c> writes).</summary>
    public static SigningKeyDescription ParseOperatorKey(string text)
    {
        var value = File.Exists(text) ? File.ReadAllText(text).Trim() : text.Trim();
        byte[] key;
        try
        {
            key = Convert.FromBase64String(value);
        }
        catch (FormatException)
        {
            throw new UsageException($"operator key '{text}' is neither base64 nor a file holding it");
        }

        return key.Length switch
        {
            65 when key[0] == 0x04 => new SigningKeyDescription(SignatureAlgorithm.EcdsaP256Sha256, key),
            32 => new SigningKeyDescription(SignatureAlgorithm.Ed25519, key),
            _ => throw new UsageException($"operator key '{text}' is {key.Length} bytes: expected an uncompressed P-256 point (65) or an Ed25519 key (32)"),
        };
    }

    private static NoteVerifierKey ParseWitnessKey(string text)
    {
        try
        {
            return NoteVerifierKey.Parse(text);
        }
        catch (TransparencyException e)
        {
            throw new UsageException($"witness key '{text}' is not a note verifier key (name+keyid+base64, as the witness prints it): {e.Message}");
        }
    }

    private static List<string> ManyOrEnvironment(Arguments args, string name, string variable)
    {
        var values = args.Many(name);
        return values.Count > 0 ? [.. values]
            : [.. (Environment.GetEnvironmentVariable(variable) ?? "").Split(' ', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)];
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
