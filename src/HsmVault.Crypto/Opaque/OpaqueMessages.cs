using System.Security.Cryptography;

namespace HsmVault.Crypto.Opaque;

/// <summary>The client's first registration step: the message to send and the state to keep.</summary>
/// <param name="RegistrationRequest">The RegistrationRequest (<see cref="OpaqueSizes.RegistrationRequest"/> bytes) for the server.</param>
/// <param name="State">Password and blind, needed by <see cref="OpaqueClient.FinalizeRegistrationRequest(ClientRegistrationState, ReadOnlySpan{byte})"/>; dispose after use.</param>
public sealed record ClientRegistrationStart(byte[] RegistrationRequest, ClientRegistrationState State);

/// <summary>The client's last registration step.</summary>
/// <param name="RegistrationRecord">The RegistrationRecord (<see cref="OpaqueSizes.RegistrationRecord"/> bytes) the server stores.</param>
/// <param name="ExportKey">The export key (<see cref="OpaqueSizes.ExportKey"/> bytes): a client-only secret; wipe after use.</param>
public sealed record ClientRegistrationFinish(byte[] RegistrationRecord, byte[] ExportKey);

/// <summary>The client's first login step: KE1 and the state to keep.</summary>
/// <param name="Ke1">KE1 (<see cref="OpaqueSizes.Ke1"/> bytes) for the server.</param>
/// <param name="State">Password, blind, ephemeral secret and KE1; needed by <see cref="OpaqueClient.GenerateKe3(ClientLoginState, ReadOnlySpan{byte})"/>; dispose after use.</param>
public sealed record ClientLoginStart(byte[] Ke1, ClientLoginState State);

/// <summary>The client's last login step, reached only when the server authenticated.</summary>
/// <param name="Ke3">KE3 (<see cref="OpaqueSizes.Ke3"/> bytes) for the server.</param>
/// <param name="SessionKey">The shared session key (<see cref="OpaqueSizes.SessionKey"/> bytes); wipe after use.</param>
/// <param name="ExportKey">The export key (<see cref="OpaqueSizes.ExportKey"/> bytes), equal to the one from registration; wipe after use.</param>
/// <param name="ServerPublicKey">
/// The server's long-term public key the envelope authenticated (the one registration saw): a client
/// that knows the fleet's key from elsewhere (a validation bundle) compares it before it sends KE3.
/// </param>
public sealed record ClientLoginFinish(byte[] Ke3, byte[] SessionKey, byte[] ExportKey, byte[] ServerPublicKey);

/// <summary>The server's answer to KE1: KE2 and the state needed to check KE3.</summary>
/// <param name="Ke2">KE2 (<see cref="OpaqueSizes.Ke2"/> bytes) for the client.</param>
/// <param name="State">Expected client MAC and session key; pass to <see cref="OpaqueServer.ServerFinish"/>, then dispose.</param>
public sealed record ServerLoginStart(byte[] Ke2, ServerLoginState State);

/// <summary>Client state between CreateRegistrationRequest and FinalizeRegistrationRequest (RFC 9807 section 5.2).</summary>
public sealed class ClientRegistrationState : IDisposable
{
    internal ClientRegistrationState(ReadOnlySpan<byte> password, byte[] blind)
    {
        Password = password.ToArray();
        Blind = blind;
    }

    internal byte[] Password { get; }

    internal byte[] Blind { get; }

    internal bool IsDisposed { get; private set; }

    /// <summary>Wipes the password and the blind.</summary>
    public void Dispose()
    {
        IsDisposed = true;
        CryptographicOperations.ZeroMemory(Password);
        CryptographicOperations.ZeroMemory(Blind);
    }
}

/// <summary>Client state between GenerateKE1 and GenerateKE3 (RFC 9807 section 6.2).</summary>
public sealed class ClientLoginState : IDisposable
{
    internal ClientLoginState(ReadOnlySpan<byte> password, byte[] blind, byte[] clientSecret, byte[] ke1)
    {
        Password = password.ToArray();
        Blind = blind;
        ClientSecret = clientSecret;
        Ke1 = ke1;
    }

    internal byte[] Password { get; }

    internal byte[] Blind { get; }

    /// <summary>The client's ephemeral 3DH private keyshare.</summary>
    internal byte[] ClientSecret { get; }

    /// <summary>KE1 as sent, part of the 3DH preamble.</summary>
    internal byte[] Ke1 { get; }

    internal bool IsDisposed { get; private set; }

    /// <summary>Wipes the password, the blind and the ephemeral secret.</summary>
    public void Dispose()
    {
        IsDisposed = true;
        CryptographicOperations.ZeroMemory(Password);
        CryptographicOperations.ZeroMemory(Blind);
        CryptographicOperations.ZeroMemory(ClientSecret);
    }
}

/// <summary>Server state between GenerateKE2 and ServerFinish (RFC 9807 section 6.4.4): expected_client_mac and session_key.</summary>
public sealed class ServerLoginState : IDisposable
{
    internal ServerLoginState(byte[] expectedClientMac, byte[] sessionKey)
    {
        ExpectedClientMac = expectedClientMac;
        SessionKey = sessionKey;
    }

    internal byte[] ExpectedClientMac { get; }

    internal byte[] SessionKey { get; }

    internal bool IsDisposed { get; private set; }

    /// <summary>Wipes the expected client MAC and the session key.</summary>
    public void Dispose()
    {
        IsDisposed = true;
        CryptographicOperations.ZeroMemory(ExpectedClientMac);
        CryptographicOperations.ZeroMemory(SessionKey);
    }
}
