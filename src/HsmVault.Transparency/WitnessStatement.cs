using System.Buffers.Binary;
using System.Text;
using HsmVault.Crypto.Signatures;

namespace HsmVault.Transparency;

/// <summary>
/// What a witness signs for each bundle it logs: {ciphersuite, namespace, timestamp, epoch,
/// digest}, the fields Cloudflare's Plexi auditor signs for a key-transparency epoch, in one
/// canonical encoding (Plexi serializes them with protobuf or bincode, neither of which is
/// canonical). The encoded bytes are both the message the witness signs and the log's leaf data.
/// </summary>
/// <remarks>
/// Encoding, every integer big-endian (README, "The witness"):
/// <code>
///   30 bytes  "HsmVault witness statement v1" || 0x00   domain separation
///    2 bytes  ciphersuite: the witness signature's SignatureAlgorithm (1 = Ed25519, 2 = ECDSA P-256 SHA-256)
///    1 byte   n = namespace length, 1..128
///    n bytes  namespace, ASCII [A-Za-z0-9._:/-]
///    8 bytes  timestamp: milliseconds since 1970-01-01T00:00:00Z when the witness logged it
///    8 bytes  epoch, 1..2^63-1
///   32 bytes  digest: SHA-256 of the bundle
/// </code>
/// The 0x00 in the prefix means no statement is ever valid C2SP note text (which has no control
/// characters), so one witness key can sign both without one being taken for the other.
/// </remarks>
/// <param name="Ciphersuite">Algorithm of the witness signature over these bytes.</param>
/// <param name="Namespace">Whose history this is (e.g. one operator's fleet line).</param>
/// <param name="Timestamp">When the witness logged it, in milliseconds since the Unix epoch.</param>
/// <param name="Epoch">Position in the namespace's history; strictly increasing.</param>
/// <param name="Digest">SHA-256 of the bundle.</param>
public sealed record WitnessStatement(SignatureAlgorithm Ciphersuite, string Namespace, ulong Timestamp, ulong Epoch, byte[] Digest)
{
    /// <summary>Domain-separation prefix of the encoding.</summary>
    public static ReadOnlySpan<byte> Prefix => "HsmVault witness statement v1\0"u8;

    /// <summary>Longest namespace.</summary>
    public const int MaxNamespaceLength = 128;

    /// <summary>Length of the digest: SHA-256.</summary>
    public const int DigestLength = 32;

    /// <summary>Largest epoch (SQLite integers are signed 64-bit).</summary>
    public const ulong MaxEpoch = long.MaxValue;

    /// <summary>The canonical encoding: the bytes the witness signs and logs.</summary>
    /// <exception cref="TransparencyException">A field is out of range.</exception>
    public byte[] Encode()
    {
        ValidateNamespace(Namespace);
        ValidateEpoch(Epoch);
        ValidateDigest(Digest);
        var length = Prefix.Length + 2 + 1 + Namespace.Length + 8 + 8 + DigestLength;
        var bytes = new byte[length];
        var span = bytes.AsSpan();
        Prefix.CopyTo(span);
        var at = Prefix.Length;
        BinaryPrimitives.WriteUInt16BigEndian(span[at..], (ushort)Ciphersuite);
        at += 2;
        span[at++] = (byte)Namespace.Length;
        at += Encoding.ASCII.GetBytes(Namespace, span[at..]);
        BinaryPrimitives.WriteUInt64BigEndian(span[at..], Timestamp);
        at += 8;
        BinaryPrimitives.WriteUInt64BigEndian(span[at..], Epoch);
        at += 8;
        Digest.CopyTo(span[at..]);
        return bytes;
    }

    /// <summary>Decodes a statement, refusing anything but the canonical encoding.</summary>
    /// <exception cref="TransparencyException">The bytes are not a statement.</exception>
    public static WitnessStatement Decode(ReadOnlySpan<byte> bytes)
    {
        var minimum = Prefix.Length + 2 + 1;
        if (bytes.Length < minimum || !bytes.StartsWith(Prefix))
        {
            throw new TransparencyException("not a witness statement: it does not start with \"HsmVault witness statement v1\\0\"");
        }

        var at = Prefix.Length;
        var ciphersuite = (SignatureAlgorithm)BinaryPrimitives.ReadUInt16BigEndian(bytes[at..]);
        at += 2;
        int n = bytes[at++];
        if (bytes.Length != at + n + 8 + 8 + DigestLength)
        {
            throw new TransparencyException($"witness statement has {bytes.Length} bytes; its namespace length {n} gives {at + n + 8 + 8 + DigestLength}");
        }

        if (!Enum.IsDefined(ciphersuite))
        {
            throw new TransparencyException($"witness statement names unknown ciphersuite {(int)ciphersuite}");
        }

        var ns = Encoding.ASCII.GetString(bytes.Slice(at, n));
        at += n;
        var timestamp = BinaryPrimitives.ReadUInt64BigEndian(bytes[at..]);
        at += 8;
        var epoch = BinaryPrimitives.ReadUInt64BigEndian(bytes[at..]);
        at += 8;
        var statement = new WitnessStatement(ciphersuite, ns, timestamp, epoch, bytes[at..].ToArray());
        ValidateNamespace(ns);
        ValidateEpoch(epoch);
        return statement;
    }

    /// <summary>Throws unless <paramref name="ns"/> is 1..128 characters of [A-Za-z0-9._:/-].</summary>
    /// <exception cref="TransparencyException">It is not.</exception>
    public static void ValidateNamespace(string ns)
    {
        if (string.IsNullOrEmpty(ns) || ns.Length > MaxNamespaceLength || !ns.All(IsNamespaceCharacter))
        {
            throw new TransparencyException(
                $"namespace must be 1..{MaxNamespaceLength} characters of A-Z, a-z, 0-9 and . _ : / -");
        }
    }

    /// <summary>Throws unless <paramref name="epoch"/> is 1..2^63-1.</summary>
    /// <exception cref="TransparencyException">It is not.</exception>
    public static void ValidateEpoch(ulong epoch)
    {
        if (epoch is 0 or > MaxEpoch)
        {
            throw new TransparencyException($"epoch must be 1..{MaxEpoch}; it is {epoch}");
        }
    }

    /// <summary>Throws unless <paramref name="digest"/> is a 32-byte SHA-256 digest.</summary>
    /// <exception cref="TransparencyException">It is not.</exception>
    public static void ValidateDigest(ReadOnlySpan<byte> digest)
    {
        if (digest.Length != DigestLength)
        {
            throw new TransparencyException($"digest must be {DigestLength} bytes (SHA-256); it has {digest.Length}");
        }
    }

    /// <summary>Value equality over the digest bytes too.</summary>
    public bool Equals(WitnessStatement? other) =>
        other is not null && Ciphersuite == other.Ciphersuite && Namespace == other.Namespace && Timestamp == other.Timestamp
        && Epoch == other.Epoch && Digest.AsSpan().SequenceEqual(other.Digest);

    /// <inheritdoc/>
    public override int GetHashCode() => HashCode.Combine(Namespace, Epoch, Timestamp);

    private static bool IsNamespaceCharacter(char c) => char.IsAsciiLetterOrDigit(c) || c is '.' or '_' or ':' or '/' or '-';
}
