using System.Security.Cryptography;
using HsmVault.Crypto.Opaque;

using HsmVault.Testing.Opaque;

namespace HsmVault.Crypto.Tests;

/// <summary>Behaviour of the public API with real randomness and a real (cheap) Argon2id KSF.</summary>
public sealed class OpaqueProtocolTests : IDisposable
{
    private static readonly byte[] CredentialIdentifier = "tenant/alice"u8.ToArray();
    private static readonly byte[] Password = "correct horse battery staple"u8.ToArray();

    private readonly OpaqueConfiguration _configuration = new("HsmVault-test"u8, new Argon2idKsf(new Argon2idParameters(1024, 1, 2)));
    private readonly ServerKeyPair _keyPair = ServerKeyPair.Generate();
    private readonly OpaqueServer _server;
    private readonly OpaqueClient _client;

    public OpaqueProtocolTests()
    {
        _server = new OpaqueServer(_configuration, new HmacOprfSeedExpander(RandomNumberGenerator.GetBytes(64)), _keyPair);
        _client = new OpaqueClient(_configuration);
    }

    public static TheoryData<string> InvalidElements => new()
    {
        // All 0xFF: s >= p, not canonical.
        new string('F', 64),
        // s = p = 2^255 - 19: the non-canonical encoding of zero.
        "EDFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF7F",
        // s = 1 is "negative" (odd): RFC 9496 section 4.3.1 rejects it.
        "0100000000000000000000000000000000000000000000000000000000000000",
        // The identity element.
        new string('0', 64),
    };

    public void Dispose() => _keyPair.Dispose();

    [Fact]
    public void RegisterThenLogin_WithArgon2id_AgreesOnSessionAndExportKeys()
    {
        var record = Register(Password, out var registrationExportKey);

        var login = _client.GenerateKe1(Password);
        var ke2 = _server.GenerateKe2(login.Ke1, CredentialIdentifier, record);
        var finish = _client.GenerateKe3(login.State, ke2.Ke2);
        Assert.NotNull(finish);
        var serverSessionKey = OpaqueServer.ServerFinish(ke2.State, finish.Ke3);

        Assert.Equal(OpaqueSizes.Ke1, login.Ke1.Length);
        Assert.Equal(OpaqueSizes.Ke2, ke2.Ke2.Length);
        Assert.Equal(OpaqueSizes.Ke3, finish.Ke3.Length);
        Assert.Equal(OpaqueSizes.SessionKey, finish.SessionKey.Length);
        Assert.NotNull(serverSessionKey);
        Assert.Equal(finish.SessionKey, serverSessionKey);
        Assert.Equal(registrationExportKey, finish.ExportKey);
    }

    [Fact]
    public void Login_WithWrongPassword_GenerateKe3ReturnsNullAndServerRejectsAnyKe3()
    {
        var record = Register(Password, out _);

        var login = _client.GenerateKe1("correct horse battery stapler"u8);
        var ke2 = _server.GenerateKe2(login.Ke1, CredentialIdentifier, record);

        Assert.Null(_client.GenerateKe3(login.State, ke2.Ke2));
        Assert.Null(OpaqueServer.ServerFinish(ke2.State, RandomNumberGenerator.GetBytes(OpaqueSizes.Ke3)));
    }

    [Fact]
    public void ServerFinish_WithTamperedKe3_ReturnsNull()
    {
        var record = Register(Password, out _);
        var login = _client.GenerateKe1(Password);
        var ke2 = _server.GenerateKe2(login.Ke1, CredentialIdentifier, record);
        var finish = _client.GenerateKe3(login.State, ke2.Ke2);
        Assert.NotNull(finish);

        var tampered = (byte[])finish.Ke3.Clone();
        tampered[17] ^= 0x01;

        Assert.Null(OpaqueServer.ServerFinish(ke2.State, tampered));
        Assert.NotNull(OpaqueServer.ServerFinish(ke2.State, finish.Ke3));
    }

    [Fact]
    public void GenerateKe3_WithTamperedServerMac_ReturnsNull()
    {
        var record = Register(Password, out _);
        var login = _client.GenerateKe1(Password);
        var ke2 = _server.GenerateKe2(login.Ke1, CredentialIdentifier, record).Ke2;

        ke2[^1] ^= 0x80;

        Assert.Null(_client.GenerateKe3(login.State, ke2));
    }

    [Fact]
    public void GenerateKe3_AgainstServerWithAnotherAkeKey_ReturnsNull()
    {
        // The impostor shares the OPRF seed and holds the stored record, but not the registered AKE key:
        // the envelope authenticates the server public key, so the client must refuse.
        var expander = new HmacOprfSeedExpander(RandomNumberGenerator.GetBytes(64));
        using var otherKeyPair = ServerKeyPair.Generate();
        var honest = new OpaqueServer(_configuration, expander, _keyPair);
        var impostor = new OpaqueServer(_configuration, expander, otherKeyPair);
        var registration = _client.CreateRegistrationRequest(Password);
        var record = _client.FinalizeRegistrationRequest(
            registration.State, honest.CreateRegistrationResponse(registration.RegistrationRequest, CredentialIdentifier)).RegistrationRecord;

        var login = _client.GenerateKe1(Password);
        var ke2 = impostor.GenerateKe2(login.Ke1, CredentialIdentifier, record);

        Assert.Null(_client.GenerateKe3(login.State, ke2.Ke2));
    }

    [Fact]
    public void Login_WithDifferentContext_Fails()
    {
        var record = Register(Password, out _);
        var otherClient = new OpaqueClient(new OpaqueConfiguration("another-fleet"u8, _configuration.Ksf));

        var login = otherClient.GenerateKe1(Password);
        var ke2 = _server.GenerateKe2(login.Ke1, CredentialIdentifier, record);

        Assert.Null(otherClient.GenerateKe3(login.State, ke2.Ke2));
    }

    [Fact]
    public void UnknownUser_FakeKe2_HasRealShapeAndSameOprfEvaluation()
    {
        var record = Register(Password, out _);
        var login = _client.GenerateKe1(Password);

        var real = _server.GenerateKe2(login.Ke1, CredentialIdentifier, record);
        var fake = _server.GenerateKe2(login.Ke1, CredentialIdentifier, null);
        var fakeAgain = _server.GenerateKe2(login.Ke1, CredentialIdentifier, null);

        Assert.Equal(OpaqueSizes.Ke2, fake.Ke2.Length);

        // The OPRF evaluation depends only on the credential identifier and KE1, as for a real user.
        Assert.Equal(real.Ke2[..32], fake.Ke2[..32]);

        // Everything after it is fresh randomness or depends on it.
        Assert.NotEqual(fake.Ke2[32..], fakeAgain.Ke2[32..]);

        // A client sees an ordinary authentication failure, not a malformed message.
        Assert.Null(_client.GenerateKe3(login.State, fake.Ke2));
        Assert.Null(OpaqueServer.ServerFinish(fake.State, new byte[OpaqueSizes.Ke3]));
    }

    [Theory]
    [MemberData(nameof(InvalidElements))]
    public void CreateRegistrationResponse_WithInvalidElement_Throws(string elementHex)
    {
        Assert.Throws<OpaqueProtocolException>(() => _server.CreateRegistrationResponse(Convert.FromHexString(elementHex), CredentialIdentifier));
    }

    [Theory]
    [MemberData(nameof(InvalidElements))]
    public void GenerateKe2_WithInvalidBlindedElementInKe1_Throws(string elementHex)
    {
        var record = Register(Password, out _);
        var ke1 = _client.GenerateKe1(Password).Ke1;
        Convert.FromHexString(elementHex).CopyTo(ke1, 0);

        Assert.Throws<OpaqueProtocolException>(() => _server.GenerateKe2(ke1, CredentialIdentifier, record));
        Assert.Throws<OpaqueProtocolException>(() => _server.GenerateKe2(ke1, CredentialIdentifier, null));
    }

    [Theory]
    [MemberData(nameof(InvalidElements))]
    public void GenerateKe2_WithInvalidClientKeyshareInKe1_Throws(string elementHex)
    {
        var record = Register(Password, out _);
        var ke1 = _client.GenerateKe1(Password).Ke1;
        Convert.FromHexString(elementHex).CopyTo(ke1, 64);

        Assert.Throws<OpaqueProtocolException>(() => _server.GenerateKe2(ke1, CredentialIdentifier, record));
    }

    [Theory]
    [MemberData(nameof(InvalidElements))]
    public void Record_WithInvalidClientPublicKey_IsRejected(string elementHex)
    {
        var record = Register(Password, out _);
        Convert.FromHexString(elementHex).CopyTo(record, 0);
        var ke1 = _client.GenerateKe1(Password).Ke1;

        Assert.Throws<OpaqueProtocolException>(() => OpaqueServer.ValidateRegistrationRecord(record));
        Assert.Throws<OpaqueProtocolException>(() => _server.GenerateKe2(ke1, CredentialIdentifier, record));
    }

    [Theory]
    [MemberData(nameof(InvalidElements))]
    public void FinalizeRegistrationRequest_WithInvalidElements_Throws(string elementHex)
    {
        var start = _client.CreateRegistrationRequest(Password);
        var response = _server.CreateRegistrationResponse(start.RegistrationRequest, CredentialIdentifier);
        var badEvaluated = (byte[])response.Clone();
        Convert.FromHexString(elementHex).CopyTo(badEvaluated, 0);
        var badServerKey = (byte[])response.Clone();
        Convert.FromHexString(elementHex).CopyTo(badServerKey, 32);

        Assert.Throws<OpaqueProtocolException>(() => _client.FinalizeRegistrationRequest(start.State, badEvaluated));
        Assert.Throws<OpaqueProtocolException>(() => _client.FinalizeRegistrationRequest(start.State, badServerKey));
    }

    [Theory]
    [MemberData(nameof(InvalidElements))]
    public void GenerateKe3_WithInvalidElementsInKe2_Throws(string elementHex)
    {
        var record = Register(Password, out _);
        var login = _client.GenerateKe1(Password);
        var ke2 = _server.GenerateKe2(login.Ke1, CredentialIdentifier, record).Ke2;
        var badEvaluated = (byte[])ke2.Clone();
        Convert.FromHexString(elementHex).CopyTo(badEvaluated, 0);
        var badKeyshare = (byte[])ke2.Clone();
        Convert.FromHexString(elementHex).CopyTo(badKeyshare, 224);

        Assert.Throws<OpaqueProtocolException>(() => _client.GenerateKe3(login.State, badEvaluated));
        Assert.Throws<OpaqueProtocolException>(() => _client.GenerateKe3(login.State, badKeyshare));
    }

    [Theory]
    [InlineData(0)]
    [InlineData(1)]
    [InlineData(-1)]
    public void EveryMessage_WithWrongLength_Throws(int delta)
    {
        var record = Register(Password, out _);
        var start = _client.CreateRegistrationRequest(Password);
        var response = _server.CreateRegistrationResponse(start.RegistrationRequest, CredentialIdentifier);
        var login = _client.GenerateKe1(Password);
        var ke2 = _server.GenerateKe2(login.Ke1, CredentialIdentifier, record);

        static byte[] Resize(byte[] message, int delta) =>
            delta == 0 ? [] : delta > 0 ? [.. message, 0] : message[..^1];

        Assert.Throws<OpaqueProtocolException>(() => _server.CreateRegistrationResponse(Resize(start.RegistrationRequest, delta), CredentialIdentifier));
        Assert.Throws<OpaqueProtocolException>(() => _client.FinalizeRegistrationRequest(start.State, Resize(response, delta)));
        Assert.Throws<OpaqueProtocolException>(() => OpaqueServer.ValidateRegistrationRecord(Resize(record, delta)));
        Assert.Throws<OpaqueProtocolException>(() => _server.GenerateKe2(Resize(login.Ke1, delta), CredentialIdentifier, record));
        Assert.Throws<OpaqueProtocolException>(() => _server.GenerateKe2(login.Ke1, CredentialIdentifier, Resize(record, delta)));
        Assert.Throws<OpaqueProtocolException>(() => _client.GenerateKe3(login.State, Resize(ke2.Ke2, delta)));
        Assert.Throws<OpaqueProtocolException>(() => OpaqueServer.ServerFinish(ke2.State, Resize(new byte[OpaqueSizes.Ke3], delta)));
    }

    [Fact]
    public void Registration_MessagesHaveTheDocumentedSizes()
    {
        var start = _client.CreateRegistrationRequest(Password);
        var response = _server.CreateRegistrationResponse(start.RegistrationRequest, CredentialIdentifier);
        var finish = _client.FinalizeRegistrationRequest(start.State, response);

        Assert.Equal(OpaqueSizes.RegistrationRequest, start.RegistrationRequest.Length);
        Assert.Equal(OpaqueSizes.RegistrationResponse, response.Length);
        Assert.Equal(OpaqueSizes.RegistrationRecord, finish.RegistrationRecord.Length);
        Assert.Equal(OpaqueSizes.ExportKey, finish.ExportKey.Length);
        Assert.Equal(_keyPair.PublicKey.ToArray(), response[32..]);
    }

    [Fact]
    public void DisposedStates_CannotBeUsed()
    {
        var record = Register(Password, out _);
        var start = _client.CreateRegistrationRequest(Password);
        var response = _server.CreateRegistrationResponse(start.RegistrationRequest, CredentialIdentifier);
        var login = _client.GenerateKe1(Password);
        var ke2 = _server.GenerateKe2(login.Ke1, CredentialIdentifier, record);

        start.State.Dispose();
        login.State.Dispose();
        ke2.State.Dispose();

        Assert.Throws<ObjectDisposedException>(() => _client.FinalizeRegistrationRequest(start.State, response));
        Assert.Throws<ObjectDisposedException>(() => _client.GenerateKe3(login.State, ke2.Ke2));
        Assert.Throws<ObjectDisposedException>(() => OpaqueServer.ServerFinish(ke2.State, new byte[OpaqueSizes.Ke3]));
    }

    [Fact]
    public void Dispose_WipesStateSecrets()
    {
        var record = Register(Password, out _);
        var registration = _client.CreateRegistrationRequest(Password);
        var login = _client.GenerateKe1(Password);
        var ke2 = _server.GenerateKe2(login.Ke1, CredentialIdentifier, record);
        Assert.Contains(login.State.ClientSecret, b => b != 0);

        registration.State.Dispose();
        login.State.Dispose();
        ke2.State.Dispose();

        Assert.All(new[]
        {
            registration.State.Password, registration.State.Blind,
            login.State.Password, login.State.Blind, login.State.ClientSecret,
            ke2.State.ExpectedClientMac, ke2.State.SessionKey,
        }, secret => Assert.All(secret, b => Assert.Equal(0, b)));
    }

    private byte[] Register(byte[] password, out byte[] exportKey)
    {
        var start = _client.CreateRegistrationRequest(password);
        using var state = start.State;
        var response = _server.CreateRegistrationResponse(start.RegistrationRequest, CredentialIdentifier);
        var finish = _client.FinalizeRegistrationRequest(state, response);
        OpaqueServer.ValidateRegistrationRecord(finish.RegistrationRecord);
        exportKey = finish.ExportKey;
        return finish.RegistrationRecord;
    }
}
