using System.Security.Cryptography;
using Grpc.Core;
using HsmVault.Cli.Commands;
using HsmVault.EndToEnd.Tests.Support;
using HsmVault.Protocol.V1;
using HsmVault.Testing.Opaque;
using Microsoft.IdentityModel.JsonWebTokens;
using Microsoft.IdentityModel.Tokens;

namespace HsmVault.EndToEnd.Tests;

/// <summary>The caller's identity comes only from a valid bearer token of a trusted tenant.</summary>
public sealed class AuthenticationTests : DaemonTest
{
    public static TheoryData<string> BadTokens => new()
    {
        "none",
        "empty bearer",
        "garbage",
        "expired",
        "not yet valid",
        "wrong audience",
        "unknown issuer",
        "signed by another key",
        "other tenant's issuer with this tenant's key",
        "unsigned (alg none)",
        "tampered subject",
    };

    [Theory]
    [MemberData(nameof(BadTokens))]
    public async Task EveryCallButGetFleetInfo_WithBadToken_IsUnauthenticated(string kind)
    {
        var raw = Daemon.CreateRawClient();
        await Daemon.CreateClient("alice").RegisterAsync(Setup.NewPassword(), Setup.NewBackupKey());
        var headers = BadHeaders(kind);
        var ke1 = Messages.Ke1(Setup.NewPassword());

        var calls = new (string Name, Func<Task> Call)[]
        {
            ("GetStatus", async () => await raw.GetStatusAsync(new GetStatusRequest(), headers)),
            ("StartRegistration", async () => await raw.StartRegistrationAsync(new StartRegistrationRequest { RegistrationRequest = Messages.RegistrationRequest(Setup.NewPassword()) }, headers)),
            ("FinishRegistration", async () => await raw.FinishRegistrationAsync(new FinishRegistrationRequest { RegistrationRecord = Messages.Filled(192, 1), EncryptedSecret = Messages.Filled(60, 1), ReplaceExisting = true }, headers)),
            ("StartRecovery", async () => await raw.StartRecoveryAsync(new StartRecoveryRequest { Ke1 = ke1 }, headers)),
            ("FinishRecovery", async () => await raw.FinishRecoveryAsync(new FinishRecoveryRequest { SessionId = Messages.Filled(16, 1), Ke3 = Messages.Filled(64, 1) }, headers)),
            ("DeleteRecord", async () => await raw.DeleteRecordAsync(new DeleteRecordRequest(), headers)),
            ("ActivateRecord", async () => await raw.ActivateRecordAsync(new ActivateRecordRequest(), headers)),
        };
        foreach (var (name, call) in calls)
        {
            var error = await Assert.ThrowsAsync<RpcException>(call);
            Assert.True(error.StatusCode == StatusCode.Unauthenticated, $"{name} with {kind}: {error.Status}");
        }

        var status = await raw.GetStatusAsync(new GetStatusRequest(), Setup.Headers("alice"));
        Assert.True(status.Registered);
        Assert.Equal(10u, status.GuessesRemaining);
    }

    [Fact]
    public async Task AnyCall_WithTrustedTokenWithoutSubject_IsRefusedSayingWhy_AndChangesNothing()
    {
        // A trusted tenant's token that names no user is no credential: Unauthenticated, with a
        // message naming the missing claim, never served as anyone.
        var raw = Daemon.CreateRawClient();
        var headers = BadHeaders("no subject");

        var status = await Assert.ThrowsAsync<RpcException>(async () => await raw.GetStatusAsync(new GetStatusRequest(), headers));
        var recovery = await Assert.ThrowsAsync<RpcException>(async () =>
            await raw.StartRecoveryAsync(new StartRecoveryRequest { Ke1 = Messages.Ke1(Setup.NewPassword()) }, headers));

        foreach (var error in new[] { status, recovery })
        {
            Assert.Equal(StatusCode.Unauthenticated, error.StatusCode);
            Assert.Contains("'sub'", error.Status.Detail, StringComparison.Ordinal);
        }
    }

    [Fact]
    public async Task GetFleetInfo_WorksWithoutToken_AndDescribesTheFleet()
    {
        var info = await Daemon.CreateRawClient().GetFleetInfoAsync(new GetFleetInfoRequest());

        Assert.Equal(DaemonSetup.FleetId, info.FleetId);
        Assert.Equal("member-1", info.MemberId);
        Assert.Equal("OPAQUE-3DH ristretto255-SHA512 Argon2id", info.OpaqueSuite);
        Assert.Equal(TestOpaqueSettings.Context, info.OpaqueContext.ToStringUtf8());
        Assert.Equal(32, info.ServerPublicKey.Length);
        Assert.Equal(new Argon2idParameters { MemoryKib = 1024, Iterations = 1, Parallelism = 2 }, info.Argon2Id);
        Assert.Equal(10u, info.DefaultGuessLimit);
        Assert.Equal(1024u, info.MaxEncryptedSecretBytes);
    }

    [Fact]
    public async Task Identity_ComesFromTheToken_UsersWithTheSamePasswordSeeOnlyTheirOwnRecords()
    {
        var password = Setup.NewPassword();
        var aliceKey = Setup.NewBackupKey();
        var bobKey = Setup.NewBackupKey();
        var alice = Daemon.CreateClient("alice");
        var bob = Daemon.CreateClient("bob");
        await alice.RegisterAsync(password, aliceKey);
        await bob.RegisterAsync(password, bobKey);

        var aliceRecovers = await alice.RecoverAsync(password);
        var bobRecovers = await bob.RecoverAsync(password);
        await alice.RecoverAsync(Setup.NewPassword());
        await alice.RecoverAsync(Setup.NewPassword());
        var bobStatus = await bob.GetStatusAsync();
        await bob.DeleteAsync();
        var aliceStatus = await alice.GetStatusAsync();

        Assert.Equal(aliceKey, aliceRecovers.BackupKey);
        Assert.Equal(bobKey, bobRecovers.BackupKey);
        Assert.Equal(10u, bobStatus.GuessesRemaining);
        Assert.True(aliceStatus.Registered);
        Assert.Equal(8u, aliceStatus.GuessesRemaining);
    }

    [Fact]
    public async Task Identity_IncludesTheTenant_SameUserIdUnderTwoTenantsIsTwoRecords()
    {
        var password = Setup.NewPassword();
        var keyA = Setup.NewBackupKey();
        var underA = Daemon.CreateClient("carol");
        var underB = Daemon.CreateClient("carol", DaemonSetup.OtherTenant);
        await underA.RegisterAsync(password, keyA);

        var statusB = await underB.GetStatusAsync();
        var recoverB = await Assert.ThrowsAsync<RpcException>(() => underB.RecoverAsync(password));
        var recoverA = await underA.RecoverAsync(password);

        Assert.False(statusB.Registered);
        Assert.Equal(StatusCode.NotFound, recoverB.StatusCode);
        Assert.Equal(keyA, recoverA.BackupKey);
    }

    private Metadata BadHeaders(string kind)
    {
        var handler = new JsonWebTokenHandler();
        var now = DateTime.UtcNow;
        string Signed(ECDsa key, string issuer, string? subject, string audience, DateTime notBefore, DateTime expires) =>
            handler.CreateToken(new SecurityTokenDescriptor
            {
                Issuer = issuer,
                Audience = audience,
                Claims = subject is null ? null : new Dictionary<string, object> { [JwtRegisteredClaimNames.Sub] = subject },
                IssuedAt = notBefore,
                NotBefore = notBefore,
                Expires = expires,
                SigningCredentials = new SigningCredentials(new ECDsaSecurityKey(key), SecurityAlgorithms.EcdsaSha256),
            });

        using var stranger = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var token = kind switch
        {
            "none" => null,
            "empty bearer" => "",
            "garbage" => "not.a.jwt",
            "expired" => Signed(Setup.TenantKey, DaemonSetup.Tenant, "alice", DaemonSetup.FleetId, now.AddHours(-2), now.AddHours(-1)),
            "not yet valid" => Signed(Setup.TenantKey, DaemonSetup.Tenant, "alice", DaemonSetup.FleetId, now.AddHours(1), now.AddHours(2)),
            "wrong audience" => DevelopmentTokens.Mint(Setup.TenantKey, DaemonSetup.Tenant, "alice", "another-fleet", TimeSpan.FromMinutes(5)),
            "unknown issuer" => DevelopmentTokens.Mint(Setup.TenantKey, "stranger-tenant", "alice", DaemonSetup.FleetId, TimeSpan.FromMinutes(5)),
            "signed by another key" => DevelopmentTokens.Mint(stranger, DaemonSetup.Tenant, "alice", DaemonSetup.FleetId, TimeSpan.FromMinutes(5)),
            "other tenant's issuer with this tenant's key" => DevelopmentTokens.Mint(Setup.TenantKey, DaemonSetup.OtherTenant, "alice", DaemonSetup.FleetId, TimeSpan.FromMinutes(5)),
            "unsigned (alg none)" => handler.CreateToken(new SecurityTokenDescriptor
            {
                Issuer = DaemonSetup.Tenant,
                Audience = DaemonSetup.FleetId,
                Claims = new Dictionary<string, object> { [JwtRegisteredClaimNames.Sub] = "alice" },
                Expires = now.AddMinutes(5),
            }),
            "no subject" => Signed(Setup.TenantKey, DaemonSetup.Tenant, null, DaemonSetup.FleetId, now, now.AddMinutes(5)),
            "tampered subject" => TamperSubject(Setup.Mint("bob")),
            _ => throw new ArgumentOutOfRangeException(nameof(kind), kind, null),
        };
        return token is null ? [] : new Metadata { { "authorization", "Bearer " + token } };
    }

    /// <summary>Swaps the payload of a valid token for one naming another user, keeping the signature.</summary>
    private static string TamperSubject(string jwt)
    {
        var parts = jwt.Split('.');
        var payload = Base64UrlEncoder.Decode(parts[1]).Replace("\"bob\"", "\"alice\"", StringComparison.Ordinal);
        return $"{parts[0]}.{Base64UrlEncoder.Encode(payload)}.{parts[2]}";
    }
}
