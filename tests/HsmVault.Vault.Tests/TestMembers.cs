using System.Security.Cryptography;
using HsmVault.Vault.State;

namespace HsmVault.Vault.Tests;

/// <summary>Commands in the shapes tests write most: a fresh ticket nonce per registration, a charge at the record's current serial.</summary>
internal static class Commands
{
    public static RegisterCommand Register(UserIdentity user, long expectedVersion, int limit, byte[] sealedRecord, bool replace) =>
        new(user, expectedVersion, limit, sealedRecord, replace, RandomNumberGenerator.GetBytes(UserIdentity.RegistrationNonceBytes));

    public static ChargeGuessCommand Charge(VaultStateMachine state, UserIdentity user, long version) =>
        new(user, version, state.Read(user)?.AttemptSerial ?? 0, RandomNumberGenerator.GetBytes(VaultCommandCodec.AttemptIdBytes));

    public static ResetGuessesCommand Reset(VaultStateMachine state, UserIdentity user, long version) =>
        new(user, version, state.Read(user)?.AttemptSerial ?? 0);

    public static DeleteCommand Delete(VaultStateMachine state, UserIdentity user) =>
        new(user, state.Read(user)?.Version ?? 0);
}
