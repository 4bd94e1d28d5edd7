using HsmVault.Crypto.Signatures;
using HsmVault.Hsm;

namespace HsmVault.Witness;

/// <summary>The witness's signing key: one Ed25519 key signs statements and checkpoints.</summary>
public interface IWitnessSigner
{
    /// <summary>The key's public half; Ed25519, as C2SP note signatures require.</summary>
    SigningKeyDescription PublicKey { get; }

    /// <summary>The Ed25519 signature (64 bytes) of <paramref name="message"/>.</summary>
    byte[] Sign(ReadOnlySpan<byte> message);
}

/// <summary>The witness key held in a PKCS#11 token.</summary>
/// <param name="key">The opened token key; owned by the caller.</param>
public sealed class TokenWitnessSigner(TokenSigningKey key) : IWitnessSigner
{
    /// <inheritdoc/>
    public SigningKeyDescription PublicKey => key.PublicKey;

    /// <inheritdoc/>
    public byte[] Sign(ReadOnlySpan<byte> message) => key.Sign(message);
}
