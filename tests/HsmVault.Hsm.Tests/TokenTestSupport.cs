using HsmVault.Hsm.Internal;
using HsmVault.Testing;
using Net.Pkcs11Interop.Common;

namespace HsmVault.Hsm.Tests;

internal static class TokenTestSupport
{
    public static SoftHsmEnvironment Env => SoftHsmEnvironment.Shared;

    /// <summary>Boolean attributes of a labelled object, read through a separate admin session.</summary>
    public static Dictionary<CKA, bool?> Attributes(TokenOptions options, CKO objectClass, string label, params CKA[] types)
    {
        using var admin = AdminSession.Open(options);
        var handle = admin.Session.FindSingle(objectClass, label, admin.TokenLabel)
            ?? throw new InvalidOperationException($"no object '{label}'");
        return admin.Session.GetBools(handle, types);
    }

    public static TokenOptions WithPinFile(TokenOptions options, string pinFile) => new()
    {
        ModulePath = options.ModulePath,
        TokenLabel = options.TokenLabel,
        TokenSerial = options.TokenSerial,
        PinFile = pinFile,
        MaxConcurrentOperations = options.MaxConcurrentOperations,
        KeyLabelPrefix = options.KeyLabelPrefix,
    };
}
