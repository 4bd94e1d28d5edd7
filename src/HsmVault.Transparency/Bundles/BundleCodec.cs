using System.Buffers.Binary;
using System.Security.Cryptography;
using System.Text;
using HsmVault.Crypto.Signatures;

namespace HsmVault.Transparency.Bundles;

/// <summary>
/// The one canonical encoding of a <see cref="ValidationBundle"/>, and its digest. The witness
/// logs SHA-256 of exactly these bytes, the operator signs it in the witness submission, and
/// clients verify it; a bundle has one encoding, so it has one digest.
/// </summary>
/// <remarks>
/// Encoding (README, "The validation bundle's wire format"); integers big-endian, strings ASCII:
/// <code>
///   30 bytes  "HsmVault validation bundle v1" || 0x00          domain separation
///   u8 n, n bytes   namespace   1..128 of [A-Za-z0-9._:/-]
///   u8 n, n bytes   fleet id    1..64 of [A-Za-z0-9._-]
///   u64             epoch       1..2^63-1
///   u64             issued at   ms since 1970-01-01T00:00:00Z
///   u64             not after   ms since 1970-01-01T00:00:00Z, above issued at
///   u8 k            number of keys, then k times, sorted by (role, member id):
///     u8  role        1 = OPAQUE server, 2 = fleet signing, 3 = member identity
///     u16 algorithm   0 for the OPAQUE server key (ristretto255); 1 = Ed25519, 2 = ECDSA P-256 SHA-256
///     u8 n, n bytes   member id (role 3 only; n = 0 otherwise)
///     u16 n, n bytes  public key: ristretto255 32, Ed25519 32, P-256 uncompressed 65
///   u8 n, n bytes   OPAQUE suite, "OPAQUE-3DH ristretto255-SHA512 Argon2id"
///   u32 u32 u32     Argon2id memory KiB, iterations, parallelism
///   u16 n, n bytes  OPAQUE context, 0..1024 bytes
///   u8 m            number of members, 1..64, then m times, sorted by member id:
///     u8 n, n bytes   member id   1..64 of [A-Za-z0-9._-]
///     u16 n, n bytes  endpoint    1..1024 printable ASCII without spaces
///   32 bytes        SHA-256 of the deployment evidence; all zero when none is published
/// </code>
/// Exactly one OPAQUE server key, one fleet signing key, and one identity key for each member
/// (and none for anyone else). Byte strings are compared by ordinal order. Nothing follows the
/// evidence digest. <see cref="Decode"/> accepts only bytes that <see cref="Encode"/> would
/// produce, so no two encodings of one bundle exist.
/// </remarks>
public static class BundleCodec
{
    /// <summary>Domain-separation prefix of the encoding.</summary>
    public static ReadOnlySpan<byte> Prefix => "HsmVault validation bundle v1\0"u8;

    /// <summary>Largest encoding accepted (the witness logs bundles of at most 32 KiB).</summary>
    public const int MaxBundleBytes = 32 * 1024;

    /// <summary>Largest OPAQUE context.</summary>
    public const int MaxContextBytes = 1024;

    /// <summary>Most members in one fleet.</summary>
    public const int MaxMembers = 64;

    /// <summary>Longest member endpoint.</summary>
    public const int MaxEndpointLength = 1024;

    /// <summary>The canonical encoding of <paramref name="bundle"/>; keys and members are put in canonical order.</summary>
    /// <exception cref="TransparencyException">A field is out of range, or a key is missing, doubled or of the wrong size.</exception>
    public static byte[] Encode(ValidationBundle bundle)
    {
        ArgumentNullException.ThrowIfNull(bundle);
        Validate(bundle);
        var keys = bundle.Keys.OrderBy(k => k.Role).ThenBy(k => k.MemberId, StringComparer.Ordinal).ToList();
        var members = bundle.Members.OrderBy(m => m.MemberId, StringComparer.Ordinal).ToList();
        var writer = new Writer();
        writer.Bytes(Prefix);
        writer.Short8(bundle.Namespace);
        writer.Short8(bundle.FleetId);
        writer.U64(bundle.Epoch);
        writer.U64(bundle.IssuedAtUnixMs);
        writer.U64(bundle.NotAfterUnixMs);
        writer.U8(keys.Count);
        foreach (var key in keys)
        {
            writer.U8((int)key.Role);
            writer.U16(key.Algorithm);
            writer.Short8(key.MemberId);
            writer.Long16(key.PublicKey);
        }

        writer.Short8(bundle.Opaque.Suite);
        writer.U32(bundle.Opaque.Argon2MemoryKib);
        writer.U32(bundle.Opaque.Argon2Iterations);
        writer.U32(bundle.Opaque.Argon2Parallelism);
        writer.Long16(bundle.Opaque.Context);
        writer.U8(members.Count);
        foreach (var member in members)
        {
            writer.Short8(member.MemberId);
            writer.Long16(Encoding.ASCII.GetBytes(member.Endpoint));
        }

        writer.Bytes(bundle.EvidenceDigest);
        return writer.Length <= MaxBundleBytes
            ? writer.ToArray()
            : throw new TransparencyException($"the bundle's encoding has {writer.Length} bytes, more than the {MaxBundleBytes} a witness logs");
    }

    /// <summary>Decodes a bundle, refusing anything but its canonical encoding.</summary>
    /// <exception cref="TransparencyException">The bytes are not a canonically encoded bundle; the message says what is wrong.</exception>
    public static ValidationBundle Decode(ReadOnlySpan<byte> bytes)
    {
        if (bytes.Length > MaxBundleBytes)
        {
            throw new TransparencyException($"a bundle has at most {MaxBundleBytes} bytes; this one has {bytes.Length}");
        }

        if (!bytes.StartsWith(Prefix))
        {
            throw new TransparencyException("not a validation bundle: it does not start with \"HsmVault validation bundle v1\\0\"");
        }

        var reader = new Reader(bytes[Prefix.Length..]);
        var ns = reader.Short8String("namespace");
        var fleetId = reader.Short8String("fleet id");
        var epoch = reader.U64("epoch");
        var issuedAt = reader.U64("issued at");
        var notAfter = reader.U64("not after");
        var keyCount = reader.U8("key count");
        var keys = new List<BundleKey>(keyCount);
        for (var i = 0; i < keyCount; i++)
        {
            var role = (BundleKeyRole)reader.U8("key role");
            var algorithm = reader.U16("key algorithm");
            var memberId = reader.Short8String("key member id");
            keys.Add(new BundleKey(role, memberId, algorithm, reader.Long16("public key").ToArray()));
        }

        var suite = reader.Short8String("OPAQUE suite");
        var memory = reader.U32("Argon2id memory");
        var iterations = reader.U32("Argon2id iterations");
        var parallelism = reader.U32("Argon2id parallelism");
        var context = reader.Long16("OPAQUE context").ToArray();
        var memberCount = reader.U8("member count");
        var members = new List<BundleMember>(memberCount);
        for (var i = 0; i < memberCount; i++)
        {
            var id = reader.Short8String("member id");
            members.Add(new BundleMember(id, Encoding.ASCII.GetString(reader.Long16("member endpoint"))));
        }

        var evidence = reader.Take(WitnessStatement.DigestLength, "evidence digest").ToArray();
        if (!reader.AtEnd)
        {
            throw new TransparencyException($"the bundle has {reader.Remaining} bytes after the evidence digest; nothing may follow it");
        }

        var bundle = new ValidationBundle(ns, fleetId, epoch, keys, new BundleOpaqueConfiguration(suite, memory, iterations, parallelism, context),
            members, issuedAt, notAfter, evidence);
        if (!Encode(bundle).AsSpan().SequenceEqual(bytes))
        {
            throw new TransparencyException("the bundle is not in canonical form: its keys must be sorted by (role, member id) and its members by id");
        }

        return bundle;
    }

    /// <summary>SHA-256 of the encoding: the digest the witness logs and signs.</summary>
    public static byte[] Digest(ReadOnlySpan<byte> encoded) => SHA256.HashData(encoded);

    private static void Validate(ValidationBundle bundle)
    {
        WitnessStatement.ValidateNamespace(bundle.Namespace);
        ValidateIdentifier(bundle.FleetId, "fleet id");
        WitnessStatement.ValidateEpoch(bundle.Epoch);
        if (bundle.NotAfterUnixMs <= bundle.IssuedAtUnixMs)
        {
            throw new TransparencyException($"the bundle's not-after ({bundle.NotAfterUnixMs} ms) must be later than its issue time ({bundle.IssuedAtUnixMs} ms)");
        }

        ArgumentNullException.ThrowIfNull(bundle.Opaque);
        var suite = bundle.Opaque.Suite;
        if (string.IsNullOrEmpty(suite) || suite.Length > 255 || !suite.All(c => c is >= ' ' and <= '~'))
        {
            throw new TransparencyException("the OPAQUE suite must be 1..255 printable ASCII characters");
        }

        if (bundle.Opaque.Argon2Parallelism is 0 or > 0xFFFFFF || bundle.Opaque.Argon2Iterations == 0
            || bundle.Opaque.Argon2MemoryKib < 8 * (ulong)bundle.Opaque.Argon2Parallelism)
        {
            throw new TransparencyException(
                "the Argon2id parameters are not valid (RFC 9106 section 3.1): parallelism 1..2^24-1, iterations at least 1, memory at least 8 KiB a lane");
        }

        if (bundle.Opaque.Context.Length > MaxContextBytes)
        {
            throw new TransparencyException($"the OPAQUE context has {bundle.Opaque.Context.Length} bytes; at most {MaxContextBytes} are allowed");
        }

        if (bundle.Members.Count is 0 or > MaxMembers)
        {
            throw new TransparencyException($"a bundle names 1..{MaxMembers} members; this one names {bundle.Members.Count}");
        }

        var memberIds = new HashSet<string>(StringComparer.Ordinal);
        foreach (var member in bundle.Members)
        {
            ValidateIdentifier(member.MemberId, "member id");
            if (!memberIds.Add(member.MemberId))
            {
                throw new TransparencyException($"member '{member.MemberId}' appears twice in the bundle");
            }

            if (string.IsNullOrEmpty(member.Endpoint) || member.Endpoint.Length > MaxEndpointLength || !member.Endpoint.All(c => c is > ' ' and <= '~'))
            {
                throw new TransparencyException($"member '{member.MemberId}' has an endpoint that is not 1..{MaxEndpointLength} printable ASCII characters without spaces");
            }
        }

        ValidateKeys(bundle.Keys, memberIds);
        if (bundle.EvidenceDigest is not { Length: WitnessStatement.DigestLength })
        {
            throw new TransparencyException($"the evidence digest must be {WitnessStatement.DigestLength} bytes (SHA-256 of the evidence file; zeros for none)");
        }
    }

    private static void ValidateKeys(IReadOnlyList<BundleKey> keys, HashSet<string> memberIds)
    {
        var seen = new HashSet<(BundleKeyRole, string)>();
        foreach (var key in keys)
        {
            ArgumentNullException.ThrowIfNull(key);
            var who = key.Role == BundleKeyRole.MemberIdentity ? $"member '{key.MemberId}''s identity key" : $"the {key.Role} key";
            if (!seen.Add((key.Role, key.MemberId)))
            {
                throw new TransparencyException($"the bundle has {who} twice");
            }

            switch (key.Role)
            {
                case BundleKeyRole.OpaqueServer:
                    if (key.MemberId.Length != 0 || key.Algorithm != 0 || key.PublicKey.Length != 32)
                    {
                        throw new TransparencyException("the OPAQUE server key must be a 32-byte ristretto255 element with algorithm 0 and no member id");
                    }

                    break;
                case BundleKeyRole.FleetSigning or BundleKeyRole.MemberIdentity:
                    if ((key.Role == BundleKeyRole.FleetSigning) != (key.MemberId.Length == 0))
                    {
                        throw new TransparencyException(key.Role == BundleKeyRole.FleetSigning
                            ? "the fleet signing key must not name a member"
                            : "a member identity key must name its member");
                    }

                    if (key.Role == BundleKeyRole.MemberIdentity && !memberIds.Contains(key.MemberId))
                    {
                        throw new TransparencyException($"{who} belongs to no member of the bundle");
                    }

                    var expectedLength = (SignatureAlgorithm)key.Algorithm switch
                    {
                        SignatureAlgorithm.Ed25519 => 32,
                        SignatureAlgorithm.EcdsaP256Sha256 => 65,
                        _ => throw new TransparencyException($"{who} names unknown signature algorithm {key.Algorithm}"),
                    };
                    if (key.PublicKey.Length != expectedLength)
                    {
                        throw new TransparencyException($"{who} is {(SignatureAlgorithm)key.Algorithm} and must have {expectedLength} bytes; it has {key.PublicKey.Length}");
                    }

                    break;
                default:
                    throw new TransparencyException($"the bundle has a key of unknown role {(int)key.Role}");
            }
        }

        if (!seen.Contains((BundleKeyRole.OpaqueServer, "")) || !seen.Contains((BundleKeyRole.FleetSigning, "")))
        {
            throw new TransparencyException("the bundle must carry exactly one OPAQUE server key and one fleet signing key");
        }

        var missing = memberIds.Where(id => !seen.Contains((BundleKeyRole.MemberIdentity, id))).ToList();
        if (missing.Count > 0)
        {
            throw new TransparencyException($"the bundle has no identity key for member(s) {string.Join(", ", missing)}");
        }
    }

    private static void ValidateIdentifier(string value, string what)
    {
        if (string.IsNullOrEmpty(value) || value.Length > 64 || !value.All(c => char.IsAsciiLetterOrDigit(c) || c is '.' or '_' or '-'))
        {
            throw new TransparencyException($"the {what} '{value}' must be 1..64 characters of A-Z, a-z, 0-9, '.', '_' or '-'");
        }
    }

    private sealed class Writer
    {
        private readonly List<byte> _bytes = [];

        public int Length => _bytes.Count;

        public void Bytes(ReadOnlySpan<byte> value) => _bytes.AddRange(value.ToArray());

        public void U8(int value) => _bytes.Add(checked((byte)value));

        public void U16(ushort value)
        {
            Span<byte> buffer = stackalloc byte[2];
            BinaryPrimitives.WriteUInt16BigEndian(buffer, value);
            Bytes(buffer);
        }

        public void U32(uint value)
        {
            Span<byte> buffer = stackalloc byte[4];
            BinaryPrimitives.WriteUInt32BigEndian(buffer, value);
            Bytes(buffer);
        }

        public void U64(ulong value)
        {
            Span<byte> buffer = stackalloc byte[8];
            BinaryPrimitives.WriteUInt64BigEndian(buffer, value);
            Bytes(buffer);
        }

        public void Short8(string value)
        {
            var bytes = Encoding.ASCII.GetBytes(value);
            U8(bytes.Length);
            Bytes(bytes);
        }

        public void Long16(ReadOnlySpan<byte> value)
        {
            U16(checked((ushort)value.Length));
            Bytes(value);
        }

        public byte[] ToArray() => [.. _bytes];
    }

    private ref struct Reader(ReadOnlySpan<byte> bytes)
    {
        private ReadOnlySpan<byte> _rest = bytes;

        public readonly bool AtEnd => _rest.IsEmpty;

        public readonly int Remaining => _rest.Length;

        public ReadOnlySpan<byte> Take(int count, string what)
        {
            if (_rest.Length < count)
            {
                throw new TransparencyException($"the bundle ends inside its {what}");
            }

            var taken = _rest[..count];
            _rest = _rest[count..];
            return taken;
        }

        public int U8(string what) => Take(1, what)[0];

        public ushort U16(string what) => BinaryPrimitives.ReadUInt16BigEndian(Take(2, what));

        public uint U32(string what) => BinaryPrimitives.ReadUInt32BigEndian(Take(4, what));

        public ulong U64(string what) => BinaryPrimitives.ReadUInt64BigEndian(Take(8, what));

        public string Short8String(string what)
        {
            var bytes = Take(U8(what), what);
            return bytes.IndexOfAnyInRange((byte)0x80, (byte)0xFF) >= 0
                ? throw new TransparencyException($"the bundle's {what} is not ASCII")
                : Encoding.ASCII.GetString(bytes);
        }

        public ReadOnlySpan<byte> Long16(string what) => Take(U16(what), what);
    }
}
