using System.Text;
using HsmVault.Hsm;
using HsmVault.Hsm.Internal;
using HsmVault.Testing;
using Net.Pkcs11Interop.Common;
using Net.Pkcs11Interop.HighLevelAPI;

namespace HsmVault.Tokens.Tests;

/// <summary>
/// The witness's signing key after its token drops every session: found again and signing, but
/// only if the token found again holds the very key pair first opened. A public key object can
/// be copied into a token by value; the private key cannot, so the pair found must sign a fresh
/// challenge that verifies, and its public half must be the one from start-up.
/// </summary>
public sealed class TokenSigningKeyTests
{
    private const string KeyLabel = "witness-key";

    [Fact]
    public void SessionsDropped_TheSameKeyIsFoundAgain_AndSigns()
    {
        var options = SoftHsmEnvironment.Shared.CreateToken();
        using var key = TokenSigningKey.Open(options, KeyLabel, generateIfMissing: true);

        DropAllSessions(options);

        Assert.True(key.PublicKey.Verifies("after"u8, key.Sign("after"u8)));
    }

    [Fact]
    public void PrivateKeySwappedBehindACopiedPublicKey_IsRefused_NeverSignsWithIt()
    {
        var options = SoftHsmEnvironment.Shared.CreateToken();
        using var key = TokenSigningKey.Open(options, KeyLabel, generateIfMissing: true);
        Assert.True(key.PublicKey.Verifies("before"u8, key.Sign("before"u8)));

        // The token keeps the public key object of start-up; its private key is another one, under the same label.
        using (TokenSigningKey.Open(options, "impostor-key", generateIfMissing: true))
        {
        }

        WithAdminSession(options, session =>
        {
            session.DestroyObject(FindSingle(session, CKO.CKO_PRIVATE_KEY, KeyLabel));
            session.DestroyObject(FindSingle(session, CKO.CKO_PUBLIC_KEY, "impostor-key-pub"));
            session.SetAttributeValue(FindSingle(session, CKO.CKO_PRIVATE_KEY, "impostor-key"),
                [Pkcs11Modules.Factories.ObjectAttributeFactory.Create(CKA.CKA_LABEL, KeyLabel)]);
        });
        DropAllSessions(options);

        for (var attempt = 0; attempt < 2; attempt++)
        {
            var refused = Assert.Throws<TokenUnavailableException>(() => key.Sign("after"u8));
            Assert.Contains($"key '{KeyLabel}'", refused.Message, StringComparison.Ordinal);
            Assert.Contains($"does not sign for its public half '{KeyLabel}-pub'", refused.Message, StringComparison.Ordinal);
        }

        // A witness started now, which never saw the first key, is refused at start-up.
        var atStart = Assert.Throws<TokenConfigurationException>(() => TokenSigningKey.Open(options, KeyLabel, generateIfMissing: false));
        Assert.Contains($"does not sign for its public half '{KeyLabel}-pub'", atStart.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void KeyReplacedByAnotherPair_IsRefused()
    {
        var options = SoftHsmEnvironment.Shared.CreateToken();
        using var key = TokenSigningKey.Open(options, KeyLabel, generateIfMissing: true);

        WithAdminSession(options, session =>
        {
            session.DestroyObject(FindSingle(session, CKO.CKO_PRIVATE_KEY, KeyLabel));
            session.DestroyObject(FindSingle(session, CKO.CKO_PUBLIC_KEY, KeyLabel + "-pub"));
        });
        using (var replacement = TokenSigningKey.Open(options, KeyLabel, generateIfMissing: true))
        {
            Assert.NotEqual(key.PublicKey, replacement.PublicKey);
        }

        DropAllSessions(options);

        var refused = Assert.Throws<TokenUnavailableException>(() => key.Sign("after"u8));
        Assert.Contains("is not the key this daemon opened at start-up", refused.Message, StringComparison.Ordinal);
    }

    /// <summary>What a token reset or a pulled cable does to a daemon: every session on the slot gone, the login with them.</summary>
    private static void DropAllSessions(TokenOptions options) => SlotOf(options).CloseAllSessions();

    private static void WithAdminSession(TokenOptions options, Action<ISession> act)
    {
        var slot = SlotOf(options);
        using var session = slot.OpenSession(SessionType.ReadWrite);
        // Logged in already if a key of this process has the token open (a login is per application).
        try
        {
            session.Login(CKU.CKU_USER, File.ReadAllText(options.PinFile!).Trim());
        }
        catch (Pkcs11Exception ex) when (ex.RV == CKR.CKR_USER_ALREADY_LOGGED_IN)
        {
        }

        act(session);
    }

    private static ISlot SlotOf(TokenOptions options) =>
        Pkcs11Modules.Get(options.ModulePath!).GetSlotList(SlotsType.WithTokenPresent)
            .Single(slot => slot.GetTokenInfo().SerialNumber.Trim() == options.TokenSerial);

    private static IObjectHandle FindSingle(ISession session, CKO objectClass, string label) =>
        session.FindAllObjects(
        [
            Pkcs11Modules.Factories.ObjectAttributeFactory.Create(CKA.CKA_CLASS, objectClass),
            Pkcs11Modules.Factories.ObjectAttributeFactory.Create(CKA.CKA_LABEL, Encoding.UTF8.GetBytes(label)),
        ]).Single();
}
