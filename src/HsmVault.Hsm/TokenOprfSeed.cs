using HsmVault.Crypto.Opaque;

namespace HsmVault.Hsm;

/// <summary>Lets OPAQUE derive per-user OPRF keys with the seed that never leaves the token.</summary>
public sealed class TokenOprfSeed(IVaultToken token) : IOprfSeedExpander
{
    /// <inheritdoc/>
    public void ExpandOprfSeed(ReadOnlySpan<byte> info, Span<byte> destination) => token.ExpandOprfSeed(info, destination);
}
