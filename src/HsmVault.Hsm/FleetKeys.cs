using System.Security.Cryptography;
using HsmVault.Crypto.Opaque;

namespace HsmVault.Hsm;

/// <summary>
/// The fleet's OPAQUE server key pair (the AKE key). Its private key is kept in the token as
/// a private data object, itself sealed with the token's record key; the daemon unseals it
/// into pinned memory at start-up.
/// </summary>
public static class FleetKeys
{
    /// <summary>Name of the token data object holding the sealed AKE private key.</summary>
    public const string AkePrivateKeyObject = "ake-private-key";

    /// <summary>Whether the token already holds an AKE key.</summary>
    public static bool HasAkeKey(IVaultToken token)
    {
        ArgumentNullException.ThrowIfNull(token);
        return token.ReadDataObject(AkePrivateKeyObject) is not null;
    }

    /// <summary>Generates a fresh AKE key pair and stores it, sealed, in the token. Provisioning only.</summary>
    /// <returns>The new public key.</returns>
    public static byte[] CreateAkeKey(IVaultToken token)
    {
        ArgumentNullException.ThrowIfNull(token);
        using var keyPair = ServerKeyPair.Generate();
        StoreAkeKey(token, keyPair);
        return keyPair.PublicKey.ToArray();
    }

    private static void StoreAkeKey(IVaultToken token, ServerKeyPair keyPair)
    {
        var privateKey = GC.AllocateArray<byte>(OpaqueSizes.PrivateKey, pinned: true);
        try
        {
            keyPair.CopyPrivateKey(privateKey);
            token.WriteDataObject(AkePrivateKeyObject, token.Seal(privateKey, SealBinding.AkePrivateKey));
        }
        finally
        {
            CryptographicOperations.ZeroMemory(privateKey);
        }
    }

    /// <summary>Unseals the AKE key pair from the token.</summary>
    /// <exception cref="TokenConfigurationException">The token has no AKE key.</exception>
    public static ServerKeyPair LoadAkeKey(IVaultToken token)
    {
        ArgumentNullException.ThrowIfNull(token);
        var sealedKey = token.ReadDataObject(AkePrivateKeyObject)
            ?? throw new TokenConfigurationException(
                $"token '{token.Description.Label}' has no OPAQUE server key ('{AkePrivateKeyObject}'); provision it with `hsmvault token init`");
        var privateKey = token.Unseal(sealedKey, SealBinding.AkePrivateKey);
        try
        {
            return ServerKeyPair.FromPrivateKey(privateKey);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(privateKey);
        }
    }
}
