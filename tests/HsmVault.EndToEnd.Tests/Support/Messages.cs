using Google.Protobuf;
using Grpc.Core;
using HsmVault.Crypto;
using HsmVault.Crypto.Opaque;
using HsmVault.Protocol.V1;
using HsmVault.Testing.Opaque;
using ProtoVault = HsmVault.Protocol.V1.Vault;

namespace HsmVault.EndToEnd.Tests.Support;

/// <summary>
/// OPAQUE messages made by hand with the client side of HsmVault.Crypto, for tests that talk
/// to the daemon through the generated gRPC client and need to see (or spoil) every field.
/// </summary>
public static class Messages
{
    /// <summary>A valid KE1 for <paramref name="password"/> (its state is thrown away).</summary>
    public static ByteString Ke1(byte[] password)
    {
        var start = new OpaqueClient(TestOpaqueSettings.Configuration).GenerateKe1(password);
        start.State.Dispose();
        return ByteString.CopyFrom(start.Ke1);
    }

    /// <summary>A valid RegistrationRequest (its state is thrown away).</summary>
    public static ByteString RegistrationRequest(byte[] password)
    {
        var start = new OpaqueClient(TestOpaqueSettings.Configuration).CreateRegistrationRequest(password);
        start.State.Dispose();
        return ByteString.CopyFrom(start.RegistrationRequest);
    }

    /// <summary>A client's half of a registration: the record, the export key, and the server's ticket.</summary>
    public sealed record PreparedRegistration(byte[] RegistrationRecord, byte[] ExportKey, ByteString Ticket);

    /// <summary>Runs StartRegistration for real and returns a valid RegistrationRecord, the export key and the ticket.</summary>
    public static async Task<PreparedRegistration> RegistrationRecordAsync(ProtoVault.VaultClient client, Metadata headers, byte[] password)
    {
        ArgumentNullException.ThrowIfNull(client);
        var opaque = new OpaqueClient(TestOpaqueSettings.Configuration);
        var start = opaque.CreateRegistrationRequest(password);
        using var state = start.State;
        var response = await client.StartRegistrationAsync(
            new StartRegistrationRequest { RegistrationRequest = ByteString.CopyFrom(start.RegistrationRequest) }, headers);
        var finish = opaque.FinalizeRegistrationRequest(state, response.RegistrationResponse.Span);
        return new PreparedRegistration(finish.RegistrationRecord, finish.ExportKey, response.RegistrationTicket);
    }

    /// <summary>Registers <paramref name="backupKey"/> behind <paramref name="password"/> through the raw client.</summary>
    public static async Task RegisterAsync(ProtoVault.VaultClient client, Metadata headers, byte[] password, byte[] backupKey, uint guessLimit = 0)
    {
        ArgumentNullException.ThrowIfNull(client);
        var finish = await RegistrationRecordAsync(client, headers, password);
        await client.FinishRegistrationAsync(
            new FinishRegistrationRequest
            {
                RegistrationRecord = ByteString.CopyFrom(finish.RegistrationRecord),
                RegistrationTicket = finish.Ticket,
                EncryptedSecret = ByteString.CopyFrom(SecretEnvelopes.EncryptBackupKey(finish.ExportKey, backupKey)),
                GuessLimit = guessLimit,
            },
            headers);
    }

    /// <summary>
    /// StartRecovery for real; returns the answer and the client's KE3 (null when KE2 did not
    /// authenticate, i.e. the password is wrong).
    /// </summary>
    public static async Task<(StartRecoveryResponse Started, ClientLoginFinish? Finish)> StartRecoveryAsync(
        ProtoVault.VaultClient client, Metadata headers, byte[] password)
    {
        ArgumentNullException.ThrowIfNull(client);
        var opaque = new OpaqueClient(TestOpaqueSettings.Configuration);
        var start = opaque.GenerateKe1(password);
        using var state = start.State;
        var started = await client.StartRecoveryAsync(new StartRecoveryRequest { Ke1 = ByteString.CopyFrom(start.Ke1) }, headers);
        return (started, opaque.GenerateKe3(state, started.Ke2.Span));
    }

    /// <summary><paramref name="length"/> copies of <paramref name="value"/>.</summary>
    public static ByteString Filled(int length, byte value)
    {
        var bytes = new byte[length];
        Array.Fill(bytes, value);
        return ByteString.CopyFrom(bytes);
    }
}
