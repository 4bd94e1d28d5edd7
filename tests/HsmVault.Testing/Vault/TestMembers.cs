using System.Security.Cryptography;
using HsmVault.Crypto.Signatures;
using HsmVault.Vault;
using HsmVault.Vault.Audit;
using HsmVault.Vault.Signing;
using HsmVault.Vault.State;
using Microsoft.Extensions.Logging.Abstractions;

namespace HsmVault.Testing.Vault;

/// <summary>
/// Fleet members for state-machine tests that need no token: software P-256 keys stand in for
/// the fleet signing key and the members' identity keys, and sign exactly as
/// <see cref="CommandSigner"/> does. Tests of the signer itself use a real SoftHSM2 token; the deterministic
/// simulator signs its clients' commands with these.
/// </summary>
public sealed class TestMembers : IDisposable
{
    /// <summary>The fleet every command is signed for.</summary>
    public const string FleetId = "test-fleet";

    private readonly ECDsa _fleetKey = ECDsa.Create(ECCurve.NamedCurves.nistP256);
    private readonly Dictionary<string, ECDsa> _identities = [];
    private readonly Dictionary<string, MemberEndorsement> _endorsements = [];
    private Dictionary<string, SoftwareEd25519>? _ed25519;

    /// <summary>Keys for <paramref name="members"/> (one member, "member-1", when none are named).</summary>
    public TestMembers(params string[] members)
    {
        Members = members.Length == 0 ? ["member-1"] : members;
        foreach (var member in Members)
        {
            _identities[member] = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        }
    }

    /// <summary>The members' ids.</summary>
    public IReadOnlyList<string> Members { get; }

    /// <summary>The public half of the fleet signing key, which endorses every member's identity key.</summary>
    public SigningKeyDescription FleetSigningKey => PublicKey(_fleetKey);

    /// <summary>A verifier that accepts these members' commands.</summary>
    public CommandVerifier Verifier() => new(FleetId, FleetSigningKey, Members.ToHashSet(StringComparer.Ordinal));

    /// <summary>A state machine that accepts these members' commands.</summary>
    public VaultStateMachine OpenState(string directory, int digestInterval = 64) =>
        new(directory, Verifier(), new VaultAudit(NullLoggerFactory.Instance, UserLogForm.Hashed), digestInterval, Members.Count);

    /// <summary>An empty state machine in memory that accepts these members' commands.</summary>
    public VaultStateMachine OpenInMemoryState(int digestInterval = 64) =>
        VaultStateMachine.OpenInMemory(Verifier(), new VaultAudit(NullLoggerFactory.Instance, UserLogForm.Hashed), digestInterval, Members.Count);

    /// <summary><paramref name="command"/> signed by <paramref name="member"/> (the first member by default), as a log entry.</summary>
    public byte[] Sign(VaultCommand command, string? member = null) => SignedBy(command, member ?? Members[0], _fleetKey).Encode();

    /// <summary>Signed by an identity key the fleet signing key never endorsed.</summary>
    public byte[] SignWithUnendorsedKey(VaultCommand command, string member)
    {
        using var stranger = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        return SignedBy(command, member, stranger).Encode();
    }

    /// <summary><paramref name="command"/> signed by <paramref name="member"/>'s identity key, endorsed by <paramref name="endorser"/>.</summary>
    public SignedCommand SignedBy(VaultCommand command, string member, ECDsa endorser)
    {
        var body = VaultCommandCodec.Encode(command);
        var signedBytes = SignedCommand.SignedBytes(FleetId, body);
        if (_ed25519 is not null && endorser == _fleetKey && _ed25519.TryGetValue(member, out var fast))
        {
            return new SignedCommand(_endorsements[member], body, fast.Sign(signedBytes));
        }

        var identity = _identities.TryGetValue(member, out var key) ? key : _identities[member] = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var identityKey = PublicKey(identity);
        var endorsement = new MemberEndorsement(FleetId, member, identityKey,
            RawSign(endorser, MemberEndorsement.SignedBytes(FleetId, member, identityKey)));
        return new SignedCommand(endorsement, body, RawSign(identity, signedBytes));
    }

    /// <summary>
    /// Members whose identity keys are Ed25519 keys in software, each endorsed once: signing and verifying cost tens
    /// of microseconds instead of hundreds, for the simulator's many thousands of commands.
    /// </summary>
    public static TestMembers WithEd25519Identities(params string[] members)
    {
        var fleet = new TestMembers(members) { _ed25519 = [] };
        foreach (var member in fleet.Members)
        {
            var key = new SoftwareEd25519();
            var identityKey = new SigningKeyDescription(SignatureAlgorithm.Ed25519, key.PublicKey);
            fleet._ed25519[member] = key;
            fleet._endorsements[member] = new MemberEndorsement(FleetId, member, identityKey,
                RawSign(fleet._fleetKey, MemberEndorsement.SignedBytes(FleetId, member, identityKey)));
        }

        return fleet;
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        _fleetKey.Dispose();
        foreach (var key in _identities.Values)
        {
            key.Dispose();
        }

        foreach (var key in _ed25519?.Values ?? Enumerable.Empty<SoftwareEd25519>())
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

