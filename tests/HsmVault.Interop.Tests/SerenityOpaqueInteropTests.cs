using System.Text;
using HsmVault.Crypto.Opaque;

namespace HsmVault.Interop.Tests;

/// <summary>
/// Interop with opaque-ke 4.0.1 (RFC 9807), through @serenity-kit/opaque 1.1.0, its WASM build.
/// That wrapper fixes the suite to ristretto255-SHA512 with 3DH and Argon2id as the KSF (zero 16-byte salt,
/// 64-byte output, like <see cref="Argon2idKsf"/>), passes no context (empty) and no identities (so both
/// default to the public keys). Its default Argon2id cost is m = 2^16 KiB, t = 3, p = 4, which is
/// <see cref="Argon2idParameters.Rfc9106MemoryConstrained"/>, the fleet default.
/// </summary>
[Collection(NodeInteropFixtureGroup.Name)]
public sealed class SerenityOpaqueInteropTests(NodeInterop node)
{
    private const string Password = "correct horse battery staple";
    private const string WrongPassword = "correct horse battery stapler";
    private const string UserIdentifier = "alice@example.org";

    private static readonly OpaqueConfiguration Configuration =
        new([], new Argon2idKsf(Argon2idParameters.Rfc9106MemoryConstrained));

    private readonly SerenityJs _js = new(node);

    [Fact]
    public void JsClient_RegistersAndLogsIn_AtCSharpServer()
    {
        using var ours = new CSharpServer(Configuration);
        var credentialIdentifier = Encoding.UTF8.GetBytes(UserIdentifier);

        // Registration: their client, our server.
        var (registrationState, registrationRequest) = _js.ClientStartRegistration(Password);
        Assert.Equal(OpaqueSizes.RegistrationRequest, registrationRequest.Length);
        var registrationResponse = ours.Server.CreateRegistrationResponse(registrationRequest, credentialIdentifier);
        Assert.Equal(OpaqueSizes.RegistrationResponse, registrationResponse.Length);
        var registration = _js.ClientFinishRegistration(registrationState, Password, registrationResponse);
        Assert.Equal(OpaqueSizes.RegistrationRecord, registration.RegistrationRecord.Length);
        Assert.Equal(OpaqueSizes.ExportKey, registration.ExportKey.Length);
        Assert.Equal(ours.KeyPair.PublicKey.ToArray(), registration.ServerStaticPublicKey);
        OpaqueServer.ValidateRegistrationRecord(registration.RegistrationRecord);

        // Login: KE1 -> KE2 -> KE3, same session key on both sides, same export key as at registration.
        var (loginState, ke1) = _js.ClientStartLogin(Password);
        Assert.Equal(OpaqueSizes.Ke1, ke1.Length);
        var serverStart = ours.Server.GenerateKe2(ke1, credentialIdentifier, registration.RegistrationRecord);
        using var serverState = serverStart.State;
        Assert.Equal(OpaqueSizes.Ke2, serverStart.Ke2.Length);
        var login = _js.ClientFinishLogin(loginState, Password, serverStart.Ke2);
        Assert.NotNull(login);
        Assert.Equal(OpaqueSizes.Ke3, login.Ke3.Length);
        Assert.Equal(OpaqueSizes.SessionKey, login.SessionKey.Length);
        var serverSessionKey = OpaqueServer.ServerFinish(serverState, login.Ke3);
        Assert.NotNull(serverSessionKey);
        Assert.Equal(login.SessionKey, serverSessionKey);
        Assert.Equal(registration.ExportKey, login.ExportKey);
        Assert.Equal(ours.KeyPair.PublicKey.ToArray(), login.ServerStaticPublicKey);

        // Wrong password: their client cannot open the envelope and gives up.
        var (wrongState, wrongKe1) = _js.ClientStartLogin(WrongPassword);
        var wrongStart = ours.Server.GenerateKe2(wrongKe1, credentialIdentifier, registration.RegistrationRecord);
        using var wrongServerState = wrongStart.State;
        Assert.Null(_js.ClientFinishLogin(wrongState, WrongPassword, wrongStart.Ke2));

        // ... and our server does not accept a KE3 that was not computed for its KE2 (here: the earlier session's).
        Assert.Null(OpaqueServer.ServerFinish(wrongServerState, login.Ke3));
    }

    [Fact]
    public void CSharpClient_RegistersAndLogsIn_AtJsServer()
    {
        var client = new OpaqueClient(Configuration);
        var password = Encoding.UTF8.GetBytes(Password);
        var setup = _js.ServerCreateSetup();

        // Registration: our client, their server.
        var registrationStart = client.CreateRegistrationRequest(password);
        using var registrationState = registrationStart.State;
        Assert.Equal(OpaqueSizes.RegistrationRequest, registrationStart.RegistrationRequest.Length);
        var registrationResponse = _js.ServerCreateRegistrationResponse(setup, UserIdentifier, registrationStart.RegistrationRequest);
        Assert.Equal(OpaqueSizes.RegistrationResponse, registrationResponse.Length);
        Assert.Equal(setup.PublicKey, registrationResponse[32..]);
        var registration = client.FinalizeRegistrationRequest(registrationState, registrationResponse);
        Assert.Equal(OpaqueSizes.RegistrationRecord, registration.RegistrationRecord.Length);

        // Login.
        var loginStart = client.GenerateKe1(password);
        using var loginState = loginStart.State;
        Assert.Equal(OpaqueSizes.Ke1, loginStart.Ke1.Length);
        var (serverState, ke2) = _js.ServerStartLogin(setup, UserIdentifier, registration.RegistrationRecord, loginStart.Ke1);
        Assert.Equal(OpaqueSizes.Ke2, ke2.Length);
        var login = client.GenerateKe3(loginState, ke2);
        Assert.NotNull(login);
        Assert.Equal(OpaqueSizes.Ke3, login.Ke3.Length);
        var serverSessionKey = _js.ServerFinishLogin(serverState, login.Ke3);
        Assert.NotNull(serverSessionKey);
        Assert.Equal(login.SessionKey, serverSessionKey);
        Assert.Equal(registration.ExportKey, login.ExportKey);

        // Wrong password: our client rejects KE2 ...
        var wrongStart = client.GenerateKe1(Encoding.UTF8.GetBytes(WrongPassword));
        using var wrongState = wrongStart.State;
        var (wrongServerState, wrongKe2) = _js.ServerStartLogin(setup, UserIdentifier, registration.RegistrationRecord, wrongStart.Ke1);
        Assert.Null(client.GenerateKe3(wrongState, wrongKe2));

        // ... and their server does not accept a KE3 that was not computed for its KE2.
        Assert.Null(_js.ServerFinishLogin(wrongServerState, login.Ke3));
    }

    [Fact]
    public void RecordsAndExportKeys_CarryOverBetweenClients()
    {
        // An envelope sealed by one implementation's client is opened by the other's, with the same export key.
        using var ours = new CSharpServer(Configuration);
        var client = new OpaqueClient(Configuration);
        const string password = "pässwörd 🔑 with non-ASCII"; // both sides hash the UTF-8 bytes
        var credentialIdentifier = Encoding.UTF8.GetBytes(UserIdentifier);

        // Their client registers at our server; our client logs in.
        var (registrationState, registrationRequest) = _js.ClientStartRegistration(password);
        var jsRegistration = _js.ClientFinishRegistration(
            registrationState, password, ours.Server.CreateRegistrationResponse(registrationRequest, credentialIdentifier));
        var loginStart = client.GenerateKe1(Encoding.UTF8.GetBytes(password));
        using var loginState = loginStart.State;
        var serverStart = ours.Server.GenerateKe2(loginStart.Ke1, credentialIdentifier, jsRegistration.RegistrationRecord);
        using var serverState = serverStart.State;
        var ourLogin = client.GenerateKe3(loginState, serverStart.Ke2);
        Assert.NotNull(ourLogin);
        Assert.Equal(jsRegistration.ExportKey, ourLogin.ExportKey);
        Assert.Equal(ourLogin.SessionKey, OpaqueServer.ServerFinish(serverState, ourLogin.Ke3));

        // Our client registers at their server; their client logs in.
        var setup = _js.ServerCreateSetup();
        var ourRegistrationStart = client.CreateRegistrationRequest(Encoding.UTF8.GetBytes(password));
        using var ourRegistrationState = ourRegistrationStart.State;
        var ourRegistration = client.FinalizeRegistrationRequest(
            ourRegistrationState, _js.ServerCreateRegistrationResponse(setup, UserIdentifier, ourRegistrationStart.RegistrationRequest));
        var (jsLoginState, ke1) = _js.ClientStartLogin(password);
        var (jsServerState, ke2) = _js.ServerStartLogin(setup, UserIdentifier, ourRegistration.RegistrationRecord, ke1);
        var jsLogin = _js.ClientFinishLogin(jsLoginState, password, ke2);
        Assert.NotNull(jsLogin);
        Assert.Equal(ourRegistration.ExportKey, jsLogin.ExportKey);
        Assert.Equal(jsLogin.SessionKey, _js.ServerFinishLogin(jsServerState, jsLogin.Ke3));
    }

    [Fact]
    public void SameSeedAndKey_GiveTheSameServer()
    {
        // With our OPRF seed and private key loaded into an opaque-ke ServerSetup, both servers derive the same
        // per-user OPRF key (RFC 9807 section 5.2.2: Expand(oprf_seed, credential_identifier || "OprfKey") and
        // DeriveKeyPair), so their RegistrationResponses are byte-identical and a record works at either.
        using var ours = new CSharpServer(Configuration);
        var setup = _js.ServerSetupFrom(ours.OprfSeed, ours.PrivateKey());
        Assert.Equal(ours.KeyPair.PublicKey.ToArray(), setup.PublicKey);
        var credentialIdentifier = Encoding.UTF8.GetBytes(UserIdentifier);

        var (registrationState, registrationRequest) = _js.ClientStartRegistration(Password);
        var ourResponse = ours.Server.CreateRegistrationResponse(registrationRequest, credentialIdentifier);
        var theirResponse = _js.ServerCreateRegistrationResponse(setup, UserIdentifier, registrationRequest);
        Assert.Equal(ourResponse, theirResponse);

        // Registered through our server; log in at theirs.
        var registration = _js.ClientFinishRegistration(registrationState, Password, ourResponse);
        var (loginState, ke1) = _js.ClientStartLogin(Password);
        var (serverState, ke2) = _js.ServerStartLogin(setup, UserIdentifier, registration.RegistrationRecord, ke1);
        var login = _js.ClientFinishLogin(loginState, Password, ke2);
        Assert.NotNull(login);
        Assert.Equal(registration.ExportKey, login.ExportKey);
        Assert.Equal(login.SessionKey, _js.ServerFinishLogin(serverState, login.Ke3));
    }

    [Fact]
    public void UnknownUser_FakeKe2_IsRejectedByEitherClient()
    {
        // RFC 9807 section 10.9: a server answers KE1 for an unknown user with a KE2 built from a fake record.
        using var ours = new CSharpServer(Configuration);
        var (jsLoginState, ke1) = _js.ClientStartLogin(Password);
        var ourFake = ours.Server.GenerateKe2(ke1, Encoding.UTF8.GetBytes(UserIdentifier), registrationRecord: null);
        using var ourFakeState = ourFake.State;
        Assert.Equal(OpaqueSizes.Ke2, ourFake.Ke2.Length);
        Assert.Null(_js.ClientFinishLogin(jsLoginState, Password, ourFake.Ke2));

        var client = new OpaqueClient(Configuration);
        var loginStart = client.GenerateKe1(Encoding.UTF8.GetBytes(Password));
        using var loginState = loginStart.State;
        var (_, theirFake) = _js.ServerStartLogin(_js.ServerCreateSetup(), UserIdentifier, registrationRecord: null, loginStart.Ke1);
        Assert.Equal(OpaqueSizes.Ke2, theirFake.Length);
        Assert.Null(client.GenerateKe3(loginState, theirFake));
    }

    [Fact]
    public void CustomArgon2idParameters_Interoperate_AndMustMatch()
    {
        // The wrapper's "argon2id-custom" option maps to Argon2id (v0x13) with the given m, t, p.
        var parameters = new Argon2idParameters(MemoryKib: 1024, Iterations: 2, Parallelism: 2);
        var configuration = new OpaqueConfiguration([], new Argon2idKsf(parameters));
        var js = new SerenityJs(node, SerenityJs.CustomArgon2id(parameters));
        using var ours = new CSharpServer(configuration);
        var credentialIdentifier = Encoding.UTF8.GetBytes(UserIdentifier);

        var (registrationState, registrationRequest) = js.ClientStartRegistration(Password);
        var registration = js.ClientFinishRegistration(
            registrationState, Password, ours.Server.CreateRegistrationResponse(registrationRequest, credentialIdentifier));

        // Our client with the same parameters opens their envelope.
        var client = new OpaqueClient(configuration);
        var loginStart = client.GenerateKe1(Encoding.UTF8.GetBytes(Password));
        using var loginState = loginStart.State;
        var serverStart = ours.Server.GenerateKe2(loginStart.Ke1, credentialIdentifier, registration.RegistrationRecord);
        using var serverState = serverStart.State;
        var login = client.GenerateKe3(loginState, serverStart.Ke2);
        Assert.NotNull(login);
        Assert.Equal(registration.ExportKey, login.ExportKey);
        Assert.Equal(login.SessionKey, OpaqueServer.ServerFinish(serverState, login.Ke3));

        // With different parameters (here: their default) the KSF output differs, so the envelope does not open.
        var defaultClient = new OpaqueClient(Configuration);
        var mismatchStart = defaultClient.GenerateKe1(Encoding.UTF8.GetBytes(Password));
        using var mismatchState = mismatchStart.State;
        var mismatchServerStart = ours.Server.GenerateKe2(mismatchStart.Ke1, credentialIdentifier, registration.RegistrationRecord);
        using var mismatchServerState = mismatchServerStart.State;
        Assert.Null(defaultClient.GenerateKe3(mismatchState, mismatchServerStart.Ke2));
    }

    [Fact]
    public void NonEmptyContext_DoesNotMatch_TheWrapperAlwaysUsesAnEmptyOne()
    {
        // @serenity-kit/opaque passes context None to opaque-ke, i.e. an empty context in the preamble
        // (RFC 9807 section 6.4.2). A server with any other context computes a different server MAC.
        var parameters = new Argon2idParameters(MemoryKib: 64, Iterations: 1, Parallelism: 1);
        var js = new SerenityJs(node, SerenityJs.CustomArgon2id(parameters));
        using var ours = new CSharpServer(new OpaqueConfiguration("HsmVault"u8, new Argon2idKsf(parameters)));
        var credentialIdentifier = Encoding.UTF8.GetBytes(UserIdentifier);

        var (registrationState, registrationRequest) = js.ClientStartRegistration(Password);
        var registration = js.ClientFinishRegistration(
            registrationState, Password, ours.Server.CreateRegistrationResponse(registrationRequest, credentialIdentifier));
        var (loginState, ke1) = js.ClientStartLogin(Password);
        var serverStart = ours.Server.GenerateKe2(ke1, credentialIdentifier, registration.RegistrationRecord);
        using var serverState = serverStart.State;
        Assert.Null(js.ClientFinishLogin(loginState, Password, serverStart.Ke2));
    }
}
