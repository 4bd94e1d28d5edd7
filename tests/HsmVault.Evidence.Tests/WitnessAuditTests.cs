using System.Globalization;
using System.Security.Cryptography;
using Google.Protobuf;
using Grpc.Core;
using Grpc.Net.Client;
using HsmVault.Crypto.Signatures;
using HsmVault.Hsm;
using HsmVault.Protocol.V1;
using HsmVault.Testing;
using HsmVault.Transparency;
using HsmVault.Transparency.Bundles;
using HsmVault.Transparency.Notes;
using HsmVault.Witness;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace HsmVault.Evidence.Tests;

/// <summary>`hsmvault audit` against a real witness on Kestrel at 127.0.0.1 port 0, with its own SoftHSM2 token.</summary>
public sealed class WitnessAuditTests : IAsyncLifetime
{
    private const string Origin = "witness.test/evidence";
    private const string Namespace = "fleet-a";
    private readonly ECDsa _operator = ECDsa.Create(ECCurve.NamedCurves.nistP256);
    private readonly string _data = Directory.CreateTempSubdirectory("hsmvault-witness-").FullName;
    private NoteVerifierKey _witnessKey = null!;
    private WebApplication _app = null!;
    private GrpcChannel _channel = null!;

    static WitnessAuditTests() => _ = SoftHsmEnvironment.Shared;

    private Protocol.V1.Witness.WitnessClient Client => new(_channel);

    public async Task InitializeAsync()
    {
        var token = SoftHsmEnvironment.Shared.CreateToken();
        using (var key = TokenSigningKey.Open(token, "witness-key", generateIfMissing: true))
        {
            _witnessKey = NoteVerifierKey.Create(Origin, key.PublicKey);
        }

        var q = _operator.ExportParameters(includePrivateParameters: false).Q;
        var settings = new Dictionary<string, string?>
        {
            ["Kestrel:Endpoints:Grpc:Url"] = "http://127.0.0.1:0",
            ["HsmVault:Token:ModulePath"] = token.ModulePath,
            ["HsmVault:Token:TokenLabel"] = token.TokenLabel,
            ["HsmVault:Token:TokenSerial"] = token.TokenSerial,
            ["HsmVault:Token:PinFile"] = token.PinFile,
            ["HsmVault:Witness:Origin"] = Origin,
            ["HsmVault:Witness:DataDirectory"] = _data,
            ["HsmVault:Witness:KeyLabel"] = "witness-key",
            ["HsmVault:Witness:GenerateKeyIfMissing"] = "false",
            ["HsmVault:Witness:Namespaces:0:Name"] = Namespace,
            ["HsmVault:Witness:Namespaces:0:OperatorKeys:0:Algorithm"] = "EcdsaP256Sha256",
            ["HsmVault:Witness:Namespaces:0:OperatorKeys:0:PublicKey"] = Convert.ToBase64String([0x04, .. q.X!, .. q.Y!]),
        };
        var builder = WitnessServer.CreateBuilder([], configuration => configuration.AddInMemoryCollection(settings));
        builder.Logging.ClearProviders();
        _app = WitnessServer.Build(builder);
        await _app.StartAsync();
        _channel = GrpcChannel.ForAddress(_app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.Single());
    }

    public async Task DisposeAsync()
    {
        _channel.Dispose();
        await _app.StopAsync();
        await _app.DisposeAsync();
        _operator.Dispose();
    }

    [Fact]
    public async Task Audit_ReplaysTheWholeLog_AndReportsTheEquivocationAttempt()
    {
        for (ulong epoch = 1; epoch <= 3; epoch++)
        {
            await Client.SubmitBundleAsync(Submission(epoch, Bundle(epoch)));
        }

        var attempt = await Assert.ThrowsAsync<RpcException>(async () => await Client.SubmitBundleAsync(Submission(2, Bundle(2, "second digest"))));
        Assert.Equal(StatusCode.FailedPrecondition, attempt.StatusCode);

        var report = await WitnessLogAudit.RunAsync(Client, [_witnessKey], CancellationToken.None);

        Assert.True(report.LogVerified, report.Failure);
        Assert.Equal(3UL, report.Log!.TreeSize);
        Assert.Equal(3, report.Log.CheckpointsVerified);
        Assert.Equal([1UL, 2, 3], report.Epochs.Select(e => e.Epoch));
        var equivocation = Assert.Single(report.Equivocations);
        Assert.Equal(2UL, equivocation.Epoch);
        Assert.Equal(SHA256.HashData(Bundle(2, "second digest")), equivocation.AttemptedDigest.ToByteArray());
        var text = new StringWriter();
        report.Write(text);
        Assert.Contains("1. The log verifies: PASS", text.ToString(), StringComparison.Ordinal);
        Assert.Contains("Equivocation attempts recorded by the witness: 1", text.ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Audit_WithAnotherWitnessKey_Fails()
    {
        await Client.SubmitBundleAsync(Submission(1, Bundle(1)));
        var stranger = NoteVerifierKey.Create(Origin, new SigningKeyDescription(SignatureAlgorithm.Ed25519, RandomNumberGenerator.GetBytes(32)));

        var report = await WitnessLogAudit.RunAsync(Client, [stranger], CancellationToken.None);

        Assert.False(report.LogVerified);
        Assert.Contains("none of the pinned witness keys", report.Failure, StringComparison.Ordinal);
    }

    [Fact]
    public async Task VerifyDeployment_WithWitness_FindsTheEntryAndVerifiesIt_ThenReadsTheBundle()
    {
        await Client.SubmitBundleAsync(Submission(1, Bundle(1)));
        var log = new WitnessEvidenceLog(Client, [_witnessKey]);

        // The entry, its statement, its inclusion and the checkpoint verify; a logged blob that is not a
        // validation bundle names no evidence, and says so.
        var ex = await Assert.ThrowsAsync<EvidenceLogException>(() => log.FindAsync(Namespace, 1, CancellationToken.None));
        Assert.Contains("is not a validation bundle", ex.Message, StringComparison.Ordinal);

        // A real bundle: the evidence digest is read out of it.
        var evidence = RandomNumberGenerator.GetBytes(32);
        var now = (ulong)DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
        var bundle = BundleCodec.Encode(new ValidationBundle(Namespace, "fleet-a", 2,
            [
                new BundleKey(BundleKeyRole.OpaqueServer, "", 0, ServerKey()),
                new BundleKey(BundleKeyRole.FleetSigning, "", (ushort)SignatureAlgorithm.Ed25519, RandomNumberGenerator.GetBytes(32)),
                new BundleKey(BundleKeyRole.MemberIdentity, "m1", (ushort)SignatureAlgorithm.Ed25519, RandomNumberGenerator.GetBytes(32)),
            ],
            new BundleOpaqueConfiguration(BundleOpaqueConfiguration.DefaultSuite, 65536, 3, 4, []),
            [new BundleMember("m1", "http://127.0.0.1:7101")], now, now + 3_600_000, evidence));
        await Client.SubmitBundleAsync(Submission(2, bundle));
        var found = await log.FindAsync(Namespace, 2, CancellationToken.None);
        Assert.Equal(evidence, found.EvidenceDigest);
        var missing = await Assert.ThrowsAsync<EvidenceLogException>(() => log.FindAsync(Namespace, 9, CancellationToken.None));
        Assert.Contains("logged nothing for fleet 'fleet-a' epoch 9", missing.Message, StringComparison.Ordinal);
    }

    private static byte[] ServerKey()
    {
        using var pair = HsmVault.Crypto.Opaque.ServerKeyPair.Generate();
        return pair.PublicKey.ToArray();
    }

    private static byte[] Bundle(ulong epoch, string variant = "") =>
        System.Text.Encoding.UTF8.GetBytes(string.Create(CultureInfo.InvariantCulture, $"bundle {Namespace} epoch {epoch} {variant}"));

    private SubmitBundleRequest Submission(ulong epoch, byte[] bundle) => new()
    {
        Namespace = Namespace,
        Epoch = epoch,
        Bundle = ByteString.CopyFrom(bundle),
        OperatorSignature = new Protocol.V1.TaggedSignature
        {
            Algorithm = (uint)SignatureAlgorithm.EcdsaP256Sha256,
            Signature = ByteString.CopyFrom(_operator.SignData(WitnessSubmission.SignedMessage(Namespace, epoch, SHA256.HashData(bundle)),
                HashAlgorithmName.SHA256, DSASignatureFormat.IeeeP1363FixedFieldConcatenation)),
        },
    };
}
