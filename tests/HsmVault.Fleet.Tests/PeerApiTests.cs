using System.Net.Security;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using Google.Protobuf;
using Grpc.Core;
using Grpc.Net.Client;
using HsmVault.Cli.Commands;
using HsmVault.Fleet.Tests.Support;
using HsmVault.Protocol.V1;
using HsmVault.Server.Peering;
using HsmVault.Vault;
using HsmVault.Vault.State;

namespace HsmVault.Fleet.Tests;

/// <summary>The peer API is for members only: a client reaches it neither on the client endpoint nor without a member certificate.</summary>
public sealed class PeerApiTests
{
    private static readonly byte[] Password = Encoding.UTF8.GetBytes("peer api password");

    // Event id of RaftHostLog.
    private const int SnapshotInstalledEvent = 3006;

    [Fact]
    public async Task PeerApi_CalledByAClient_IsRefusedAndDeliversNothing()
    {
        await using var fleet = await FleetFixture.CreateAsync();
        var leader = await fleet.SettledAsync();
        await fleet.RegisterAsync(leader, "dave", Password, Password, guessLimit: 5);

        // A forwarded write that would delete dave's record, were it ever applied.
        var delete = new ForwardRequest
        {
            Command = ByteString.CopyFrom(VaultCommandCodec.Encode(new DeleteCommand(new UserIdentity(FleetFixture.Tenant, "dave"), 1))),
        };
        var fleetHeader = new Metadata { { "hsmvault-fleet", FleetFixture.FleetId } };

        // 1. The client endpoint (plain h2c) does not route the peer service at all.
        foreach (var member in fleet.Members)
        {
            var onClientEndpoint = new Peer.PeerClient(fleet.Channel(member));
            await AssertRefusedAsync(() => onClientEndpoint.ForwardAsync(delete, fleetHeader, Deadline()).ResponseAsync);
            await AssertRefusedAsync(() => onClientEndpoint.ReadIndexAsync(new ReadIndexRequest(), fleetHeader, Deadline()).ResponseAsync);
        }

        // 2. The peer endpoint without a client certificate, and 3. with a certificate for a
        // member id from another peer CA: the TLS handshake is refused.
        var otherAuthority = Path.Combine(fleet.WorkDirectory, "impostor-tls");
        PeerCertificateAuthority.Issue(otherAuthority, FleetFixture.FleetId, ["member-2"], TimeSpan.FromDays(1));
        using var impostor = LoadCertificate(Path.Combine(otherAuthority, "member-2.peer.pem"), Path.Combine(otherAuthority, "member-2.peer.key.pem"));
        foreach (var certificate in new[] { null, impostor })
        {
            using var channel = PeerChannel(fleet, leader, certificate);
            var onPeerEndpoint = new Peer.PeerClient(channel);
            await AssertRefusedAsync(() => onPeerEndpoint.ForwardAsync(delete, fleetHeader, Deadline()).ResponseAsync);
            await AssertRefusedAsync(() => onPeerEndpoint.ReadIndexAsync(new ReadIndexRequest(), fleetHeader, Deadline()).ResponseAsync);
        }

        // Nothing was delivered: dave is still registered, everywhere.
        var status = await fleet.ConvergedStatusAsync("dave");
        Assert.True(status["dave"].Registered);
        Assert.Equal(5u, status["dave"].GuessesRemaining);
    }

    [Fact]
    public async Task StolenPeerCredentials_CannotResetDeleteOrRegister_AndEveryMemberAudits()
    {
        await using var fleet = await FleetFixture.CreateAsync();
        var leader = await fleet.SettledAsync();
        await fleet.RegisterAsync(leader, "erin", Password, Password, guessLimit: 5);
        var wrong = await fleet.Client(leader, "erin").RecoverAsync(Encoding.UTF8.GetBytes("not the password"));
        Assert.Equal(4, wrong.GuessesRemaining);
        var erin = new UserIdentity(FleetFixture.Tenant, "erin");

        // The attacker copied a follower's peer certificate and key (files on its disk), but not its token.
        var victim = fleet.Members.First(m => m != leader);
        using var stolen = LoadCertificate(
            Path.Combine(fleet.CertificateDirectory, $"{victim.Id}.peer.pem"), Path.Combine(fleet.CertificateDirectory, $"{victim.Id}.peer.key.pem"));
        using var channel = PeerChannel(fleet, leader, stolen);
        var peer = new Peer.PeerClient(channel);
        var fleetHeader = new Metadata { { "hsmvault-fleet", FleetFixture.FleetId } };
        using var strangerKey = System.Security.Cryptography.ECDsa.Create(System.Security.Cryptography.ECCurve.NamedCurves.nistP256);
        var q = strangerKey.ExportParameters(false).Q;
        var identity = new HsmVault.Crypto.Signatures.SigningKeyDescription(HsmVault.Crypto.Signatures.SignatureAlgorithm.EcdsaP256Sha256, [0x04, .. q.X!, .. q.Y!]);
        byte[] Forge(VaultCommand command)
        {
            var body = VaultCommandCodec.Encode(command);
            var endorsement = new HsmVault.Vault.Signing.MemberEndorsement(FleetFixture.FleetId, victim.Id, identity, new byte[64]);
            var signature = strangerKey.SignData(HsmVault.Vault.Signing.SignedCommand.SignedBytes(FleetFixture.FleetId, body),
                System.Security.Cryptography.HashAlgorithmName.SHA256, System.Security.Cryptography.DSASignatureFormat.IeeeP1363FixedFieldConcatenation);
            return new HsmVault.Vault.Signing.SignedCommand(endorsement, body, signature).Encode();
        }

        byte[][] attempts =
        [
            VaultCommandCodec.Encode(new ResetGuessesCommand(erin, 1, 1)),
            Forge(new ResetGuessesCommand(erin, 1, 1)),
            Forge(new DeleteCommand(erin, 1)),
            Forge(new RegisterCommand(erin, 1, 255, [1, 2, 3], true, new byte[16])),
        ];
        foreach (var attempt in attempts)
        {
            var refused = await Assert.ThrowsAsync<RpcException>(() =>
                peer.ForwardAsync(new ForwardRequest { Command = ByteString.CopyFrom(attempt) }, fleetHeader, Deadline()).ResponseAsync);
            Assert.Equal(StatusCode.PermissionDenied, refused.StatusCode);
            Assert.Contains("refused", refused.Status.Detail, StringComparison.Ordinal);
        }

        var status = await fleet.ConvergedStatusAsync("erin");
        Assert.True(status["erin"].Registered);
        Assert.Equal(4u, status["erin"].GuessesRemaining);

        // Audit events are written at apply, by every member, not only by the one that served.
        var pseudonym = erin.Pseudonym();
        foreach (var member in fleet.Members)
        {
            await Poll.UntilAsync(() => Task.FromResult(member.AllLogs.Contains($"Registered {pseudonym}", StringComparison.Ordinal) ? member : null),
                $"{member.Id}'s audit event for erin's registration");
        }

        fleet.AssertNoUnexpectedErrors();
    }

    [Fact]
    public async Task SnapshotChunks_ForAnotherSender_OutOfOrder_Oversized_OrNotMatching_AreRefused_AndInstallNothing()
    {
        await using var fleet = await FleetFixture.CreateAsync();
        var leader = await fleet.SettledAsync();
        await fleet.RegisterAsync(leader, "frank", Password, Password, guessLimit: 5);

        // Holding one follower's peer credentials, the attacker streams snapshots to the other follower.
        var victim = fleet.Members.First(m => m != leader);
        var target = fleet.Members.First(m => m != leader && m != victim);
        using var stolen = LoadCertificate(
            Path.Combine(fleet.CertificateDirectory, $"{victim.Id}.peer.pem"), Path.Combine(fleet.CertificateDirectory, $"{victim.Id}.peer.key.pem"));
        using var channel = PeerChannel(fleet, target, stolen);
        var peer = new Peer.PeerClient(channel);
        var term = target.Raft.Status!.Term;
        var data = new byte[3 * 1000];
        RaftEnvelope Chunk(string from, ulong offset, int length, bool done, byte[]? sha256 = null) => new()
        {
            From = from,
            To = target.Id,
            Term = term + 5,
            InstallSnapshot = new InstallSnapshotBody
            {
                Index = 1_000,
                Term = term + 5,
                Members = { fleet.Members.Select(m => m.Id) },
                Data = ByteString.CopyFrom(data, (int)offset, length),
                Offset = offset,
                TotalBytes = (ulong)data.Length,
                Done = done,
                Sha256 = ByteString.CopyFrom(sha256 ?? []),
            },
        };

        var cases = new (string What, StatusCode Expected, RaftEnvelope[] Chunks)[]
        {
            ("in the leader's name", StatusCode.PermissionDenied, [Chunk(leader.Id, 0, 1000, false)]),
            ("without its beginning", StatusCode.InvalidArgument, [Chunk(victim.Id, 1000, 1000, false)]),
            ("with a gap", StatusCode.InvalidArgument, [Chunk(victim.Id, 0, 1000, false), Chunk(victim.Id, 2000, 1000, true, System.Security.Cryptography.SHA256.HashData(data))]),
            ("repeated", StatusCode.InvalidArgument, [Chunk(victim.Id, 0, 1000, false), Chunk(victim.Id, 1000, 1000, false), Chunk(victim.Id, 1000, 1000, false)]),
            ("not matching its digest", StatusCode.InvalidArgument, [Chunk(victim.Id, 0, 1000, false), Chunk(victim.Id, 1000, 2000, true, new byte[32])]),
        };
        foreach (var (what, expected, chunks) in cases)
        {
            var refused = await Assert.ThrowsAsync<RpcException>(async () =>
            {
                using var call = peer.Replicate(new Metadata { { "hsmvault-fleet", FleetFixture.FleetId } }, Deadline());
                foreach (var chunk in chunks)
                {
                    await call.RequestStream.WriteAsync(chunk);
                }

                await call.RequestStream.CompleteAsync();
                await call.ResponseAsync;
            });
            Assert.True(refused.StatusCode == expected, $"{what}: {refused}");
        }

        // One peer message stays small: a chunk far beyond the cap is refused before it is read.
        var oversized = await Assert.ThrowsAsync<RpcException>(async () =>
        {
            using var call = peer.Replicate(new Metadata { { "hsmvault-fleet", FleetFixture.FleetId } }, Deadline());
            var big = Chunk(victim.Id, 0, 0, false);
            big.InstallSnapshot.Data = ByteString.CopyFrom(new byte[PeerConnections.MaxMessageBytes + 1]);
            await call.RequestStream.WriteAsync(big);
            await call.RequestStream.CompleteAsync();
            await call.ResponseAsync;
        });
        // The member refuses it with ResourceExhausted; while the client is still held back by
        // HTTP/2 flow control in the middle of the 8 MiB, the reset that carries the refusal can
        // reach it first, and then the client sees its call Cancelled. Either way the stream ended
        // without the chunk, which is what the assertions below check.
        Assert.True(oversized.StatusCode is StatusCode.ResourceExhausted or StatusCode.Cancelled, oversized.ToString());

        // Nothing was installed, nothing is left on the target's disk, and the fleet carries on.
        Assert.False(target.Logs.Contains(SnapshotInstalledEvent), target.Logs.Text);
        Assert.Empty(Directory.EnumerateFiles(target.DataDirectory, HsmVault.Consensus.SnapshotAssembler.FilePrefix + "*", SearchOption.AllDirectories));
        var status = await fleet.ConvergedStatusAsync("frank");
        Assert.Equal(5u, status["frank"].GuessesRemaining);
        fleet.AssertNoUnexpectedErrors();
    }

    private static async Task AssertRefusedAsync(Func<Task> call)
    {
        var refused = await Assert.ThrowsAsync<RpcException>(call);
        // A refused TLS handshake may also surface as Internal "Error starting gRPC call" (no
        // request ever reached the service).
        Assert.True(
            refused.StatusCode is StatusCode.Unimplemented or StatusCode.PermissionDenied or StatusCode.Unavailable
                || (refused.StatusCode == StatusCode.Internal && refused.Status.Detail.StartsWith("Error starting gRPC call", StringComparison.Ordinal)),
            refused.ToString());
    }

    private static DateTime Deadline() => DateTime.UtcNow + FleetFixture.CallTimeout;

    private static GrpcChannel PeerChannel(FleetFixture fleet, FleetMember member, X509Certificate2? clientCertificate)
    {
        var authority = X509CertificateLoader.LoadCertificateFromFile(Path.Combine(fleet.CertificateDirectory, "peer-ca.pem"));
        return GrpcChannel.ForAddress(member.PeerAddress, new GrpcChannelOptions
        {
            HttpHandler = new SocketsHttpHandler
            {
                SslOptions = new SslClientAuthenticationOptions
                {
                    ClientCertificates = clientCertificate is null ? null : [clientCertificate],
                    // The server is the real member (its certificate chains to the fleet's peer CA):
                    // what is tested is that it refuses this client.
                    RemoteCertificateValidationCallback = (_, certificate, _, _) => ChainsTo(authority, certificate),
                },
            },
            DisposeHttpClient = true,
        });
    }

    private static bool ChainsTo(X509Certificate2 authority, X509Certificate? certificate)
    {
        if (certificate is not X509Certificate2 server)
        {
            return false;
        }

        using var chain = new X509Chain();
        chain.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
        chain.ChainPolicy.CustomTrustStore.Add(authority);
        chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
        return chain.Build(server);
    }

    private static X509Certificate2 LoadCertificate(string certificateFile, string keyFile)
    {
        using var pem = X509Certificate2.CreateFromPemFile(certificateFile, keyFile);
        return X509CertificateLoader.LoadPkcs12(pem.Export(X509ContentType.Pkcs12), password: null);
    }
}
