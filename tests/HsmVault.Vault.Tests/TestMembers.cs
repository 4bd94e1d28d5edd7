using System.Security.Cryptography;
using HsmVault.Crypto.Signatures;
using HsmVault.Vault.Audit;
using HsmVault.Vault.Signing;
using HsmVault.Vault.State;
using Microsoft.Extensions.Logging.Abstractions;

namespace HsmVault.Vault.Tests;

/// <summary>
/// Fleet members for state-machine tests that need no token: software P-256 keys stand in for
/// the fleet signing key and the members' identity keys, and sign exactly as
/// <see cref="CommandSigner"/> does. Tests of the signer itself use a real SoftHSM2 token.
/// </summary>
internal sealed class TestMembers : IDisposable
{
    public const string FleetId = "test-fleet";

    private readonly ECDsa _fleetKey = ECDsa.Create(ECCurve.NamedCurves.nistP256);
    private readonly Dictionary<string, ECDsa> _identities = [];

    public TestMembers(params string[] members)
    {
        Members = members.Length == 0 ? ["member-1"] : members;
        foreach (var member in Members)
        {
            _identities[member] = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        }
    }

    public IReadOnlyList<string> Members { get; }

    public SigningKeyDescription FleetSigningKey => PublicKey(_fleetKey);

    public CommandVerifier Verifier() => new(FleetId, FleetSigningKey, Members.ToHashSet(StringComparer.Ordinal));

    /// <summary>A state machine that accepts these members' commands.</summary>
    public VaultStateMachine OpenState(string directory, int digestInterval = 64) =>
        new(directory, Verifier(), new VaultAudit(NullLoggerFactory.Instance, UserLogForm.Hashed), digestInterval, Members.Count);

    /// <summary><paramref name="command"/> signed by <paramref name="member"/> (the first member by default), as a log entry.</summary>
    public byte[] Sign(VaultCommand command, string? member = null) => SignedBy(command, member ?? Members[0], _fleetKey).Encode();

    /// <summary>Signed by an identity key the fleet signing key never endorsed.</summary>
    public byte[] SignWithUnendorsedKey(VaultCommand command, string member)
    {
        using var stranger = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        return SignedBy(command, member, stranger).Encode();
    }

    public SignedCommand SignedBy(VaultCommand command, string member, ECDsa endorser)
    {
        var identity = _identities.TryGetValue(member, out var key) ? key : _identities[member] = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var identityKey = PublicKey(identity);
        var endorsement = new MemberEndorsement(FleetId, member, identityKey,
            RawSign(endorser, MemberEndorsement.SignedBytes(FleetId, member, identityKey)));
        var body = VaultCommandCodec.Encode(command);
        return new SignedCommand(endorsement, body, RawSign(identity, SignedCommand.SignedBytes(FleetId, body)));
    }

    public void Dispose()
    {
        _fleetKey.Dispose();
        foreach (var key in _identities.Values)
        {
            key.Dispose();
        }
    }

    private static byte[] RawSign(ECDsa key, byte[] message) =>
        key.SignData(message, HashAlgorithmName.SHA256, DSASignatureFormat.IeeeP1363FixedFieldConcatenation);

    private static SigningKeyDescription PublicKey(ECDsa key)
    {
        var q = key.ExportParameters(includePrivateParameters: false).Q;
        return new SigningKeyDescription(SignatureAlgorithm.EcdsaP256Sha256, [0x04, .. q.X!, .. q.Y!]);
    }
}

/// <summary>Commands in the shapes tests write most: a fresh ticket nonce per registration, a charge at the record's current serial.</summary>
internal static class Commands
{
    public static RegisterCommand Register(UserIdentity user, long expectedVersion, int limit, byte[] sealedRecord, bool replace) =>
        new(user, expectedVersion, limit, sealedRecord, replace, RandomNumberGenerator.GetBytes(UserIdentity.RegistrationNonceBytes));

    public static ChargeGuessCommand Charge(VaultStateMachine state, UserIdentity user, long version) =>
        new(user, version, state.Read(user)?.AttemptSerial ?? 0, RandomNumberGenerator.GetBytes(VaultCommandCodec.AttemptIdBytes));

    public static ResetGuessesCommand Reset(VaultStateMachine state, UserIdentity user, long version) =>
        new(user, version, state.Read(user)?.AttemptSerial ?? 0);

    public static DeleteCommand Delete(VaultStateMachine state, UserIdentity user) =>
        new(user, state.Read(user)?.Version ?? 0);
}
