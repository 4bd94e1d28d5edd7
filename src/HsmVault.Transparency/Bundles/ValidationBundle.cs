using HsmVault.Crypto.Signatures;

namespace HsmVault.Transparency.Bundles;

/// <summary>What a public key in a bundle is for. The numeric values are part of the bundle encoding: never renumber them.</summary>
public enum BundleKeyRole
{
    /// <summary>The fleet's OPAQUE server AKE key (32-byte ristretto255 element); KE2 must carry exactly this key.</summary>
    OpaqueServer = 1,

    /// <summary>The fleet signing key, held in every member's token; it countersigns the witnesses' signatures.</summary>
    FleetSigning = 2,

    /// <summary>One member's own identity key, generated in that member's token and never copied.</summary>
    MemberIdentity = 3,
}

/// <summary>One role-tagged public key of a bundle.</summary>
/// <param name="Role">What the key is for.</param>
/// <param name="MemberId">For <see cref="BundleKeyRole.MemberIdentity"/>: whose key; empty for the other roles.</param>
/// <param name="Algorithm">
/// For signing keys, the <see cref="SignatureAlgorithm"/> number; 0 for the OPAQUE server key,
/// whose group is the suite's (ristretto255).
/// </param>
/// <param name="PublicKey">The key bytes: ristretto255 32 bytes, Ed25519 32 bytes, P-256 uncompressed 65 bytes.</param>
public sealed record BundleKey(BundleKeyRole Role, string MemberId, ushort Algorithm, byte[] PublicKey)
{
    /// <summary>A signing key (fleet signing or member identity) as a description that verifies signatures.</summary>
    public SigningKeyDescription ToSigningKey() => new((SignatureAlgorithm)Algorithm, PublicKey);

    /// <summary>Value equality over the key bytes too.</summary>
    public bool Equals(BundleKey? other) =>
        other is not null && Role == other.Role && MemberId == other.MemberId && Algorithm == other.Algorithm
        && PublicKey.AsSpan().SequenceEqual(other.PublicKey);

    /// <inheritdoc/>
    public override int GetHashCode() => HashCode.Combine(Role, MemberId, Algorithm);
}

/// <summary>One fleet member: its identifier and where clients reach it.</summary>
/// <param name="MemberId">The member's HsmVault:MemberId.</param>
/// <param name="Endpoint">The member's client endpoint, e.g. <c>https://m1.vault.example.org:7101</c>.</param>
public sealed record BundleMember(string MemberId, string Endpoint);

/// <summary>The OPAQUE configuration a client must use with the fleet (RFC 9807 section 6).</summary>
/// <param name="Suite">"OPAQUE-3DH ristretto255-SHA512 Argon2id".</param>
/// <param name="Argon2MemoryKib">Argon2id memory (RFC 9106's m), KiB.</param>
/// <param name="Argon2Iterations">Argon2id passes (t).</param>
/// <param name="Argon2Parallelism">Argon2id lanes (p).</param>
/// <param name="Context">The OPAQUE context bytes; empty by default.</param>
public sealed record BundleOpaqueConfiguration(string Suite, uint Argon2MemoryKib, uint Argon2Iterations, uint Argon2Parallelism, byte[] Context)
{
    /// <summary>The one suite HsmVault fleets run.</summary>
    public const string DefaultSuite = "OPAQUE-3DH ristretto255-SHA512 Argon2id";

    /// <summary>Value equality over the context bytes too.</summary>
    public bool Equals(BundleOpaqueConfiguration? other) =>
        other is not null && Suite == other.Suite && Argon2MemoryKib == other.Argon2MemoryKib && Argon2Iterations == other.Argon2Iterations
        && Argon2Parallelism == other.Argon2Parallelism && Context.AsSpan().SequenceEqual(other.Context);

    /// <inheritdoc/>
    public override int GetHashCode() => HashCode.Combine(Suite, Argon2MemoryKib, Argon2Iterations, Argon2Parallelism);
}

/// <summary>
/// A fleet's validation bundle: everything a client needs to trust a fleet it has never seen,
/// published by the operator for one epoch of a namespace. Its one encoding is
/// <see cref="BundleCodec"/>'s; its digest is SHA-256 of that encoding.
/// </summary>
/// <param name="Namespace">The operator's history this bundle belongs to (witness namespace).</param>
/// <param name="FleetId">The fleet's HsmVault:FleetId (the JWT audience).</param>
/// <param name="Epoch">Position in the namespace's history: strictly increasing, 1..2^63-1.</param>
/// <param name="Keys">Role-tagged public keys: one OPAQUE server key, one fleet signing key, one identity key per member.</param>
/// <param name="Opaque">The OPAQUE configuration.</param>
/// <param name="Members">The members and their client endpoints.</param>
/// <param name="IssuedAtUnixMs">When the operator made the bundle, ms since the Unix epoch.</param>
/// <param name="NotAfterUnixMs">After this instant clients refuse the bundle, ms since the Unix epoch.</param>
/// <param name="EvidenceDigest">SHA-256 of the fleet's deployment evidence document; 32 zero bytes when none is published.</param>
public sealed record ValidationBundle(
    string Namespace,
    string FleetId,
    ulong Epoch,
    IReadOnlyList<BundleKey> Keys,
    BundleOpaqueConfiguration Opaque,
    IReadOnlyList<BundleMember> Members,
    ulong IssuedAtUnixMs,
    ulong NotAfterUnixMs,
    byte[] EvidenceDigest)
{
    /// <summary>The OPAQUE server public key (32 bytes).</summary>
    public byte[] OpaqueServerKey => Keys.Single(k => k.Role == BundleKeyRole.OpaqueServer).PublicKey;

    /// <summary>The fleet signing key, which countersigns.</summary>
    public SigningKeyDescription FleetSigningKey => Keys.Single(k => k.Role == BundleKeyRole.FleetSigning).ToSigningKey();

    /// <summary>The identity key of <paramref name="memberId"/>, or null when the bundle has no such member.</summary>
    public SigningKeyDescription? MemberIdentityKey(string memberId) =>
        Keys.SingleOrDefault(k => k.Role == BundleKeyRole.MemberIdentity && k.MemberId == memberId)?.ToSigningKey();

    /// <summary>Whether the operator published a deployment evidence digest.</summary>
    public bool HasEvidence => EvidenceDigest.AsSpan().IndexOfAnyExcept((byte)0) >= 0;

    /// <summary>Not-after as a time.</summary>
    public DateTimeOffset NotAfter => DateTimeOffset.FromUnixTimeMilliseconds(checked((long)NotAfterUnixMs));

    /// <summary>Value equality by the canonical encoding.</summary>
    public bool Equals(ValidationBundle? other) =>
        other is not null && BundleCodec.Encode(this).AsSpan().SequenceEqual(BundleCodec.Encode(other));

    /// <inheritdoc/>
    public override int GetHashCode() => HashCode.Combine(Namespace, FleetId, Epoch);
}
