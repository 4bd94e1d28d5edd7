namespace HsmVault.Crypto.Opaque;

/// <summary>
/// Computes RFC 9807's <c>Expand(oprf_seed, info, Nok)</c> for the server's OPRF seed without
/// ever exposing the seed: in the daemon the token computes it (see <c>IVaultToken.ExpandOprfSeed</c>).
/// </summary>
public interface IOprfSeedExpander
{
    /// <summary>First 32 bytes of <c>HMAC-SHA512(oprf_seed, info || 0x01)</c>.</summary>
    void ExpandOprfSeed(ReadOnlySpan<byte> info, Span<byte> destination);
}

/// <summary>A key stretching function (RFC 9807 section 4.3): Argon2id in production, identity in the RFC vectors.</summary>
public interface IKeyStretchingFunction
{
    /// <summary>Stretches the OPRF output; returns a new buffer the caller wipes.</summary>
    byte[] Stretch(ReadOnlySpan<byte> input);
}

/// <summary>A malformed or invalid OPAQUE message: wrong length, not a valid group element, or the identity.</summary>
public sealed class OpaqueProtocolException(string message) : Exception(message);
