using System.Buffers.Binary;
using System.Security.Cryptography;
using Net.Pkcs11Interop.Common;
using Net.Pkcs11Interop.HighLevelAPI;

namespace HsmVault.Hsm.Internal;

/// <summary>
/// Finds the mechanism with which a token does RFC 5649 (AES key wrap with padding), by a
/// known-answer test rather than by the mechanism's name or the token's vendor.
/// </summary>
/// <remarks>
/// The name does not say it. NSS softoken implements CKM_AES_KEY_WRAP_PAD as RFC 3394 over
/// PKCS#7-padded input, and RFC 5649 as CKM_AES_KEY_WRAP_KWP (0x210B, PKCS#11 3.0). SoftHSM2 2.6
/// has no KWP, and its CKM_AES_KEY_WRAP_PAD is RFC 5649 computed over input it has already
/// zero-padded to a multiple of 8 (so the length in RFC 5649's integrity check value is the
/// padded one): RFC 5649 exactly for inputs whose length is a multiple of 8, which the OPRF seed
/// (64 bytes) and the record key (32) are. A ceremony between the two that picked "the same
/// mechanism number" would wrap on one side what the other cannot unwrap. So each candidate the
/// token lists wraps a random 32-byte secret under a random session AES key, and the result is
/// compared with RFC 5649 computed here (32 bytes: the length class of the fleet's secret keys,
/// and one where RFC 3394-over-PKCS#7 differs, by a whole block); the first that matches is the
/// token's RFC 5649. Both keys are session objects destroyed at once, and known only to this
/// process for the moment of the test: they protect nothing.
/// </remarks>
internal static class KeyWrapNegotiation
{
    /// <summary>CKM_AES_KEY_WRAP_KWP (PKCS#11 3.0), which Pkcs11Interop 5.3's enum predates.</summary>
    public const ulong CkmAesKeyWrapKwp = 0x210B;

    /// <summary>Candidates, most specific first: KWP is RFC 5649 by definition where a token has it.</summary>
    private static readonly ulong[] Candidates = [CkmAesKeyWrapKwp, (ulong)CKM.CKM_AES_KEY_WRAP_PAD];

    /// <summary>The mechanism type with which this token wraps and unwraps by RFC 5649.</summary>
    /// <exception cref="TokenConfigurationException">No listed candidate does RFC 5649.</exception>
    public static ulong FindRfc5649(AdminSession admin, NativeCalls native)
    {
        var listed = admin.Slot.GetMechanismList().Select(m => (ulong)m).ToHashSet();
        var kek = RandomNumberGenerator.GetBytes(32);
        var secret = RandomNumberGenerator.GetBytes(32);
        var session = admin.Session;
        var kekHandle = CreateSessionKey(session, CKK.CKK_AES, kek, wrap: true);
        var secretHandle = CreateSessionKey(session, CKK.CKK_GENERIC_SECRET, secret, wrap: false);
        try
        {
            var expected = Rfc5649Wrap(kek, secret);
            foreach (var mechanism in Candidates.Where(listed.Contains))
            {
                try
                {
                    if (native.WrapKey(session, mechanism, kekHandle, secretHandle, 256).AsSpan().SequenceEqual(expected))
                    {
                        return mechanism;
                    }
                }
                catch (Pkcs11Exception)
                {
                    // Listed but refused for this key: not usable for the ceremony either.
                }
            }
        }
        finally
        {
            session.DestroyObject(secretHandle);
            session.DestroyObject(kekHandle);
            CryptographicOperations.ZeroMemory(kek);
            CryptographicOperations.ZeroMemory(secret);
        }

        throw new TokenConfigurationException(
            $"token '{admin.TokenLabel}' has no mechanism that wraps keys by RFC 5649 (tried CKM_AES_KEY_WRAP_KWP and CKM_AES_KEY_WRAP_PAD): " +
            "it cannot give or receive fleet keys in a key ceremony");
    }

    /// <summary>RFC 5649 §4.1 in software, for the known-answer test only.</summary>
    internal static byte[] Rfc5649Wrap(byte[] kek, byte[] plaintext)
    {
        var padded = new byte[(plaintext.Length + 7) / 8 * 8];
        plaintext.CopyTo(padded, 0);
        var a = new byte[8];
        BinaryPrimitives.WriteUInt32BigEndian(a, 0xA65959A6);
        BinaryPrimitives.WriteUInt32BigEndian(a.AsSpan(4), (uint)plaintext.Length);
        using var aes = Aes.Create();
        aes.Key = kek;
        if (padded.Length == 8)
        {
            return aes.EncryptEcb([.. a, .. padded], PaddingMode.None);
        }

        // RFC 3394 §2.2.1 with the alternative initial value.
        var n = padded.Length / 8;
        var r = padded;
        for (var j = 0; j < 6; j++)
        {
            for (var i = 1; i <= n; i++)
            {
                var b = aes.EncryptEcb([.. a, .. r.AsSpan((i - 1) * 8, 8)], PaddingMode.None);
                var t = (ulong)((n * j) + i);
                BinaryPrimitives.WriteUInt64BigEndian(a, BinaryPrimitives.ReadUInt64BigEndian(b) ^ t);
                b.AsSpan(8, 8).CopyTo(r.AsSpan((i - 1) * 8));
            }
        }

        return [.. a, .. r];
    }

    private static IObjectHandle CreateSessionKey(ISession session, CKK keyType, byte[] value, bool wrap)
    {
        using var template = new AttributeList()
            .Add(CKA.CKA_CLASS, CKO.CKO_SECRET_KEY)
            .Add(CKA.CKA_KEY_TYPE, keyType)
            .Add(CKA.CKA_TOKEN, false)
            .Add(CKA.CKA_PRIVATE, true)
            .Add(CKA.CKA_SENSITIVE, true)
            .Add(CKA.CKA_EXTRACTABLE, !wrap)
            .Add(CKA.CKA_WRAP, wrap)
            .Add(CKA.CKA_UNWRAP, false)
            .Add(CKA.CKA_VALUE, value);
        return session.CreateObject(template.Items);
    }
}
