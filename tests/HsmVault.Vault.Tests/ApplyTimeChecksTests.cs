using System.Security.Cryptography;
using HsmVault.Vault.State;

namespace HsmVault.Vault.Tests;

/// <summary>
/// What every member checks when it applies an entry, whoever put it in the log: the signer, the
/// single use of tickets, resets and charges, and the agreement of the members' state digests.
/// </summary>
public sealed class ApplyTimeChecksTests
{
    private static readonly UserIdentity Alice = new("tenant", "alice");

    [Fact]
    public void Apply_CommandFromAnUnendorsedKey_IsRefused()
    {
        using var members = new TestMembers("member-1", "member-2");
        using var dir = new TempDirectory();
        using var state = members.OpenState(dir.Path);
        state.Apply(1, members.Sign(Commands.Register(Alice, 0, 10, [1], false)));
        state.Apply(2, members.Sign(Commands.Charge(state, Alice, 1)));

        // Someone with member-2's peer credentials but not its token: a reset signed by any other key.
        var forged = state.Apply(3, members.SignWithUnendorsedKey(Commands.Reset(state, Alice, 1), "member-2"));

        Assert.Equal(CommandOutcome.Refused, VaultCommandCodec.DecodeResult(forged).Outcome);
        Assert.Equal(9, state.Read(Alice)!.GuessesRemaining);
    }

    [Fact]
    public void Apply_CommandSignedForAnotherFleetOrByAStranger_IsRefused()
    {
        using var members = new TestMembers("member-1");
        using var outsiders = new TestMembers("member-1");
        using var dir = new TempDirectory();
        using var state = members.OpenState(dir.Path);
        state.Apply(1, members.Sign(Commands.Register(Alice, 0, 10, [1], false)));

        var byOtherFleetKey = state.Apply(2, outsiders.Sign(Commands.Delete(state, Alice)));
        var byNonMember = state.Apply(3, members.Sign(Commands.Delete(state, Alice), member: "member-9"));

        Assert.Equal(CommandOutcome.Refused, VaultCommandCodec.DecodeResult(byOtherFleetKey).Outcome);
        Assert.Equal(CommandOutcome.Refused, VaultCommandCodec.DecodeResult(byNonMember).Outcome);
        Assert.Equal(RecordState.Live, state.Read(Alice)!.State);
    }

    [Fact]
    public void Apply_TamperedBody_IsRefused()
    {
        using var members = new TestMembers();
        using var dir = new TempDirectory();
        using var state = members.OpenState(dir.Path);
        var entry = members.Sign(Commands.Register(Alice, 0, 10, [1, 2, 3], false));
        entry[^70] ^= 1; // inside the body, before the signature

        Assert.Equal(CommandOutcome.Refused, VaultCommandCodec.DecodeResult(state.Apply(1, entry)).Outcome);
        Assert.Null(state.Read(Alice));
    }

    [Fact]
    public void Apply_SameTicketTwice_SecondIsRefusedAndTheCountStays()
    {
        using var members = new TestMembers();
        using var dir = new TempDirectory();
        using var state = members.OpenState(dir.Path);
        var nonce = RandomNumberGenerator.GetBytes(UserIdentity.RegistrationNonceBytes);
        state.Apply(1, members.Sign(new RegisterCommand(Alice, 0, 10, [1], false, nonce)));
        state.Apply(2, members.Sign(Commands.Charge(state, Alice, 1)));
        state.Apply(3, members.Sign(Commands.Charge(state, Alice, 1)));

        // The captured FinishRegistration, replayed with replace: the ticket was used.
        var replay = VaultCommandCodec.DecodeResult(state.Apply(4, members.Sign(new RegisterCommand(Alice, 1, 10, [1], true, nonce))));

        Assert.Equal(CommandOutcome.TicketAlreadyUsed, replay.Outcome);
        Assert.Equal(8, state.Read(Alice)!.GuessesRemaining);
        Assert.Equal(1, state.Read(Alice)!.Version);
    }

    [Fact]
    public void Apply_ReplayedCharge_ChargesOnce()
    {
        using var members = new TestMembers();
        using var dir = new TempDirectory();
        using var state = members.OpenState(dir.Path);
        state.Apply(1, members.Sign(Commands.Register(Alice, 0, 10, [1], false)));
        var charge = members.Sign(Commands.Charge(state, Alice, 1));

        state.Apply(2, charge);
        var replay = VaultCommandCodec.DecodeResult(state.Apply(3, charge));

        Assert.Equal(CommandOutcome.VersionConflict, replay.Outcome);
        Assert.Equal(9, state.Read(Alice)!.GuessesRemaining);
    }

    [Fact]
    public void Apply_ReplayedReset_ResetsOnce()
    {
        using var members = new TestMembers();
        using var dir = new TempDirectory();
        using var state = members.OpenState(dir.Path);
        state.Apply(1, members.Sign(Commands.Register(Alice, 0, 10, [1], false)));
        state.Apply(2, members.Sign(Commands.Charge(state, Alice, 1)));
        var reset = members.Sign(Commands.Reset(state, Alice, 1));
        state.Apply(3, reset);
        state.Apply(4, members.Sign(Commands.Charge(state, Alice, 1)));
        state.Apply(5, members.Sign(Commands.Charge(state, Alice, 1)));

        var replay = VaultCommandCodec.DecodeResult(state.Apply(6, reset));
        var neverCharged = VaultCommandCodec.DecodeResult(state.Apply(7, members.Sign(new ResetGuessesCommand(Alice, 1, 99))));

        Assert.Equal(CommandOutcome.Unchanged, replay.Outcome);
        Assert.Equal(CommandOutcome.Unchanged, neverCharged.Outcome);
        Assert.Equal(8, state.Read(Alice)!.GuessesRemaining);
    }

    [Fact]
    public void Apply_ReplayedDelete_DoesNotRemoveALaterRegistration()
    {
        using var members = new TestMembers();
        using var dir = new TempDirectory();
        using var state = members.OpenState(dir.Path);
        state.Apply(1, members.Sign(Commands.Register(Alice, 0, 10, [1], false)));
        var delete = members.Sign(Commands.Delete(state, Alice));
        state.Apply(2, delete);
        state.Apply(3, members.Sign(Commands.Register(Alice, 1, 10, [2], false)));

        var replay = VaultCommandCodec.DecodeResult(state.Apply(4, delete));

        Assert.Equal(CommandOutcome.VersionConflict, replay.Outcome);
        Assert.Equal(RecordState.Live, state.Read(Alice)!.State);
    }

    [Fact]
    public void DigestReports_MemberThatAppliedADifferentEntry_StopsServing_OthersDoNot()
    {
        using var members = new TestMembers("member-1", "member-2", "member-3");
        using var dir = new TempDirectory();
        var states = members.Members.Select(m => members.OpenState(dir.Sub(m), digestInterval: 2)).ToList();
        try
        {
            var common = members.Sign(Commands.Register(Alice, 0, 10, [1], false));
            var charge = members.Sign(Commands.Charge(states[0], Alice, 1));
            foreach (var state in states)
            {
                state.Apply(1, common);
            }

            // member-3 applied an entry at index 2 that the fleet later rewrote (a rollback of the others).
            states[0].Apply(2, charge);
            states[1].Apply(2, charge);
            states[2].Apply(2, []);

            var reports = states.Select((state, i) => members.Sign(new StateDigestCommand(2, state.LatestCheckpointDigest()!.Value.Digest), members.Members[i])).ToList();
            for (var i = 0; i < reports.Count; i++)
            {
                foreach (var state in states)
                {
                    state.Apply(3UL + (ulong)i, reports[i]);
                }
            }

            Assert.Null(states[0].Divergence);
            Assert.Null(states[1].Divergence);
            Assert.Contains("index 2", states[2].Divergence, StringComparison.Ordinal);
        }
        finally
        {
            states.ForEach(state => state.Dispose());
        }
    }

    [Fact]
    public void Divergence_SurvivesARestart_UntilCleared()
    {
        using var members = new TestMembers("member-1", "member-2", "member-3");
        using var dir = new TempDirectory();
        using (var state = members.OpenState(dir.Path, digestInterval: 1))
        {
            state.Apply(1, members.Sign(Commands.Register(Alice, 0, 10, [1], false)));
            var wrong = new byte[32];
            state.Apply(2, members.Sign(new StateDigestCommand(1, wrong), "member-2"));
            state.Apply(3, members.Sign(new StateDigestCommand(1, wrong), "member-3"));
            Assert.NotNull(state.Divergence);
        }

        using (var reopened = members.OpenState(dir.Path, digestInterval: 1))
        {
            Assert.NotNull(reopened.Divergence);
        }

        Assert.NotNull(VaultStateMachine.ClearDivergence(dir.Path));
        using var cleared = members.OpenState(dir.Path, digestInterval: 1);
        Assert.Null(cleared.Divergence);
    }

    [Fact]
    public void Snapshot_CarriesUsedTicketsAndTheDigest()
    {
        using var members = new TestMembers();
        using var dir = new TempDirectory();
        using var source = members.OpenState(dir.Sub("a"), digestInterval: 1);
        var nonce = RandomNumberGenerator.GetBytes(UserIdentity.RegistrationNonceBytes);
        source.Apply(1, members.Sign(new RegisterCommand(Alice, 0, 10, [1], false, nonce)));
        var snapshot = source.CreateSnapshot(out var index);

        using var target = members.OpenState(dir.Sub("b"), digestInterval: 1);
        target.RestoreSnapshot(index, snapshot);
        var replay = VaultCommandCodec.DecodeResult(target.Apply(2, members.Sign(new RegisterCommand(Alice, 1, 10, [1], true, nonce))));
        var sourceDigest = source.LatestCheckpointDigest()!.Value;
        target.Apply(3, members.Sign(new StateDigestCommand(sourceDigest.Index, sourceDigest.Digest)));

        Assert.Equal(CommandOutcome.TicketAlreadyUsed, replay.Outcome);
        Assert.Null(target.Divergence);
    }
}
