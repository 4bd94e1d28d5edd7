using System.Security.Cryptography;
using System.Text.Json;
using System.Text.Json.Nodes;
using HsmVault.Crypto.Opaque;

using HsmVault.Testing.Opaque;

namespace HsmVault.Interop.Tests;

/// <summary>Our OPAQUE server with a random 64-byte OPRF seed (Nh, as opaque-ke uses) and a fresh key pair.</summary>
internal sealed class CSharpServer : IDisposable
{
    public CSharpServer(OpaqueConfiguration configuration)
    {
        OprfSeed = RandomNumberGenerator.GetBytes(64);
        KeyPair = ServerKeyPair.Generate();
        Server = new OpaqueServer(configuration, new HmacOprfSeedExpander(OprfSeed), KeyPair);
    }

    public byte[] OprfSeed { get; }

    public ServerKeyPair KeyPair { get; }

    public OpaqueServer Server { get; }

    public byte[] PrivateKey()
    {
        var privateKey = new byte[OpaqueSizes.PrivateKey];
        KeyPair.CopyPrivateKey(privateKey);
        return privateKey;
    }

    public void Dispose() => KeyPair.Dispose();
}

internal sealed record JsClientRegistration(byte[] RegistrationRecord, byte[] ExportKey, byte[] ServerStaticPublicKey);

internal sealed record JsClientLogin(byte[] Ke3, byte[] SessionKey, byte[] ExportKey, byte[] ServerStaticPublicKey);

internal sealed record JsServerSetup(string Setup, byte[] PublicKey);

/// <summary>Typed calls into @serenity-kit/opaque (opaque-ke 4.0.1 in WASM) through js/interop.mjs.</summary>
/// <param name="node">The node process.</param>
/// <param name="keyStretching">
/// The library's keyStretching option, or null for its default ("memory-constrained": Argon2id m = 2^16 KiB, t = 3, p = 4).
/// </param>
internal sealed class SerenityJs(NodeInterop node, JsonNode? keyStretching = null)
{
    /// <summary>The library's "argon2id-custom" key stretching option.</summary>
    public static JsonNode CustomArgon2id(Argon2idParameters p) => new JsonObject
    {
        ["argon2id-custom"] = new JsonObject { ["memory"] = p.MemoryKib, ["iterations"] = p.Iterations, ["parallelism"] = p.Parallelism },
    };

    public (string State, byte[] RegistrationRequest) ClientStartRegistration(string password)
    {
        var r = node.Call("serenity.client.startRegistration", ("password", password));
        return (r.Text("state"), r.Bytes("registrationRequest"));
    }

    public JsClientRegistration ClientFinishRegistration(string state, string password, byte[] registrationResponse)
    {
        var r = node.Call(
            "serenity.client.finishRegistration",
            ("state", state),
            ("password", password),
            ("registrationResponse", registrationResponse),
            ("keyStretching", keyStretching));
        return new JsClientRegistration(r.Bytes("registrationRecord"), r.Bytes("exportKey"), r.Bytes("serverStaticPublicKey"));
    }

    public (string State, byte[] Ke1) ClientStartLogin(string password)
    {
        var r = node.Call("serenity.client.startLogin", ("password", password));
        return (r.Text("state"), r.Bytes("ke1"));
    }

    /// <summary>Null when the client rejects KE2 (wrong password or a server without the registered key).</summary>
    public JsClientLogin? ClientFinishLogin(string state, string password, byte[] ke2)
    {
        var r = node.Call(
            "serenity.client.finishLogin", ("state", state), ("password", password), ("ke2", ke2), ("keyStretching", keyStretching));
        return r.GetProperty("authenticated").GetBoolean()
            ? new JsClientLogin(r.Bytes("ke3"), r.Bytes("sessionKey"), r.Bytes("exportKey"), r.Bytes("serverStaticPublicKey"))
            : null;
    }

    public JsServerSetup ServerCreateSetup()
    {
        var r = node.Call("serenity.server.createSetup");
        return new JsServerSetup(r.Text("setup"), r.Bytes("publicKey"));
    }

    /// <summary>An opaque-ke ServerSetup holding the given OPRF seed and AKE private key.</summary>
    public JsServerSetup ServerSetupFrom(byte[] oprfSeed, byte[] privateKey)
    {
        var r = node.Call("serenity.server.setupFrom", ("oprfSeed", oprfSeed), ("privateKey", privateKey));
        return new JsServerSetup(r.Text("setup"), r.Bytes("publicKey"));
    }

    public byte[] ServerCreateRegistrationResponse(JsServerSetup setup, string userIdentifier, byte[] registrationRequest) =>
        node.Call(
            "serenity.server.createRegistrationResponse",
            ("setup", setup.Setup),
            ("userIdentifier", userIdentifier),
            ("registrationRequest", registrationRequest)).Bytes("registrationResponse");

    public (string State, byte[] Ke2) ServerStartLogin(JsServerSetup setup, string userIdentifier, byte[]? registrationRecord, byte[] ke1)
    {
        var r = node.Call(
            "serenity.server.startLogin",
            ("setup", setup.Setup),
            ("userIdentifier", userIdentifier),
            ("registrationRecord", registrationRecord),
            ("ke1", ke1));
        return (r.Text("state"), r.Bytes("ke2"));
    }

    /// <summary>The session key, or null when the server rejects KE3.</summary>
    public byte[]? ServerFinishLogin(string state, byte[] ke3)
    {
        var r = node.Call("serenity.server.finishLogin", ("state", state), ("ke3", ke3));
        return r.GetProperty("authenticated").GetBoolean() ? r.Bytes("sessionKey") : null;
    }
}

internal static class JsonElementExtensions
{
    public static byte[] Bytes(this JsonElement element, string name) => Convert.FromBase64String(element.Text(name));

    public static string Text(this JsonElement element, string name) =>
        element.GetProperty(name).GetString() ?? throw new InvalidOperationException($"{name} is null.");
}
