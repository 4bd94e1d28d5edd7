using HsmVault.Crypto.Internal;
using HsmVault.Crypto.Opaque;

using HsmVault.Testing.Opaque;

namespace HsmVault.Crypto.Tests;

/// <summary>RFC 9807 appendix C: every ristretto255 vector, real and fake, byte for byte.</summary>
public sealed class OpaqueVectorTests
{
    [Fact]
    public void VectorFile_HasTwoRealAndOneFakeRistrettoVector()
    {
        Assert.Equal(2, OpaqueVector.All.Count(v => !v.IsFake));
        Assert.Single(OpaqueVector.All, v => v.IsFake);
    }

    [Theory]
    [MemberData(nameof(OpaqueVector.RealIndices), MemberType = typeof(OpaqueVector))]
    public void OprfKey_MatchesVector(int index)
    {
        var v = OpaqueVector.At(index);
        var seed = new byte[32];
        new HmacOprfSeedExpander(v.Input("oprf_seed")).ExpandOprfSeed([.. v.Input("credential_identifier"), .. "OprfKey"u8], seed);
        var privateKey = new byte[32];
        var publicKey = new byte[32];
        Oprf.DeriveKeyPair(seed, "OPAQUE-DeriveKeyPair"u8, privateKey, publicKey);
        Assert.Equal(Convert.ToHexString(v.Intermediates["oprf_key"]), Convert.ToHexString(privateKey));
    }

    [Theory]
    [MemberData(nameof(OpaqueVector.RealIndices), MemberType = typeof(OpaqueVector))]
    public void RealVector_RegistrationAndLogin_MatchEveryOutput(int index)
    {
        var v = OpaqueVector.At(index);
        var serverIdentity = v.OptionalInput("server_identity");
        var clientIdentity = v.OptionalInput("client_identity");
        var config = new OpaqueConfiguration(v.ContextBytes, new IdentityKsf());
        var clientRandom = new ScriptedRandom(
            v.Input("blind_registration"), v.Input("envelope_nonce"), v.Input("blind_login"), v.Input("client_nonce"), v.Input("client_keyshare_seed"));
        var serverRandom = new ScriptedRandom(v.Input("masking_nonce"), v.Input("server_nonce"), v.Input("server_keyshare_seed"));
        using var keyPair = ServerKeyPair.FromPrivateKey(v.Input("server_private_key"));
        AssertHex(v.Input("server_public_key"), keyPair.PublicKey.ToArray());
        var client = new OpaqueClient(config, clientRandom);
        var server = new OpaqueServer(config, new HmacOprfSeedExpander(v.Input("oprf_seed")), keyPair, serverRandom);
        var credentialIdentifier = v.Input("credential_identifier");

        var start = client.CreateRegistrationRequest(v.Input("password"));
        AssertHex(v.Outputs["registration_request"], start.RegistrationRequest);
        var response = server.CreateRegistrationResponse(start.RegistrationRequest, credentialIdentifier);
        AssertHex(v.Outputs["registration_response"], response);
        var finish = client.FinalizeRegistrationRequest(start.State, response, serverIdentity, clientIdentity);
        start.State.Dispose();
        AssertHex(v.Outputs["registration_upload"], finish.RegistrationRecord);
        AssertHex(v.Intermediates["client_public_key"], finish.RegistrationRecord[..32]);
        AssertHex(v.Intermediates["masking_key"], finish.RegistrationRecord[32..96]);
        AssertHex(v.Intermediates["envelope"], finish.RegistrationRecord[96..]);
        AssertHex(v.Outputs["export_key"], finish.ExportKey);
        OpaqueServer.ValidateRegistrationRecord(finish.RegistrationRecord);

        var login = client.GenerateKe1(v.Input("password"));
        AssertHex(v.Outputs["KE1"], login.Ke1);
        var ke2 = server.GenerateKe2(login.Ke1, credentialIdentifier, finish.RegistrationRecord, serverIdentity, clientIdentity);
        AssertHex(v.Outputs["KE2"], ke2.Ke2);
        var done = client.GenerateKe3(login.State, ke2.Ke2, serverIdentity, clientIdentity);
        Assert.NotNull(done);
        AssertHex(v.Outputs["KE3"], done.Ke3);
        AssertHex(v.Outputs["session_key"], done.SessionKey);
        AssertHex(v.Outputs["export_key"], done.ExportKey);
        var serverSessionKey = OpaqueServer.ServerFinish(ke2.State, done.Ke3);
        Assert.NotNull(serverSessionKey);
        AssertHex(v.Outputs["session_key"], serverSessionKey);

        Assert.Equal(0, clientRandom.Remaining);
        Assert.Equal(0, serverRandom.Remaining);
    }

    [Theory]
    [MemberData(nameof(OpaqueVector.FakeIndices), MemberType = typeof(OpaqueVector))]
    public void FakeVector_UnknownUserKe2_MatchesVector(int index)
    {
        var v = OpaqueVector.At(index);
        var config = new OpaqueConfiguration(v.ContextBytes, new IdentityKsf());

        // The fake record's client key pair comes from a random scalar; the vector fixes it.
        var serverRandom = new ScriptedRandom(
            v.Input("client_private_key"), v.Input("masking_key"), v.Input("masking_nonce"), v.Input("server_nonce"), v.Input("server_keyshare_seed"));
        using var keyPair = ServerKeyPair.FromPrivateKey(v.Input("server_private_key"));
        AssertHex(v.Input("server_public_key"), keyPair.PublicKey.ToArray());
        var server = new OpaqueServer(config, new HmacOprfSeedExpander(v.Input("oprf_seed")), keyPair, serverRandom);

        var ke2 = server.GenerateKe2(v.Input("KE1"), v.Input("credential_identifier"), null, v.OptionalInput("server_identity"), v.OptionalInput("client_identity"));

        AssertHex(v.Outputs["KE2"], ke2.Ke2);
        Assert.Equal(0, serverRandom.Remaining);
        Assert.Null(OpaqueServer.ServerFinish(ke2.State, new byte[OpaqueSizes.Ke3]));
    }

    [Theory]
    [MemberData(nameof(OpaqueVector.FakeIndices), MemberType = typeof(OpaqueVector))]
    public void FakeVector_ClientPrivateKey_DerivesClientPublicKey(int index)
    {
        var v = OpaqueVector.At(index);
        using var pair = ServerKeyPair.FromPrivateKey(v.Input("client_private_key"));
        AssertHex(v.Input("client_public_key"), pair.PublicKey.ToArray());
    }


    private static void AssertHex(byte[] expected, byte[] actual) => Assert.Equal(Convert.ToHexString(expected), Convert.ToHexString(actual));
}
