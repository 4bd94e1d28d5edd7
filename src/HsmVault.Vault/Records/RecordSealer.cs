using HsmVault.Protocol;
using System.Buffers.Binary;
using System.Security.Cryptography;
using HsmVault.Crypto.Opaque;
using HsmVault.Hsm;

namespace HsmVault.Vault.Records;

/// <summary>What a sealed record holds.</summary>
/// <param name="RegistrationNonce">The registration's nonce: part of the credential identifier its OPRF key derives from.</param>
/// <param name="RegistrationRecord">OPAQUE's RegistrationRecord (192 bytes).</param>
/// <param name="GuessLimit">Guesses allowed, as registered; checked against the replicated row.</param>
/// <param name="EncryptedSecret">The client's backup key, encrypted by the client under a key from export_key.</param>
public sealed record RecordContents(byte[] RegistrationNonce, byte[] RegistrationRecord, int GuessLimit, byte[] EncryptedSecret);

/// <summary>
/// Seals a user's record with the token's record key (AES-256-GCM inside the token). The
/// associated data binds the blob to the fleet, the user and the record version, so a blob
/// moved to another user, or an older blob put back over a newer version, fails to open.
/// </summary>
public sealed class RecordSealer(IVaultToken token, string fleetId)
{
    // Layout: format(1) || nonce(16) || registration record(192) || guess limit(1) || secret length(2) || secret.
    private const byte PayloadFormat = 1;
    private const int NonceOffset = 1;
    private const int RecordOffset = NonceOffset + UserIdentity.RegistrationNonceBytes;
    private const int LimitOffset = RecordOffset + OpaqueSizes.RegistrationRecord;
    private const int HeaderLength = LimitOffset + 1 + 2;

    /// <summary>Seals <paramref name="contents"/> as version <paramref name="version"/> of the user's record.</summary>
    public byte[] Seal(UserIdentity user, long version, RecordContents contents)
    {
        ArgumentNullException.ThrowIfNull(contents);
        var payload = new byte[HeaderLength + contents.EncryptedSecret.Length];
        try
        {
            payload[0] = PayloadFormat;
            contents.RegistrationNonce.CopyTo(payload, NonceOffset);
            contents.RegistrationRecord.CopyTo(payload, RecordOffset);
            payload[LimitOffset] = RecordLimits.CountByte(contents.GuessLimit);
            BinaryPrimitives.WriteUInt16BigEndian(payload.AsSpan(LimitOffset + 1), (ushort)contents.EncryptedSecret.Length);
            contents.EncryptedSecret.CopyTo(payload, HeaderLength);
            return token.Seal(payload, AssociatedData(user, version));
        }
        finally
        {
            CryptographicOperations.ZeroMemory(payload);
        }
    }

    /// <summary>Opens version <paramref name="version"/> of the user's sealed record.</summary>
    /// <exception cref="VaultException">DataLoss when the blob was altered, swapped or is malformed.</exception>
    public RecordContents Unseal(UserIdentity user, long version, byte[] sealedRecord)
    {
        byte[] payload;
        try
        {
            payload = token.Unseal(sealedRecord, AssociatedData(user, version));
        }
        catch (SealedDataIntegrityException e)
        {
            throw new VaultException(VaultError.DataLoss, $"the stored record of {user} failed its integrity check; it was altered or does not belong to this user and version", e);
        }

        try
        {
            if (payload.Length < HeaderLength || payload[0] != PayloadFormat
                || BinaryPrimitives.ReadUInt16BigEndian(payload.AsSpan(LimitOffset + 1)) != payload.Length - HeaderLength)
            {
                throw new VaultException(VaultError.DataLoss, $"the stored record of {user} has an unknown layout");
            }

            return new RecordContents(
                payload[NonceOffset..RecordOffset],
                payload[RecordOffset..LimitOffset],
                payload[LimitOffset],
                payload[HeaderLength..]);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(payload);
        }
    }

    private byte[] AssociatedData(UserIdentity user, long version) => SealBinding.Record(fleetId, user.Encoded, version);
}
