using System.Buffers.Binary;
using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using HsmVault.Crypto.Signatures;

namespace HsmVault.Transparency.Notes;

/// <summary>
/// An Ed25519 key that signs C2SP signed notes (c2sp.org/signed-note, "Ed25519 signatures"):
/// its key name, its key ID and its public key, with the verifier key ("vkey") text
/// <c>name+hex(key ID)+base64(0x01 || public key)</c> that golang.org/x/mod/sumdb/note reads.
/// </summary>
public sealed class NoteVerifierKey
{
    /// <summary>Signature type identifier byte of Ed25519 note signatures (c2sp.org/signed-note, "Signature types").</summary>
    public const byte Ed25519SignatureType = 0x01;

    private NoteVerifierKey(string name, uint keyId, byte[] publicKey)
    {
        Name = name;
        KeyId = keyId;
        PublicKey = publicKey;
    }

    /// <summary>The key name, which signature lines carry.</summary>
    public string Name { get; }

    /// <summary>The key ID: the first four bytes, big-endian, of SHA-256(name || 0x0A || 0x01 || public key).</summary>
    public uint KeyId { get; }

    /// <summary>The 32-byte Ed25519 public key (RFC 8032 encoding).</summary>
    public byte[] PublicKey { get; }

    /// <summary>The key as a <see cref="SigningKeyDescription"/>, for software verification.</summary>
    public SigningKeyDescription SigningKey => new(SignatureAlgorithm.Ed25519, PublicKey);

    /// <summary>The verifier key text: <c>name+hex(key ID)+base64(0x01 || public key)</c>.</summary>
    public string VerifierKey =>
        $"{Name}+{KeyId.ToString("x8", CultureInfo.InvariantCulture)}+{Convert.ToBase64String([Ed25519SignatureType, .. PublicKey])}";

    /// <summary>The note key for <paramref name="name"/> and an Ed25519 public key.</summary>
    /// <exception cref="TransparencyException">The name is not a valid key name, or the key is not a 32-byte Ed25519 key.</exception>
    public static NoteVerifierKey Create(string name, SigningKeyDescription key)
    {
        ArgumentNullException.ThrowIfNull(key);
        ValidateKeyName(name);
        if (key.Algorithm != SignatureAlgorithm.Ed25519 || key.PublicKey.Length != 32)
        {
            throw new TransparencyException($"note key '{name}' must be a 32-byte Ed25519 key; it is {key.Algorithm} with {key.PublicKey.Length} bytes");
        }

        return new NoteVerifierKey(name, ComputeKeyId(name, key.PublicKey), key.PublicKey.ToArray());
    }

    /// <summary>Parses a verifier key text (<c>name+hex(key ID)+base64(0x01 || public key)</c>), checking that its ID matches its name and key.</summary>
    /// <exception cref="TransparencyException">The text is not an Ed25519 verifier key, or its ID does not match.</exception>
    public static NoteVerifierKey Parse(string verifierKey)
    {
        ArgumentNullException.ThrowIfNull(verifierKey);
        // The name has no '+', the ID is 8 hex digits; the base64 key may itself contain '+'.
        var parts = verifierKey.Split('+', 3);
        if (parts.Length != 3 || parts[1].Length != 8 || !uint.TryParse(parts[1], NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out var id)
            || parts[1].Any(char.IsAsciiLetterUpper))
        {
            throw new TransparencyException($"'{verifierKey}' is not a verifier key of the form name+hex(key ID)+base64(type || key)");
        }

        byte[] material;
        try
        {
            material = Convert.FromBase64String(parts[2]);
        }
        catch (FormatException)
        {
            throw new TransparencyException($"verifier key '{parts[0]}' has a key part that is not base64");
        }

        if (material.Length != 33 || material[0] != Ed25519SignatureType)
        {
            throw new TransparencyException($"verifier key '{parts[0]}' is not an Ed25519 key (signature type 0x01 and 32 bytes)");
        }

        var key = Create(parts[0], new SigningKeyDescription(SignatureAlgorithm.Ed25519, material[1..]));
        if (key.KeyId != id)
        {
            throw new TransparencyException($"verifier key '{parts[0]}' names key ID {parts[1]}, but its name and key give {key.KeyId:x8}");
        }

        return key;
    }

    /// <summary>Throws unless <paramref name="name"/> is a key name: non-empty, no Unicode spaces, no '+' (c2sp.org/signed-note, "Format").</summary>
    /// <exception cref="TransparencyException">It is not.</exception>
    public static void ValidateKeyName(string name)
    {
        if (string.IsNullOrEmpty(name) || name.Contains('+', StringComparison.Ordinal) || name.Any(c => char.IsWhiteSpace(c) || char.IsControl(c)))
        {
            throw new TransparencyException($"'{name}' is not a note key name: it must be non-empty, without spaces, control characters or '+'");
        }
    }

    /// <summary>SHA-256(name || 0x0A || 0x01 || public key)[:4], big-endian (c2sp.org/signed-note, "Ed25519 signatures").</summary>
    private static uint ComputeKeyId(string name, ReadOnlySpan<byte> publicKey)
    {
        var input = new List<byte>(Encoding.UTF8.GetBytes(name)) { 0x0A, Ed25519SignatureType };
        input.AddRange(publicKey.ToArray());
        return BinaryPrimitives.ReadUInt32BigEndian(SHA256.HashData([.. input]));
    }
}
