using System.Collections.Concurrent;
using HsmVault.Crypto.Signatures;
using HsmVault.Hsm;
using HsmVault.Vault.Moves;
using HsmVault.Vault.State;

namespace HsmVault.Vault.Signing;

/// <summary>
/// Signs the commands this member decides, with its token-held identity key. The endorsement
/// is made once, at start-up, by the fleet signing key in the same token.
/// </summary>
public sealed class CommandSigner
{
    private readonly IVaultToken _token;
    private readonly MemberEndorsement _endorsement;

    /// <summary>Endorses this member's identity key with the fleet signing key (one token signature).</summary>
    public CommandSigner(IVaultToken token, string fleetId, string memberId)
    {
        ArgumentNullException.ThrowIfNull(token);
        _token = token;
        var identity = token.MemberIdentityKey;
        _endorsement = new MemberEndorsement(fleetId, memberId, identity, token.Sign(MemberEndorsement.SignedBytes(fleetId, memberId, identity)));
    }

    /// <summary>This member's endorsement, as every command it signs carries it.</summary>
    public MemberEndorsement Endorsement => _endorsement;

    /// <summary>Encodes and signs <paramref name="command"/>.</summary>
    /// <exception cref="TokenUnavailableException">The token cannot sign now.</exception>
    public SignedCommand Sign(VaultCommand command)
    {
        var body = VaultCommandCodec.Encode(command);
        return new SignedCommand(_endorsement, body, _token.SignAsMember(SignedCommand.SignedBytes(_endorsement.FleetId, body)));
    }
}

/// <summary>A log entry that verified: the command and the member that decided it.</summary>
public sealed record VerifiedCommand(string Member, VaultCommand Command);

/// <summary>Why a log entry was not applied.</summary>
/// <param name="Member">The member the entry claims to come from, when it names one.</param>
/// <param name="Reason">What failed, for the audit event.</param>
public sealed record CommandRefusal(string? Member, string Reason);

/// <summary>
/// Checks, at apply, that a log entry is a command decided by a member of this fleet: the
/// member is configured, its identity key is endorsed by the fleet signing key, and the
/// command is signed by that identity key. Pure and deterministic (software signature
/// verification only), so every member reaches the same verdict on the same entry.
/// </summary>
public sealed class CommandVerifier(string fleetId, SigningKeyDescription fleetSigningKey, IReadOnlySet<string> members, PredecessorFleets? predecessors = null)
{
    /// <summary>Endorsements already verified: at most one per member and identity key, so apply verifies one signature per command.</summary>
    private readonly ConcurrentDictionary<(string Member, string Key), bool> _endorsements = new();

    /// <summary>The fleet signing key endorsements are checked against.</summary>
    public SigningKeyDescription FleetSigningKey => fleetSigningKey;

    /// <summary>The command in <paramref name="entry"/> when it verifies; otherwise null and why in <paramref name="refusal"/>.</summary>
    public VerifiedCommand? Verify(ReadOnlySpan<byte> entry, out CommandRefusal? refusal)
    {
        var signed = SignedCommand.TryDecode(entry);
        if (signed is null)
        {
            refusal = new CommandRefusal(null, "the entry is not a signed vault command");
            return null;
        }

        var endorsement = signed.Endorsement;
        if (endorsement.FleetId != fleetId)
        {
            refusal = new CommandRefusal(endorsement.MemberId, "the command was signed for another fleet");
            return null;
        }

        if (!members.Contains(endorsement.MemberId))
        {
            refusal = new CommandRefusal(endorsement.MemberId, "the signer is not a member of this fleet");
            return null;
        }

        if (!IsEndorsed(endorsement))
        {
            refusal = new CommandRefusal(endorsement.MemberId, "the signer's identity key is not endorsed by the fleet signing key");
            return null;
        }

        if (!endorsement.IdentityKey.Verifies(SignedCommand.SignedBytes(fleetId, signed.Body), signed.Signature))
        {
            refusal = new CommandRefusal(endorsement.MemberId, "the command's signature does not verify under the signer's identity key");
            return null;
        }

        VaultCommand command;
        try
        {
            command = VaultCommandCodec.Decode(signed.Body);
        }
        catch (InvalidDataException e)
        {
            refusal = new CommandRefusal(endorsement.MemberId, $"the signed command does not decode: {e.Message}");
            return null;
        }

        // A member's signature says which member proposed an activation, not that the user left the
        // predecessor: the receipt is checked here too, so a member that skipped the check activates nothing.
        if (command is ActivateCommand activate
            && (predecessors ?? PredecessorFleets.None).Refusal(activate.Receipt, activate.Algorithm, activate.Signature, fleetId, activate.User, activate.Version) is { } why)
        {
            refusal = new CommandRefusal(endorsement.MemberId, $"the activation's move receipt is refused: {why}");
            return null;
        }

        refusal = null;
        return new VerifiedCommand(endorsement.MemberId, command);
    }

    private bool IsEndorsed(MemberEndorsement endorsement)
    {
        var cacheKey = (endorsement.MemberId, $"{(int)endorsement.IdentityKey.Algorithm}:{Convert.ToHexString(endorsement.IdentityKey.PublicKey)}");
        if (_endorsements.TryGetValue(cacheKey, out var known))
        {
            return known;
        }

        var valid = fleetSigningKey.Verifies(
            MemberEndorsement.SignedBytes(fleetId, endorsement.MemberId, endorsement.IdentityKey), endorsement.Signature);
        if (valid || _endorsements.Count < 1024)
        {
            // Bad endorsements are remembered too (bounded), so a flood of the same forgery costs one verification.
            _endorsements[cacheKey] = valid;
        }

        return valid;
    }
}
