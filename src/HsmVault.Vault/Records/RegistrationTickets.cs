using System.Buffers.Binary;
using System.Security.Cryptography;
using HsmVault.Hsm;

namespace HsmVault.Vault.Records;

/// <summary>A registration in progress: its nonce and the ticket the client must bring back.</summary>
public sealed record RegistrationTicket(byte[] Nonce, byte[] Sealed);

/// <summary>
/// Tickets that carry a registration's random nonce from StartRegistration to
/// FinishRegistration through the client. Sealed by the token's record key with the fleet
/// and the user in the associated data, so a client can neither choose the nonce (and with
/// it the OPRF key of a live record) nor reuse another user's ticket; any member can open a
/// ticket another member issued, since they share the record key.
/// </summary>
public sealed class RegistrationTickets(IVaultToken token, string fleetId, TimeProvider time, TimeSpan lifetime)
{
    /// <summary>A fresh nonce and its ticket for <paramref name="user"/>.</summary>
    public RegistrationTicket Issue(UserIdentity user)
    {
        ArgumentNullException.ThrowIfNull(user);
        var nonce = RandomNumberGenerator.GetBytes(UserIdentity.RegistrationNonceBytes);
        var payload = new byte[UserIdentity.RegistrationNonceBytes + 8];
        nonce.CopyTo(payload, 0);
        BinaryPrimitives.WriteInt64BigEndian(payload.AsSpan(UserIdentity.RegistrationNonceBytes), (time.GetUtcNow() + lifetime).ToUnixTimeSeconds());
        return new RegistrationTicket(nonce, token.Seal(payload, AssociatedData(user)));
    }

    /// <summary>The nonce of a ticket this fleet issued to <paramref name="user"/> and that has not expired.</summary>
    /// <exception cref="VaultException">InvalidArgument otherwise.</exception>
    public byte[] Open(UserIdentity user, byte[] ticket)
    {
        ArgumentNullException.ThrowIfNull(user);
        ArgumentNullException.ThrowIfNull(ticket);
        byte[] payload;
        try
        {
            payload = token.Unseal(ticket, AssociatedData(user));
        }
        catch (SealedDataIntegrityException)
        {
            throw Invalid();
        }

        if (payload.Length != UserIdentity.RegistrationNonceBytes + 8)
        {
            throw Invalid();
        }

        var expiresAt = DateTimeOffset.FromUnixTimeSeconds(BinaryPrimitives.ReadInt64BigEndian(payload.AsSpan(UserIdentity.RegistrationNonceBytes)));
        if (expiresAt <= time.GetUtcNow())
        {
            throw new VaultException(VaultError.InvalidArgument, "registration_ticket has expired; call StartRegistration again");
        }

        return payload[..UserIdentity.RegistrationNonceBytes];
    }

    private static VaultException Invalid() => new(VaultError.InvalidArgument,
        "registration_ticket is not one this fleet issued to the caller; pass back the ticket StartRegistration returned");

    private byte[] AssociatedData(UserIdentity user) => SealBinding.RegistrationTicket(fleetId, user.Encoded);
}
