using System.Globalization;
using HsmVault.Evidence;
using HsmVault.Hsm;
using Microsoft.Extensions.Configuration;

namespace HsmVault.Cli.Commands;

/// <summary>Operator commands: provisioning a token's keys, and development tenant keys and JWTs.</summary>
internal static class TokenCommands
{
    /// <summary>
    /// <c>hsmvault fleet init --config m1.json --config m2.json ...</c>: generates the fleet keys
    /// in the first member's token and copies them to every other member's token by the key
    /// ceremony (wrapped under ECDH-derived keys, never in plaintext outside a token), then makes
    /// the originals non-extractable, whatever happened on the way: keys must never stay
    /// extractable. A re-run finishes what an interrupted one left (while the originals are still
    /// extractable); a fleet whose members all have their keys is left as it is.
    /// With <c>--evidence-out FILE --daemon-build DIR [--epoch N] [--fleet F]</c> it records the
    /// ceremony as deployment evidence (README, "Deployment evidence"): each step signed by the
    /// acting member's token, the whole document by every member's.
    /// </summary>
    public static int InitFleet(Arguments args)
    {
        var configs = args.Many("config");
        var members = configs.Select(ReadTokenOptions).ToList();
        var evidenceOut = args.Optional("evidence-out");
        var daemonBuildDirectory = args.Optional("daemon-build");
        var epoch = (ulong)args.Int("epoch", 1);
        var fleet = args.Optional("fleet");
        args.RejectUnknown();
        if (members.Count == 0)
        {
            throw new UsageException("name each member's daemon configuration with --config FILE");
        }

        if (evidenceOut is null && (daemonBuildDirectory is not null || fleet is not null))
        {
            throw new UsageException("--daemon-build and --fleet describe the deployment evidence: give --evidence-out FILE too");
        }

        CeremonyRecorder? recorder = null;
        DaemonBuild? daemonBuild = null;
        if (evidenceOut is not null)
        {
            if (daemonBuildDirectory is null)
            {
                throw new UsageException("deployment evidence names the daemon build: give --daemon-build DIR (the published daemon folder)");
            }

            if (epoch == 0)
            {
                throw new UsageException("--epoch must be 1 or more");
            }

            // Hash the build first: a missing folder must not cost a ceremony.
            daemonBuild = DaemonBuildHash.Compute(daemonBuildDirectory);
            fleet ??= ReadFleetId(configs[0]);
            recorder = new CeremonyRecorder(fleet, epoch, members);
        }

        // Each member's own identity key first: it is generated in that token, never copied, and
        // a token provisioned before identity keys existed gets one here.
        members.ForEach(member => TokenProvisioner.ProvisionMemberIdentityKey(member));
        var states = members.Select(ProvisioningOf).ToList();
        if (recorder is not null && states.Any(state => state != MemberProvisioning.NoKeys))
        {
            throw new UsageException(
                "deployment evidence records a whole ceremony, but some members already hold fleet keys; " +
                "run `fleet init --evidence-out` on fresh tokens (a fleet's evidence is made once, when its keys are made)");
        }

        if (states.All(state => state == MemberProvisioning.Complete))
        {
            Console.WriteLine($"all {members.Count} members already hold the fleet keys; nothing to do");
            return 0;
        }

        var origin = members[0];
        if (states[0] == MemberProvisioning.NoKeys)
        {
            var generated = TokenProvisioner.ProvisionFleetKeys(origin, new FleetKeyGenerationOptions { ExtractableForCeremony = members.Count > 1 });
            recorder?.Generated(0, generated.Created);
            Console.WriteLine($"generated the fleet keys in token '{Name(origin)}'");
        }

        byte[] sealedAkeKey;
        using (var token = Pkcs11VaultToken.Open(origin))
        {
            if (!FleetKeys.HasAkeKey(token))
            {
                FleetKeys.CreateAkeKey(token);
            }

            sealedAkeKey = token.ReadDataObject(FleetKeys.AkePrivateKeyObject)!;
        }

        try
        {
            for (var i = 1; i < members.Count; i++)
            {
                if (states[i] == MemberProvisioning.NoKeys)
                {
                    var transcript = FleetCeremony.CopyFleetKeys(origin, members[i]);
                    recorder?.Copied(0, i, transcript);
                    Console.WriteLine($"copied {transcript.CopiedKeys.Count} fleet keys to token '{Name(members[i])}'");
                }

                if (states[i] != MemberProvisioning.Complete)
                {
                    // The AKE key is sealed under the record key, which the member now shares:
                    // its ciphertext is copied as it is.
                    using var token = Pkcs11VaultToken.Open(members[i]);
                    token.WriteDataObject(FleetKeys.AkePrivateKeyObject, sealedAkeKey);
                    Console.WriteLine($"copied the sealed OPAQUE server key to token '{Name(members[i])}'");
                }
            }
        }
        finally
        {
            if (members.Count > 1 && FleetCeremony.LockFleetKeys(origin) is { Count: > 0 } locked)
            {
                recorder?.Locked(0, locked);
                Console.WriteLine($"made the fleet keys in '{Name(origin)}' non-extractable");
            }
        }

        if (recorder is not null)
        {
            var evidence = recorder.Finish(daemonBuild!, DateTimeOffset.UtcNow);
            File.WriteAllBytes(evidenceOut!, evidence.Encode());
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"wrote the deployment evidence of fleet '{evidence.Body.Fleet}' epoch {evidence.Body.Epoch} to {evidenceOut}; its digest (sha256sum) is {Convert.ToHexStringLower(evidence.Digest())}"));
        }

        return 0;
    }

    /// <summary>The fleet id (<c>HsmVault:FleetId</c>) of a daemon configuration file.</summary>
    private static string ReadFleetId(string configFile)
    {
        var configuration = new ConfigurationBuilder().AddJsonFile(Path.GetFullPath(configFile), optional: false).Build();
        var fleet = configuration[$"{MemberSettings.SectionName}:{nameof(MemberSettings.FleetId)}"];
        return string.IsNullOrWhiteSpace(fleet)
            ? throw new UsageException($"'{configFile}' has no {MemberSettings.SectionName}:{nameof(MemberSettings.FleetId)}; name the fleet with --fleet F")
            : fleet;
    }

    private enum MemberProvisioning
    {
        NoKeys,
        KeysWithoutAkeKey,
        Complete,
    }

    private static MemberProvisioning ProvisioningOf(TokenOptions options)
    {
        try
        {
            using var token = Pkcs11VaultToken.Open(options);
            return FleetKeys.HasAkeKey(token) ? MemberProvisioning.Complete : MemberProvisioning.KeysWithoutAkeKey;
        }
        catch (TokenConfigurationException e) when (e.FleetKeysMissing)
        {
            return MemberProvisioning.NoKeys;
        }
    }

    /// <summary><c>hsmvault fleet certs --out DIR --fleet F --member ID ...</c>: the members' mutual-TLS certificates.</summary>
    public static int IssuePeerCertificates(Arguments args)
    {
        var directory = args.Required("out");
        var fleet = args.Required("fleet");
        var members = args.Many("member");
        var days = args.Int("days", 365);
        args.RejectUnknown();
        if (members.Count < 2)
        {
            throw new UsageException("name every member with --member ID (at least two; a fleet of one needs no peer certificates)");
        }

        PeerCertificateAuthority.Issue(directory, fleet, members, TimeSpan.FromDays(days));
        Console.WriteLine($"wrote peer-ca.pem and a certificate and key for {string.Join(", ", members)} into {directory}; the CA's key was not kept");
        return 0;
    }

    /// <summary><c>hsmvault token mint</c>: a development JWT for one user.</summary>
    public static int Mint(Arguments args)
    {
        var keyFile = args.Required("tenant-key", "HSMVAULT_TENANT_KEY_FILE");
        var tenant = args.Optional("tenant", "HSMVAULT_TENANT") ?? "dev-tenant";
        var user = args.Required("user");
        var fleet = args.Required("fleet", "HSMVAULT_FLEET");
        var minutes = args.Int("minutes", 60);
        args.RejectUnknown();
        Console.WriteLine(DevelopmentTokens.Mint(keyFile, tenant, user, fleet, TimeSpan.FromMinutes(minutes)));
        return 0;
    }

    /// <summary><c>hsmvault tenant-key new</c>: a P-256 key pair for a development tenant.</summary>
    public static int NewTenantKey(Arguments args)
    {
        var privateFile = args.Required("private");
        var publicFile = args.Required("public");
        args.RejectUnknown();
        DevelopmentTokens.CreateKeyPair(privateFile, publicFile);
        Console.WriteLine($"wrote {privateFile} (keep it with the tenant's backend) and {publicFile} (give it to the fleet)");
        return 0;
    }

    private static string Name(TokenOptions options) => options.TokenLabel ?? options.TokenSerial ?? "?";

    /// <summary>Reads the <c>HsmVault:Token</c> section of a daemon configuration file.</summary>
    public static TokenOptions ReadTokenOptions(string configFile)
    {
        var configuration = new ConfigurationBuilder().AddJsonFile(Path.GetFullPath(configFile), optional: false).Build();
        return configuration.GetSection(TokenOptions.SectionName).Get<TokenOptions>()
            ?? throw new UsageException($"'{configFile}' has no {TokenOptions.SectionName} section");
    }
}
