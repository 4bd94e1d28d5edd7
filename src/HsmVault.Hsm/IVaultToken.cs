using HsmVault.Crypto.Signatures;

namespace HsmVault.Hsm;

/// <summary>
/// The one PKCS#11 token a vault member drives. Every long-term secret that protects
/// passwords lives inside it as a private, sensitive object; this interface only ever
/// hands out results computed with those secrets, never the secrets themselves.
/// </summary>
/// <remarks>
/// Implementations are thread-safe: each call borrows a session from a bounded pool and
/// waits for a slot under the configured cap on concurrent token operations. A session
/// the token has dropped is replaced and the call retried once, so callers see
/// <see cref="TokenUnavailableException"/> only when the token stays unreachable.
/// </remarks>
public interface IVaultToken : IDisposable
{
    /// <summary>Label, serial and model of the token in use.</summary>
    TokenDescription Description { get; }

    /// <summary>
    /// RFC 9807's <c>Expand(oprf_seed, info, 32)</c> with HKDF-SHA512: the first 32 bytes of
    /// <c>HMAC-SHA512(oprf_seed, info || 0x01)</c>, computed by the token (CKM_SHA512_HMAC)
    /// with the fleet's OPRF seed.
    /// </summary>
    /// <param name="info">For an OPRF key: <c>credential_identifier || "OprfKey"</c>.</param>
    /// <param name="destination">Exactly 32 bytes; the caller wipes it after use.</param>
    void ExpandOprfSeed(ReadOnlySpan<byte> info, Span<byte> destination);

    /// <summary>
    /// Seals <paramref name="plaintext"/> with AES-256-GCM under the fleet's record key and a
    /// fresh 12-byte IV. Returns <c>iv(12) || ciphertext || tag(16)</c>.
    /// </summary>
    byte[] Seal(ReadOnlySpan<byte> plaintext, ReadOnlySpan<byte> associatedData);

    /// <summary>Opens a blob made by <see cref="Seal"/> with the same associated data.</summary>
    /// <exception cref="SealedDataIntegrityException">The blob or its associated data was altered.</exception>
    byte[] Unseal(ReadOnlySpan<byte> sealedBlob, ReadOnlySpan<byte> associatedData);

    /// <summary>The fleet signing key's algorithm and public key.</summary>
    SigningKeyDescription SigningKey { get; }

    /// <summary>Signs <paramref name="message"/> with the fleet signing key (Ed25519, or ECDSA P-256 over SHA-256).</summary>
    byte[] Sign(ReadOnlySpan<byte> message);

    /// <summary>
    /// This member's own identity key: generated inside this token (CKA_LOCAL), never
    /// extractable, and never copied by the key ceremony, so a signature under it proves that
    /// this member's token made it.
    /// </summary>
    SigningKeyDescription MemberIdentityKey { get; }

    /// <summary>Signs <paramref name="message"/> with this member's identity key.</summary>
    byte[] SignAsMember(ReadOnlySpan<byte> message);

    /// <summary>Reads a private data object the vault stored in the token; null when absent.</summary>
    byte[]? ReadDataObject(string name);

    /// <summary>Creates or overwrites a private data object in the token (see <c>Internal.DataObjects</c> for its form).</summary>
    void WriteDataObject(string name, ReadOnlySpan<byte> value);
}

/// <summary>Which token is in use, for logs, health and deployment evidence.</summary>
public sealed record TokenDescription(string Label, string SerialNumber, string ManufacturerId, string Model, ulong SlotId);

/// <summary>The token could not be reached (removed, logged out, failing) even after reconnecting.</summary>
public sealed class TokenUnavailableException(string message, Exception? innerException = null)
    : Exception(message, innerException);

/// <summary>A sealed blob failed its AES-GCM tag check: it, or its associated data, was altered.</summary>
public sealed class SealedDataIntegrityException(string message)
    : Exception(message);

/// <summary>
/// The token configuration does not match what is present: module missing, token not found,
/// wrong PIN, fleet keys missing. The message names what was found.
/// </summary>
public sealed class TokenConfigurationException(string message, Exception? innerException = null)
    : Exception(message, innerException)
{
    /// <summary>True when the token itself is fine but lacks fleet keys: it has not been provisioned yet.</summary>
    public bool FleetKeysMissing { get; init; }
}
