using System.Globalization;
using System.Security.Cryptography;
using Grpc.Net.Client;
using HsmVault.Client.Bundles;
using HsmVault.Protocol.Bundles;
using HsmVault.Crypto.Signatures;
using HsmVault.Hsm;
using HsmVault.Transparency.Bundles;
using Microsoft.Extensions.Configuration;
using WitnessClient = HsmVault.Protocol.V1.Witness.WitnessClient;

namespace HsmVault.Cli.Commands;

/// <summary>Operator commands for validation bundles: the operator key, and publishing a fleet's bundle.</summary>
internal static class BundleCommands
{
    /// <summary>
    /// <c>hsmvault operator-key new --private FILE --public FILE</c>: an ECDSA P-256 operator key.
    /// The private key goes to a PKCS#8 PEM file created 0600; the public file holds the base64
    /// uncompressed point that witnesses (OperatorKeys) and clients pin.
    /// </summary>
    public static int NewOperatorKey(Arguments args)
    {
        var privateFile = args.Required("private");
        var publicFile = args.Required("public");
        args.RejectUnknown();
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        using (var stream = PrivateFiles.Create(privateFile, FileMode.CreateNew))
        using (var writer = new StreamWriter(stream))
        {
            writer.Write(key.ExportPkcs8PrivateKeyPem());
        }

        var publicKey = PublicKeyOf(key);
        File.WriteAllText(publicFile, Convert.ToBase64String(publicKey.PublicKey) + "\n");
        Console.WriteLine($"wrote {privateFile} (keep it offline, 0600) and {publicFile}: EcdsaP256Sha256 {Convert.ToBase64String(publicKey.PublicKey)}");
        return 0;
    }

    /// <summary>
    /// <c>hsmvault fleet bundle --config M1.json ... --namespace NS --epoch N --operator-key FILE
    /// --witness URL ... --out FILE [--evidence FILE | --evidence-digest HEX] [--days N | --minutes N]</c>:
    /// builds the bundle from the members' tokens and configurations, logs it at every witness,
    /// has member 1's token countersign each witness's signature, and writes the SignedBundle.
    /// </summary>
    public static async Task<int> PublishAsync(Arguments args, CancellationToken cancellationToken)
    {
        var configs = args.Many("config");
        var ns = args.Required("namespace");
        var epoch = ulong.Parse(args.Required("epoch"), NumberStyles.None, CultureInfo.InvariantCulture);
        var operatorKeyFile = args.Required("operator-key", "HSMVAULT_OPERATOR_KEY_FILE");
        var witnesses = args.Many("witness");
        var output = args.Required("out");
        var evidenceFile = args.Optional("evidence");
        var evidenceHex = args.Optional("evidence-digest");
        var days = args.Int("days", 30);
        var minutes = args.Int("minutes", 0);
        args.RejectUnknown();
        if (configs.Count == 0 || witnesses.Count == 0)
        {
            throw new UsageException("name every member with --config FILE and every witness with --witness URL");
        }

        if (evidenceFile is not null && evidenceHex is not null)
        {
            throw new UsageException("give the evidence as --evidence FILE or as --evidence-digest HEX, not both");
        }

        var evidence = evidenceFile is not null ? SHA256.HashData(await File.ReadAllBytesAsync(evidenceFile, cancellationToken))
            : evidenceHex is not null ? Convert.FromHexString(evidenceHex)
            : new byte[32];
        using var operatorKey = ECDsa.Create();
        operatorKey.ImportFromPem(await File.ReadAllTextAsync(operatorKeyFile, cancellationToken));

        var keys = new List<BundleKey>();
        var members = new List<BundleMember>();
        MemberSettings? first = null;
        foreach (var config in configs)
        {
            var configuration = new ConfigurationBuilder().AddJsonFile(Path.GetFullPath(config), optional: false).Build();
            var vault = configuration.GetSection(MemberSettings.SectionName).Get<MemberSettings>()
                ?? throw new UsageException($"'{config}' has no {MemberSettings.SectionName} section");
            var endpoint = configuration["HsmVault:Bundle:Endpoint"] ?? configuration["Kestrel:Endpoints:Grpc:Url"]
                ?? throw new UsageException($"'{config}' names no client endpoint (HsmVault:Bundle:Endpoint or Kestrel:Endpoints:Grpc:Url)");
            using var token = Pkcs11VaultToken.Open(TokenCommands.ReadTokenOptions(config));
            if (first is null)
            {
                first = vault;
                using var akeKey = FleetKeys.LoadAkeKey(token);
                keys.Add(new BundleKey(BundleKeyRole.OpaqueServer, "", 0, akeKey.PublicKey.ToArray()));
                keys.Add(new BundleKey(BundleKeyRole.FleetSigning, "", (ushort)token.SigningKey.Algorithm, token.SigningKey.PublicKey));
            }
            else if (vault.FleetId != first.FleetId)
            {
                throw new UsageException($"'{config}' is a member of fleet '{vault.FleetId}', not '{first.FleetId}'");
            }

            keys.Add(new BundleKey(BundleKeyRole.MemberIdentity, vault.MemberId, (ushort)token.MemberIdentityKey.Algorithm, token.MemberIdentityKey.PublicKey));
            members.Add(new BundleMember(vault.MemberId, endpoint));
        }

        var now = DateTimeOffset.UtcNow;
        var bundle = new ValidationBundle(ns, first!.FleetId, epoch, keys,
            new BundleOpaqueConfiguration(BundleOpaqueConfiguration.DefaultSuite, (uint)first.Argon2MemoryKib, (uint)first.Argon2Iterations,
                (uint)first.Argon2Parallelism, System.Text.Encoding.UTF8.GetBytes(first.OpaqueContext)),
            members, (ulong)now.ToUnixTimeMilliseconds(), (ulong)(minutes > 0 ? now.AddMinutes(minutes) : now.AddDays(days)).ToUnixTimeMilliseconds(), evidence);

        var channels = witnesses.Select(w => GrpcChannel.ForAddress(w)).ToList();
        try
        {
            using var countersigner = Pkcs11VaultToken.Open(TokenCommands.ReadTokenOptions(configs[0]));
            var publisher = new BundlePublisher(
                [.. channels.Select(c => new WitnessClient(c))],
                message => new BundleSignature(SignatureAlgorithm.EcdsaP256Sha256,
                    operatorKey.SignData(message, HashAlgorithmName.SHA256, DSASignatureFormat.IeeeP1363FixedFieldConcatenation)),
                message => new BundleSignature(countersigner.SigningKey.Algorithm, countersigner.Sign(message)));
            var signed = await publisher.PublishAsync(bundle, cancellationToken);
            BundleMessages.WriteFile(output, signed);
            Console.WriteLine(
                $"published '{ns}' epoch {epoch} of fleet '{bundle.FleetId}' (digest {Convert.ToHexStringLower(BundleCodec.Digest(signed.Bundle.Span))}) "
                + $"at {witnesses.Count} witness(es); wrote {output}");
        }
        finally
        {
            channels.ForEach(c => c.Dispose());
        }

        return 0;
    }

    private static SigningKeyDescription PublicKeyOf(ECDsa key)
    {
        var q = key.ExportParameters(includePrivateParameters: false).Q;
        return new SigningKeyDescription(SignatureAlgorithm.EcdsaP256Sha256, [0x04, .. q.X!, .. q.Y!]);
    }
}
