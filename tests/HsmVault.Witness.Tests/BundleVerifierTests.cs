using System.Security.Cryptography;
using Google.Protobuf;
using Grpc.Core;
using HsmVault.Client.Bundles;
using HsmVault.Protocol.Bundles;
using HsmVault.Crypto.Opaque;
using HsmVault.Crypto.Signatures;
using HsmVault.Hsm;
using HsmVault.Protocol.V1;
using HsmVault.Testing;
using HsmVault.Transparency.Bundles;
using HsmVault.Transparency.Notes;
using HsmVault.Witness.Tests.Support;
using Microsoft.Extensions.Logging;

namespace HsmVault.Witness.Tests;

/// <summary>
/// Validation bundles end to end below the vault: published by <see cref="BundlePublisher"/> to two
/// real witnesses (in this process, Kestrel on 127.0.0.1 port 0, keys in SoftHSM2 tokens),
/// countersigned by a fleet signing key in its own token, and checked by <see cref="BundleVerifier"/>.
/// Each refusal must name what failed.
/// </summary>
[System.Runtime.Versioning.UnsupportedOSPlatform("windows")]
public sealed class BundleVerifierTests : IAsyncLifetime, IDisposable
{
    private const string Namespace = "fleet-0";
    private readonly WitnessSetup _a = new(namespaces: 1, origin: "witness-a.test/log");
    private readonly WitnessSetup _b = new(namespaces: 1, origin: "witness-b.test/log");
    private readonly TokenSigningKey _fleetKey = TokenSigningKey.Open(SoftHsmEnvironment.Shared.CreateToken(), "fleet-signing", generateIfMissing: true);
    private readonly byte[] _opaqueKey;
    private readonly string _stateFile = Path.Combine(Path.GetTempPath(), $"hsmvault-trust-{Guid.NewGuid():N}.json");
    private InProcessWitness _witnessA = null!;
    private InProcessWitness _witnessB = null!;

    public BundleVerifierTests()
    {
        using var pair = ServerKeyPair.Generate();
        _opaqueKey = pair.PublicKey.ToArray();
    }

    private FleetOperator Operator => _a.Operators[0];

    public async Task InitializeAsync()
    {
        _witnessA = await InProcessWitness.StartAsync(_a.Settings());
        // Both witnesses accept the same operator for the namespace.
        var settingsB = _b.Settings();
        settingsB["HsmVault:Witness:Namespaces:0:OperatorKeys:0:PublicKey"] = Operator.PublicKeyBase64;
        _witnessB = await InProcessWitness.StartAsync(settingsB);
    }

    public async Task DisposeAsync()
    {
        await _witnessA.DisposeAsync();
        await _witnessB.DisposeAsync();
        Assert.DoesNotContain(_witnessA.Logs.Events.Concat(_witnessB.Logs.Events), e => e.Level >= LogLevel.Error);
    }

    public void Dispose()
    {
        _fleetKey.Dispose();
        _a.Dispose();
        _b.Dispose();
        File.Delete(_stateFile);
    }

    [Fact]
    public async Task Verify_BundleLoggedByTwoWitnesses_IsAccepted_AndTheNextEpochFollowsByConsistencyProofs()
    {
        var first = await PublishAsync(Bundle(1), _witnessA, _witnessB);
        var state = ClientTrustState.Load(_stateFile);
        var verified = Verifier(2).Verify(first, state);
        Assert.Equal(1UL, verified.Bundle.Epoch);
        Assert.Equal(_opaqueKey, verified.Bundle.OpaqueServerKey);
        verified.RequireOpaqueServerKey(_opaqueKey);
        state.Accept(verified);
        state.Save(_stateFile);
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(_stateFile));

        var second = await PublishAsync(Bundle(2), _witnessA, _witnessB);
        var reloaded = ClientTrustState.Load(_stateFile);
        Assert.Equal(1UL, reloaded.HighestEpoch(Namespace)!.Epoch);
        var needed = Verifier(2).ProofsNeeded(second, reloaded);
        Assert.Equal(2, needed.Count);
        Assert.Equal(
            BundleRefusal.ConsistencyUnproven,
            Assert.Throws<BundleRefusedException>(() => Verifier(2).Verify(second, reloaded)).Reason);
        var proofs = new Dictionary<ConsistencyProofRequest, IReadOnlyList<byte[]>>();
        foreach (var request in needed)
        {
            var witness = request.WitnessKeyName == _a.Origin ? _witnessA : _witnessB;
            var proof = await witness.Client.GetConsistencyProofAsync(new GetConsistencyProofRequest { OldSize = request.OldSize, NewSize = request.NewSize });
            proofs[request] = [.. proof.Proof.Select(p => p.ToByteArray())];
        }

        var next = Verifier(2).Verify(second, reloaded, proofs);
        reloaded.Accept(next);
        Assert.Equal(2UL, reloaded.HighestEpoch(Namespace)!.Epoch);
        Assert.Equal(2UL, reloaded.LastCheckpoint(_a.Origin)!.TreeSize);
    }

    [Fact]
    public async Task Verify_SignedOnlyByAnUnknownWitness_IsRefused_NamingIt()
    {
        var signed = await PublishAsync(Bundle(1), _witnessB);
        var refusal = Refuse(new BundleVerifier(Policy([_a.NoteKey], 1)), signed);
        Assert.Equal(BundleRefusal.UnknownWitness, refusal.Reason);
        Assert.Contains(_b.Origin, refusal.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Verify_FewerWitnessesThanThePolicy_IsRefused()
    {
        var signed = await PublishAsync(Bundle(1), _witnessA);
        var refusal = Refuse(Verifier(2), signed);
        Assert.Equal(BundleRefusal.TooFewWitnesses, refusal.Reason);
        Assert.Contains("1 of the 2 pinned witnesses", refusal.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Verify_WithoutFleetCountersignature_IsRefused()
    {
        var signed = await PublishAsync(Bundle(1), _witnessA);
        var stripped = signed with { Attestations = [signed.Attestations[0] with { FleetCountersignature = null }] };
        var refusal = Refuse(Verifier(1), stripped);
        Assert.Equal(BundleRefusal.MissingCountersignature, refusal.Reason);
        Assert.Contains(_a.Origin, refusal.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Verify_CountersignatureByAnotherKey_IsRefused()
    {
        var signed = await PublishAsync(Bundle(1), _witnessA);
        var forged = new BundleSignature(SignatureAlgorithm.Ed25519, RandomNumberGenerator.GetBytes(64));
        var refusal = Refuse(Verifier(1), signed with { Attestations = [signed.Attestations[0] with { FleetCountersignature = forged }] });
        Assert.Equal(BundleRefusal.CountersignatureInvalid, refusal.Reason);
    }

    [Fact]
    public async Task Verify_EpochBelowTheHighestSeen_IsRefused()
    {
        var old = await PublishAsync(Bundle(1), _witnessA);
        var state = new ClientTrustState();
        state.Accept(Verifier(1).Verify(await PublishAsync(Bundle(2), _witnessA), state));
        var refusal = Refuse(Verifier(1), old, state);
        Assert.Equal(BundleRefusal.EpochRolledBack, refusal.Reason);
        Assert.Contains("older than epoch 2", refusal.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Verify_AsTheVerifiedSuccessorsPredecessor_AcceptsAnOlderOrExpiredFleet_ButOnlyAnEarlierEpochOfAnotherFleet()
    {
        var old = await PublishAsync(Bundle(1), _witnessA);
        var sameFleet = await PublishAsync(Bundle(2), _witnessA);
        var nextBundle = Bundle(3) with { FleetId = "next-fleet" };
        var state = new ClientTrustState();
        var successor = Verifier(1).Verify(await PublishAsync(nextBundle, _witnessA), state);
        // Its epoch only: the checkpoints' consistency has tests of its own, and would need proofs here.
        state.Accept(successor with { Checkpoints = [] });
        var later = new BundleVerifier(Policy([_a.NoteKey, _b.NoteKey], 1), new FixedTime(DateTimeOffset.UtcNow.AddDays(31)));

        // Epoch 1 is below the highest seen (3) and, by the later clock, expired: as the fleet a user
        // leaves for its verified successor it is still checked, and accepted.
        var leaving = Verifier(1).Verify(old, state, successor: successor.Bundle);
        Assert.Equal(1UL, leaving.Bundle.Epoch);
        Assert.Equal(1UL, later.Verify(old, new ClientTrustState(), successor: nextBundle).Bundle.Epoch);
        Assert.Equal(BundleRefusal.EpochRolledBack, Refuse(Verifier(1), old, state).Reason);

        // A "successor" of the same fleet, or not later, is no successor.
        var ofItself = Assert.Throws<BundleRefusedException>(() => Verifier(1).Verify(old, state, successor: BundleCodec.Decode(sameFleet.Bundle)));
        Assert.Equal(BundleRefusal.SuccessorInvalid, ofItself.Reason);
        Assert.Contains("another fleet", ofItself.Message, StringComparison.Ordinal);
        var notLater = Assert.Throws<BundleRefusedException>(() => Verifier(1).Verify(old, state, successor: nextBundle with { Epoch = 1 }));
        Assert.Equal(BundleRefusal.SuccessorInvalid, notLater.Reason);
        var otherNamespace = Assert.Throws<BundleRefusedException>(() => Verifier(1).Verify(old, state, successor: nextBundle with { Namespace = "elsewhere" }));
        Assert.Equal(BundleRefusal.SuccessorInvalid, otherNamespace.Reason);

        // Its signatures and proofs still count: a predecessor whose operator signature fails is refused.
        var tampered = old with { Bundle = BundleCodec.Encode(BundleCodec.Decode(old.Bundle) with { Keys = Keys(RandomElement()) }) };
        Assert.Equal(BundleRefusal.OperatorSignatureInvalid,
            Assert.Throws<BundleRefusedException>(() => Verifier(1).Verify(tampered, state, successor: successor.Bundle)).Reason);
    }

    [Fact]
    public async Task Verify_PastNotAfter_IsRefused()
    {
        var signed = await PublishAsync(Bundle(1), _witnessA);
        var later = new FixedTime(DateTimeOffset.UtcNow.AddDays(31));
        var refusal = Refuse(new BundleVerifier(Policy([_a.NoteKey], 1), later), signed);
        Assert.Equal(BundleRefusal.Expired, refusal.Reason);
        Assert.Contains("expired at", refusal.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Verify_BundleWithASwappedOpaqueKey_IsRefused_AndSoIsAKe2KeyThatIsNotTheBundles()
    {
        var signed = await PublishAsync(Bundle(1), _witnessA);
        var tampered = BundleCodec.Decode(signed.Bundle) with { Keys = Keys(RandomElement()) };
        var refusal = Refuse(Verifier(1), signed with { Bundle = BundleCodec.Encode(tampered) });
        Assert.Equal(BundleRefusal.OperatorSignatureInvalid, refusal.Reason);

        var verified = Verifier(1).Verify(signed, new ClientTrustState());
        var ke2Refusal = Assert.Throws<BundleRefusedException>(() => verified.RequireOpaqueServerKey(RandomElement()));
        Assert.Equal(BundleRefusal.OpaqueKeyMismatch, ke2Refusal.Reason);
        Assert.Contains(Convert.ToHexStringLower(_opaqueKey), ke2Refusal.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Verify_ForgedInclusionProof_IsRefused()
    {
        await PublishAsync(Bundle(1), _witnessA);
        var signed = await PublishAsync(Bundle(2), _witnessA);
        var attestation = signed.Attestations[0];
        Assert.NotEmpty(attestation.InclusionProof);
        var forgedProof = attestation.InclusionProof.Select(p => p.ToArray()).ToList();
        forgedProof[0][0] ^= 1;
        var refusal = Refuse(Verifier(1), signed with { Attestations = [attestation with { InclusionProof = forgedProof }] });
        Assert.Equal(BundleRefusal.InclusionProofInvalid, refusal.Reason);
        Assert.Contains("inclusion proof for leaf 1 of 2", refusal.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Verify_CheckpointInconsistentWithTheOneSeenBefore_IsRefused()
    {
        var signed = await PublishAsync(Bundle(1), _witnessA);
        // The client saw, earlier, a checkpoint of the same size with another root: a forked log.
        File.WriteAllText(_stateFile, $$"""
            { "format": "hsmvault-trust-state/1",
              "witnesses": { "{{_a.Origin}}": { "treeSize": 1, "rootHash": "{{Convert.ToBase64String(RandomNumberGenerator.GetBytes(32))}}", "checkpoint": "" } } }
            """);
        var refusal = Refuse(Verifier(1), signed, ClientTrustState.Load(_stateFile));
        Assert.Equal(BundleRefusal.CheckpointInconsistent, refusal.Reason);
        Assert.Contains("not consistent with the one seen before", refusal.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task SecondDigestForAnEpoch_IsRefusedByTheWitness_SeenByAuditors_AndRefusedByAClientThatSawTheFirst()
    {
        var first = await PublishAsync(Bundle(1), _witnessA);
        var other = Bundle(1) with { Members = [new BundleMember("m1", "http://127.0.0.1:9"), new BundleMember("m2", "http://127.0.0.1:10")] };
        var refused = await Assert.ThrowsAsync<RpcException>(() => PublishAsync(other, _witnessA));
        Assert.Equal(StatusCode.FailedPrecondition, refused.StatusCode);
        Assert.Equal("WITNESS_REFUSAL_EQUIVOCATION", refused.Trailers.GetValue("hsmvault-reason"));
        var seen = await _witnessA.Client.ListEquivocationsAsync(new ListEquivocationsRequest { Namespace = Namespace });
        Assert.Equal(BundleCodec.Digest(BundleCodec.Encode(other)), seen.Equivocations.Single().AttemptedDigest.ToByteArray());

        // Witness B never saw epoch 1, so it logs the other digest; a client that accepted the first refuses it.
        var second = await PublishAsync(other, _witnessB);
        var verifier = new BundleVerifier(Policy([_a.NoteKey, _b.NoteKey], 1));
        var state = new ClientTrustState();
        state.Accept(verifier.Verify(first, state));
        var refusal = Refuse(verifier, second, state);
        Assert.Equal(BundleRefusal.EpochEquivocation, refusal.Reason);
        Assert.Contains("second digest for epoch 1", refusal.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Codec_RefusesNonCanonicalOrderAndTrailingBytes()
    {
        var bundle = Bundle(1);
        var encoded = BundleCodec.Encode(bundle);
        Assert.Equal(bundle, BundleCodec.Decode(encoded));
        var trailing = Assert.Throws<Transparency.TransparencyException>(() => BundleCodec.Decode([.. encoded, 0]));
        Assert.Contains("after the evidence digest", trailing.Message, StringComparison.Ordinal);
        // The same members in another order are the same bundle, with the same bytes.
        Assert.Equal(encoded, BundleCodec.Encode(bundle with { Members = [.. bundle.Members.Reverse()] }));
        var truncated = Assert.Throws<Transparency.TransparencyException>(() => BundleCodec.Decode(encoded.AsSpan(0, encoded.Length - 1)));
        Assert.Contains("evidence digest", truncated.Message, StringComparison.Ordinal);
    }

    private ValidationBundle Bundle(ulong epoch)
    {
        var now = (ulong)DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
        return new ValidationBundle(Namespace, "dev-fleet", epoch, Keys(_opaqueKey),
            new BundleOpaqueConfiguration(BundleOpaqueConfiguration.DefaultSuite, 65536, 3, 4, []),
            [new BundleMember("m1", "http://127.0.0.1:7101"), new BundleMember("m2", "http://127.0.0.1:7102")],
            now, now + (30UL * 24 * 3600 * 1000), new byte[32]);
    }

    private List<BundleKey> Keys(byte[] opaqueKey) =>
    [
        new(BundleKeyRole.OpaqueServer, "", 0, opaqueKey),
        new(BundleKeyRole.FleetSigning, "", (ushort)_fleetKey.PublicKey.Algorithm, _fleetKey.PublicKey.PublicKey),
        new(BundleKeyRole.MemberIdentity, "m1", 1, MemberKey(1)),
        new(BundleKeyRole.MemberIdentity, "m2", 1, MemberKey(2)),
    ];

    private static byte[] MemberKey(byte seed) => [.. Enumerable.Repeat(seed, 32)];

    private static byte[] RandomElement()
    {
        using var pair = ServerKeyPair.Generate();
        return pair.PublicKey.ToArray();
    }

    private async Task<SignedValidationBundle> PublishAsync(ValidationBundle bundle, params InProcessWitness[] witnesses)
    {
        var publisher = new BundlePublisher([.. witnesses.Select(w => w.Client)], Operator.SignMessage,
            message => new BundleSignature(SignatureAlgorithm.Ed25519, _fleetKey.Sign(message)));
        var message = await publisher.PublishAsync(bundle);
        // Through the file format and back, as members serve it.
        return BundleMessages.ToModel(SignedBundle.Parser.ParseFrom(message.ToByteArray()));
    }

    private BundleVerifier Verifier(int required) => new(Policy([_a.NoteKey, _b.NoteKey], required));

    private BundleTrustPolicy Policy(IReadOnlyList<NoteVerifierKey> witnesses, int required) => new(witnesses, required, [Operator.PublicKey]);

    private static BundleRefusedException Refuse(BundleVerifier verifier, SignedValidationBundle signed, ClientTrustState? state = null) =>
        Assert.Throws<BundleRefusedException>(() => verifier.Verify(signed, state ?? new ClientTrustState()));

    private sealed class FixedTime(DateTimeOffset now) : TimeProvider
    {
        public override DateTimeOffset GetUtcNow() => now;
    }
}
