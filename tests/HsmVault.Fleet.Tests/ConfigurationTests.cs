using System.Text;
using Grpc.Core;
using HsmVault.Cli.Commands;
using HsmVault.Fleet.Tests.Support;
using Microsoft.Extensions.Options;

using HsmVault.Testing.Daemons;

namespace HsmVault.Fleet.Tests;

/// <summary>A fleet configuration that cannot work is refused at start-up, and a stranger cannot join.</summary>
public sealed class ConfigurationTests
{
    private static readonly byte[] Password = Encoding.UTF8.GetBytes("configuration password");

    public static TheoryData<string, string> Misconfigurations => new()
    {
        { "this member listed twice", "this member ('member-1') is listed 2 times" },
        { "duplicate member ids", "member id 'member-2' is listed 2 times" },
        { "this member missing", "this member's id 'member-9' (HsmVault:MemberId) is not in HsmVault:Peer:Members" },
        { "even member count", "4 members tolerate no more failures than 3" },
        { "no peer certificate", "HsmVault:Peer:CertificateFile is required" },
        { "no peer CA", "HsmVault:Peer:CaFile is required" },
    };

    [Theory]
    [MemberData(nameof(Misconfigurations))]
    public async Task Start_WithBrokenFleetConfiguration_IsRefusedWithAClearMessage(string mistake, string message)
    {
        await using var fleet = await FleetFixture.CreateAsync(new FleetSettings { Start = false });
        var settings = new Dictionary<string, string?>(fleet[0].Settings, StringComparer.Ordinal);
        Break(settings, mistake);

        var refused = await Assert.ThrowsAsync<OptionsValidationException>(() => InProcessHost.StartDaemonAsync(settings, new LogCapture()));
        Assert.Contains(message, refused.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Daemon_WithEvenMemberCount_ExitsNonZeroWithTheReason()
    {
        await using var fleet = await FleetFixture.CreateAsync(new FleetSettings { Start = false });
        var settings = new Dictionary<string, string?>(fleet[0].Settings, StringComparer.Ordinal);
        Break(settings, "even member count");
        var config = DaemonConfigFile.Write(settings, Path.Combine(fleet.WorkDirectory, "even.json"));

        await using var daemon = await ChildDaemon.StartAsync(config, waitUntilListening: false);
        var exitCode = await daemon.WaitForExitAsync();
        Assert.NotEqual(0, exitCode);
        Assert.Contains("configure an odd number (3 or 5)", daemon.Output, StringComparison.Ordinal);
        Assert.DoesNotContain("listening on", daemon.Output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task MemberWithAnotherFleetsCertificate_NeverJoins_AndIsNeverCounted()
    {
        await using var fleet = await FleetFixture.CreateAsync(new FleetSettings { Start = false });
        var stranger = fleet[2];

        // Same fleet id and member id, but issued by another peer CA (another ceremony).
        var otherAuthority = Path.Combine(fleet.WorkDirectory, "other-peer-tls");
        PeerCertificateAuthority.Issue(otherAuthority, FleetFixture.FleetId, [stranger.Id], TimeSpan.FromDays(1));
        stranger.Settings["HsmVault:Peer:CertificateFile"] = Path.Combine(otherAuthority, $"{stranger.Id}.peer.pem");
        stranger.Settings["HsmVault:Peer:KeyFile"] = Path.Combine(otherAuthority, $"{stranger.Id}.peer.key.pem");
        stranger.Settings["HsmVault:Peer:CaFile"] = Path.Combine(otherAuthority, "peer-ca.pem");
        await Task.WhenAll(fleet.Members.Select(m => m.StartAsync()));

        // The two genuine members form the majority and serve.
        var leader = await fleet.LeaderAsync();
        Assert.NotEqual(stranger, leader);
        var registered = await fleet.RegisterAsync(leader, "harry", Password, Password, guessLimit: 3);
        Assert.Equal(3, registered.GuessLimit);
        await Poll.UntilAsync(() => fleet.Members.Where(m => m != stranger).All(m => m.Raft.Status!.AppliedIndex >= leader.Raft.Status!.CommitIndex), "the genuine members to apply the registration");

        // The stranger never heard from them.
        var strangerStatus = stranger.Raft.Status!;
        Assert.Null(strangerStatus.LeaderId);
        Assert.Equal(0ul, strangerStatus.AppliedIndex);

        // And the leader does not count it: with the genuine follower gone, nothing commits.
        var follower = fleet.Others(leader).Single(m => m != stranger);
        await follower.StopAsync();
        var refused = await Assert.ThrowsAsync<RpcException>(() => fleet.Client(leader, "ivy").RegisterAsync(Password, Password));
        Assert.Equal(StatusCode.Unavailable, refused.StatusCode);
        await Assert.ThrowsAsync<RpcException>(() => fleet.StatusAsync(leader, "harry"));
        Assert.Null(stranger.Raft.Status!.LeaderId);
    }

    private static void Break(Dictionary<string, string?> settings, string mistake)
    {
        switch (mistake)
        {
            case "this member listed twice":
                settings["HsmVault:Peer:Members:1:Id"] = "member-1";
                break;
            case "duplicate member ids":
                settings["HsmVault:Peer:Members:2:Id"] = "member-2";
                break;
            case "this member missing":
                settings["HsmVault:MemberId"] = "member-9";
                break;
            case "even member count":
                settings["HsmVault:Peer:Members:3:Id"] = "member-4";
                settings["HsmVault:Peer:Members:3:PeerAddress"] = "https://127.0.0.1:9";
                break;
            case "no peer certificate":
                settings.Remove("HsmVault:Peer:CertificateFile");
                break;
            case "no peer CA":
                settings.Remove("HsmVault:Peer:CaFile");
                break;
            default:
                throw new ArgumentException($"unknown mistake '{mistake}'", nameof(mistake));
        }
    }
}
