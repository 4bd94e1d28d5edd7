using System.Security.Cryptography;
using System.Text;
using System.Text.RegularExpressions;
using DotNet.Testcontainers.Builders;
using DotNet.Testcontainers.Containers;
using DotNet.Testcontainers.Volumes;
using Google.Protobuf;
using Grpc.Core;
using Grpc.Net.Client;
using HsmVault.Containers.Tests.Support;
using HsmVault.Crypto.Signatures;
using HsmVault.Protocol.V1;
using HsmVault.Transparency;
using HsmVault.Transparency.Notes;

namespace HsmVault.Containers.Tests;

/// <summary>
/// The image's <c>witness</c> entry point in dev mode: its own token and key in its volumes, non-root
/// on a read-only root, healthy for Docker, and a signed checkpoint from the host after a submission.
/// </summary>
[Collection(ContainersGroup.Name)]
public sealed partial class WitnessImageTests(DockerEngine engine)
{
    private const string Namespace = "dev-fleet";
    private const string Origin = "witness-ct.hsmvault.internal/log";

    [Fact]
    public async Task DevModeWitness_IsHealthy_AndServesACheckpointVerifiedByTheKeyItLogged()
    {
        var id = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(4));
        var label = $"hsmvault.image-test={id}";
        var volumes = new List<IVolume>();
        IContainer? container = null;
        using var operatorKey = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var q = operatorKey.ExportParameters(includePrivateParameters: false).Q;
        byte[] operatorPublic = [0x04, .. q.X!, .. q.Y!];
        try
        {
            var builder = new ContainerBuilder(engine.Image)
                .WithName($"hsmvault-ct-{id}-witness")
                .WithLabel("hsmvault.tests", "containers").WithLabel("hsmvault.image-test", id)
                .WithCommand("witness")
                .WithEnvironment("HSMVAULT_DEV_MODE", "1")
                .WithEnvironment("HSMVAULT_WITNESS_ORIGIN", Origin)
                .WithEnvironment("HSMVAULT_WITNESS_OPERATOR_KEY", Convert.ToBase64String(operatorPublic))
                .WithTmpfsMount("/tmp")
                .WithCreateParameterModifier(p => (p.HostConfig ?? throw new InvalidOperationException("no host configuration")).ReadonlyRootfs = true)
                .WithPortBinding(7301, assignRandomHostPort: true)
                .WithWaitStrategy(Wait.ForUnixContainer().UntilContainerIsHealthy(failingStreak: 100));
            foreach (var (name, path) in new[] { ("token", "/var/lib/hsmvault/token"), ("data", "/var/lib/hsmvault/data"), ("config", "/etc/hsmvault") })
            {
                var volume = new VolumeBuilder().WithName($"hsmvault-ct-{id}-w{name}")
                    .WithLabel("hsmvault.tests", "containers").WithLabel("hsmvault.image-test", id).Build();
                await volume.CreateAsync();
                volumes.Add(volume);
                builder = builder.WithVolumeMount(volume, path);
            }

            container = builder.Build();
            await container.StartAsync();
            Assert.Equal(TestcontainersHealthStatus.Healthy, container.Health);
            var user = await container.ExecAsync(["id", "-u"]);
            Assert.Equal("10001", user.Stdout.Trim());

            // The verifier key a person pins, as the witness logged it at start.
            var (stdout, stderr) = await container.GetLogsAsync();
            var logged = VerifierKeyLine().Match(stdout + "\n" + stderr);
            Assert.True(logged.Success, stdout + stderr);
            var verifierKey = NoteVerifierKey.Parse(logged.Groups[1].Value);

            using var channel = GrpcChannel.ForAddress(new Uri($"http://127.0.0.1:{container.GetMappedPublicPort(7301)}"));
            var client = new Witness.WitnessClient(channel);
            var empty = await Assert.ThrowsAsync<RpcException>(async () => await client.GetCheckpointAsync(new GetCheckpointRequest()));
            Assert.Equal(StatusCode.NotFound, empty.StatusCode);

            var bundle = Encoding.UTF8.GetBytes("a validation bundle, epoch 1");
            var signature = operatorKey.SignData(WitnessSubmission.SignedMessage(Namespace, 1, SHA256.HashData(bundle)),
                HashAlgorithmName.SHA256, DSASignatureFormat.IeeeP1363FixedFieldConcatenation);
            var logged1 = await client.SubmitBundleAsync(new SubmitBundleRequest
            {
                Namespace = Namespace,
                Epoch = 1,
                Bundle = ByteString.CopyFrom(bundle),
                OperatorSignature = new TaggedSignature { Algorithm = (uint)SignatureAlgorithm.EcdsaP256Sha256, Signature = ByteString.CopyFrom(signature) },
            });
            Assert.False(logged1.AlreadyLogged);

            var latest = await client.GetCheckpointAsync(new GetCheckpointRequest());
            var checkpoint = Checkpoint.Open(latest.Checkpoint, verifierKey, Origin);
            Assert.Equal(1UL, checkpoint.TreeSize);
        }
        finally
        {
            if (container is not null)
            {
                await container.DisposeAsync();
            }

            foreach (var volume in volumes)
            {
                await volume.DisposeAsync();
            }

            await DockerCli.RemoveLabelledAsync(label);
        }
    }

    [GeneratedRegex(@"; verifier key (\S+)")]
    private static partial Regex VerifierKeyLine();
}
