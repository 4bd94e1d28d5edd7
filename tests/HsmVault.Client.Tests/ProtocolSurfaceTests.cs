using System.Reflection;
using Google.Protobuf.Reflection;
using Grpc.Core;
using HsmVault.Server;
using HsmVault.Witness;
using ProtoVault = HsmVault.Protocol.V1.Vault;
using ProtoWitness = HsmVault.Protocol.V1.Witness;

namespace HsmVault.Client.Tests;

/// <summary>
/// What a client carries of the protocol: messages and client stubs of the public APIs, no server
/// base class and nothing of the member-to-member API (peer.proto). The server stubs are compiled
/// where they are served (src/Directory.Build.targets), internal there.
/// </summary>
public sealed class ProtocolSurfaceTests
{
    private const string PeerProto = "hsmvault/v1/peer.proto";

    private static readonly Assembly[] ClientSide = [typeof(ProtoVault).Assembly, typeof(VaultClient).Assembly];

    [Fact]
    public void ProtocolAndClient_HaveTheClientStubs()
    {
        Assert.Equal("HsmVault.Protocol", typeof(ProtoVault).Assembly.GetName().Name);
        Assert.True(typeof(ProtoVault.VaultClient).IsPublic || typeof(ProtoVault.VaultClient).IsNestedPublic);
        Assert.True(typeof(ProtoWitness.WitnessClient).IsNestedPublic);
    }

    [Fact]
    public void ProtocolAndClient_HaveNoServerStub()
    {
        var serverStubs = ClientSide.SelectMany(AllTypes).Where(IsServerStub).Select(t => t.FullName).ToList();

        Assert.Empty(serverStubs);
    }

    [Fact]
    public void ProtocolAndClient_HaveNothingOfThePeerApi()
    {
        var peerTypes = ClientSide.SelectMany(AllTypes)
            .Where(t => t.Name.StartsWith("Peer", StringComparison.Ordinal) || ProtoFile(t) == PeerProto)
            .Select(t => t.FullName)
            .ToList();

        Assert.Empty(peerTypes);
    }

    [Fact]
    public void ServerStubs_AreInternalToTheProjectsThatServeThem()
    {
        // The same predicate finds them where they belong, so the tests above can fail.
        var vault = Assert.Single(AllTypes(typeof(HsmVaultServer).Assembly), t => IsServerStub(t) && t.Name == "VaultBase");
        var witness = Assert.Single(AllTypes(typeof(WitnessServer).Assembly), IsServerStub);

        Assert.Equal("WitnessBase", witness.Name);
        Assert.All([vault, witness], t => Assert.False(t.IsVisible, $"{t.FullName} is public"));
        Assert.Contains(AllTypes(typeof(HsmVaultServer).Assembly), t => ProtoFile(t) == PeerProto);
    }

    private static IEnumerable<Type> AllTypes(Assembly assembly) => assembly.GetTypes();

    /// <summary>A generated server base class: the one type grpc-dotnet binds by <see cref="BindServiceMethodAttribute"/>.</summary>
    private static bool IsServerStub(Type type) =>
        type.GetCustomAttribute<BindServiceMethodAttribute>(inherit: false) is not null
        || (type.Name.EndsWith("Base", StringComparison.Ordinal) && type.DeclaringType?.GetMethod("BindService", BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.Static) is not null);

    /// <summary>The .proto file a generated message or reflection class comes from, if any.</summary>
    private static string? ProtoFile(Type type)
    {
        var descriptor = type.GetProperty("Descriptor", BindingFlags.Public | BindingFlags.Static);
        if (descriptor is null || type.ContainsGenericParameters)
        {
            return null;
        }

        return descriptor.GetValue(null) switch
        {
            FileDescriptor file => file.Name,
            MessageDescriptor message => message.File.Name,
            ServiceDescriptor service => service.File.Name,
            _ => null,
        };
    }
}
