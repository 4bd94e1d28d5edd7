using HsmVault.Crypto.Opaque;
using HsmVault.Hsm;

using HsmVault.Testing.Opaque;

namespace HsmVault.Vault.Tests;

/// <summary>
/// RFC 9807 appendix C, server side, with the per-user OPRF key derived by a real SoftHSM2
/// token (CKM_SHA512_HMAC over the imported oprf_seed) through <see cref="TokenOprfSeed"/>:
/// every output must match byte for byte, which proves the token computes
/// Expand(oprf_seed, credential_identifier || "OprfKey", 32) exactly as DESIGN.md says.
/// </summary>
public sealed class OpaqueVectorThroughTokenTests
{
    [Theory]
    [MemberData(nameof(OpaqueVector.RealIndices), MemberType = typeof(OpaqueVector))]
    public void RealVector_ServerWithTokenOprfSeed_ReproducesRegistrationResponseKe2AndSessionKey(int index)
    {
        var v = OpaqueVector.At(index);
        using var token = Tokens.OpenWithOprfSeed(v.Input("oprf_seed"));
        using var keyPair = ServerKeyPair.FromPrivateKey(v.Input("server_private_key"));
        Assert.Equal(Bytes.Hex(v.Input("server_public_key")), Bytes.Hex(keyPair.PublicKey.ToArray()));
        var random = new ScriptedRandom(v.Input("masking_nonce"), v.Input("server_nonce"), v.Input("server_keyshare_seed"));
        var server = new OpaqueServer(new OpaqueConfiguration(v.ContextBytes, new IdentityKsf()), new TokenOprfSeed(token), keyPair, random);
        var credentialIdentifier = v.Input("credential_identifier");

        var response = server.CreateRegistrationResponse(v.Outputs["registration_request"], credentialIdentifier);
        Assert.Equal(Bytes.Hex(v.Outputs["registration_response"]), Bytes.Hex(response));

        var login = server.GenerateKe2(
            v.Outputs["KE1"], credentialIdentifier, v.Outputs["registration_upload"], v.OptionalInput("server_identity"), v.OptionalInput("client_identity"));
        Assert.Equal(Bytes.Hex(v.Outputs["KE2"]), Bytes.Hex(login.Ke2));
        Assert.Equal(0, random.Remaining);

        var sessionKey = OpaqueServer.ServerFinish(login.State, v.Outputs["KE3"]);
        Assert.NotNull(sessionKey);
        Assert.Equal(Bytes.Hex(v.Outputs["session_key"]), Bytes.Hex(sessionKey));
        login.State.Dispose();
    }

    [Theory]
    [MemberData(nameof(OpaqueVector.RealIndices), MemberType = typeof(OpaqueVector))]
    public void RealVector_WholeProtocolWithTokenServer_ClientOutputsMatchVector(int index)
    {
        var v = OpaqueVector.At(index);
        var serverIdentity = v.OptionalInput("server_identity");
        var clientIdentity = v.OptionalInput("client_identity");
        using var token = Tokens.OpenWithOprfSeed(v.Input("oprf_seed"));
        using var keyPair = ServerKeyPair.FromPrivateKey(v.Input("server_private_key"));
        var config = new OpaqueConfiguration(v.ContextBytes, new IdentityKsf());
        var clientRandom = new ScriptedRandom(
            v.Input("blind_registration"), v.Input("envelope_nonce"), v.Input("blind_login"), v.Input("client_nonce"), v.Input("client_keyshare_seed"));
        var serverRandom = new ScriptedRandom(v.Input("masking_nonce"), v.Input("server_nonce"), v.Input("server_keyshare_seed"));
        var client = new OpaqueClient(config, clientRandom);
        var server = new OpaqueServer(config, new TokenOprfSeed(token), keyPair, serverRandom);
        var credentialIdentifier = v.Input("credential_identifier");

        var start = client.CreateRegistrationRequest(v.Input("password"));
        var finish = client.FinalizeRegistrationRequest(start.State, server.CreateRegistrationResponse(start.RegistrationRequest, credentialIdentifier), serverIdentity, clientIdentity);
        start.State.Dispose();
        Assert.Equal(Bytes.Hex(v.Outputs["registration_upload"]), Bytes.Hex(finish.RegistrationRecord));
        Assert.Equal(Bytes.Hex(v.Outputs["export_key"]), Bytes.Hex(finish.ExportKey));

        var ke1 = client.GenerateKe1(v.Input("password"));
        var ke2 = server.GenerateKe2(ke1.Ke1, credentialIdentifier, finish.RegistrationRecord, serverIdentity, clientIdentity);
        var done = client.GenerateKe3(ke1.State, ke2.Ke2, serverIdentity, clientIdentity);
        Assert.NotNull(done);
        Assert.Equal(Bytes.Hex(v.Outputs["KE3"]), Bytes.Hex(done.Ke3));
        Assert.Equal(Bytes.Hex(v.Outputs["session_key"]), Bytes.Hex(done.SessionKey));
        Assert.Equal(0, clientRandom.Remaining);
        Assert.Equal(0, serverRandom.Remaining);
        ke1.State.Dispose();
        ke2.State.Dispose();
    }

    [Theory]
    [MemberData(nameof(OpaqueVector.FakeIndices), MemberType = typeof(OpaqueVector))]
    public void FakeVector_UnknownUserKe2WithTokenOprfSeed_MatchesVector(int index)
    {
        var v = OpaqueVector.At(index);
        using var token = Tokens.OpenWithOprfSeed(v.Input("oprf_seed"));
        using var keyPair = ServerKeyPair.FromPrivateKey(v.Input("server_private_key"));
        var random = new ScriptedRandom(
            v.Input("client_private_key"), v.Input("masking_key"), v.Input("masking_nonce"), v.Input("server_nonce"), v.Input("server_keyshare_seed"));
        var server = new OpaqueServer(new OpaqueConfiguration(v.ContextBytes, new IdentityKsf()), new TokenOprfSeed(token), keyPair, random);

        var login = server.GenerateKe2(v.Input("KE1"), v.Input("credential_identifier"), null, v.OptionalInput("server_identity"), v.OptionalInput("client_identity"));

        Assert.Equal(Bytes.Hex(v.Outputs["KE2"]), Bytes.Hex(login.Ke2));
        Assert.Equal(0, random.Remaining);
        Assert.Null(OpaqueServer.ServerFinish(login.State, new byte[OpaqueSizes.Ke3]));
        login.State.Dispose();
    }

    [Fact]
    public void TokenOprfSeed_DifferentSeed_GivesDifferentRegistrationResponse()
    {
        // Guards against the vector tests passing because the token ignored its seed.
        var v = OpaqueVector.All.First(x => !x.IsFake);
        var otherSeed = (byte[])v.Input("oprf_seed").Clone();
        otherSeed[0] ^= 1;
        using var token = Tokens.OpenWithOprfSeed(otherSeed);
        using var keyPair = ServerKeyPair.FromPrivateKey(v.Input("server_private_key"));
        var server = new OpaqueServer(new OpaqueConfiguration(v.ContextBytes, new IdentityKsf()), new TokenOprfSeed(token), keyPair);

        var response = server.CreateRegistrationResponse(v.Outputs["registration_request"], v.Input("credential_identifier"));

        Assert.NotEqual(Bytes.Hex(v.Outputs["registration_response"]), Bytes.Hex(response));
    }
}
