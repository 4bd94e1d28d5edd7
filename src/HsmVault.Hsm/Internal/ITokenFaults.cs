namespace HsmVault.Hsm.Internal;

/// <summary>
/// A seam for tests to make a real token misbehave the way hardware does and SoftHSM2 never
/// does (dropped sessions, removal, expired logins, slow calls). Production passes none; tests
/// plug one in through <see cref="Pkcs11VaultToken.OpenWithFaults"/>.
/// </summary>
internal interface ITokenFaults
{
    /// <summary>
    /// Runs on the calling thread just before an operation uses its session; may block (a slow
    /// token) or throw a <see cref="Net.Pkcs11Interop.Common.Pkcs11Exception"/> as the module would.
    /// </summary>
    /// <param name="operation">The <see cref="IVaultToken"/> operation, e.g. <c>Unseal</c>.</param>
    void BeforeOperation(string operation);

    /// <summary>Runs before the token is looked for again after a lost session; may throw as C_GetSlotList or C_OpenSession would.</summary>
    void BeforeReconnect();
}
