using System.Runtime.InteropServices;
using Net.Pkcs11Interop.Common;
using Net.Pkcs11Interop.HighLevelAPI;
using LowLevel = Net.Pkcs11Interop.LowLevelAPI80;

namespace HsmVault.Hsm.Internal;

/// <summary>
/// Single-part calls made with an output buffer sized by what the operation produces, not by
/// the module's length query.
/// </summary>
/// <remarks>
/// Pkcs11Interop's high-level API asks the module for the output length (a call with a null
/// buffer) and believes it. NSS softoken answers an AES-GCM encryption's query with the
/// plaintext length, without the 16-byte tag, and its RFC 5649 wrap (CKM_AES_KEY_WRAP_KWP)
/// query is short too: the second call then fails with CKR_BUFFER_TOO_SMALL. Sizing the buffer
/// from the mechanism (PKCS#11 3.0 §5.2: a buffer large enough is always acceptable) works on
/// every module; if one still asks for more, the length it returns is used once more (the
/// operation stays active after CKR_BUFFER_TOO_SMALL). Sessions and objects opened through the
/// high-level API are valid here: both handles are the same loaded module.
/// </remarks>
internal sealed class NativeCalls(LowLevel.Pkcs11Library library)
{
    /// <summary>AES-GCM encryption: returns ciphertext || tag.</summary>
    public byte[] GcmEncrypt(ISession session, IObjectHandle key, byte[] iv, byte[] aad, int tagBytes, byte[] plaintext) =>
        WithGcm(iv, aad, tagBytes, mechanism =>
        {
            Check(library.C_EncryptInit(session.SessionId, ref mechanism, key.ObjectId), "C_EncryptInit");
            return Output("C_Encrypt", plaintext.Length + tagBytes, (buffer, ref length) =>
                library.C_Encrypt(session.SessionId, plaintext, (ulong)plaintext.Length, buffer, ref length));
        });

    /// <summary>AES-GCM decryption of ciphertext || tag: returns the plaintext.</summary>
    public byte[] GcmDecrypt(ISession session, IObjectHandle key, byte[] iv, byte[] aad, int tagBytes, byte[] ciphertextAndTag) =>
        WithGcm(iv, aad, tagBytes, mechanism =>
        {
            Check(library.C_DecryptInit(session.SessionId, ref mechanism, key.ObjectId), "C_DecryptInit");

            // The whole input is an upper bound that every module accepts.
            return Output("C_Decrypt", Math.Max(ciphertextAndTag.Length, 1), (buffer, ref length) =>
                library.C_Decrypt(session.SessionId, ciphertextAndTag, (ulong)ciphertextAndTag.Length, buffer, ref length));
        });

    /// <summary>C_WrapKey with a buffer of <paramref name="upperBound"/> bytes.</summary>
    public byte[] WrapKey(ISession session, ulong mechanismType, IObjectHandle wrappingKey, IObjectHandle key, int upperBound)
    {
        var mechanism = LowLevel.CkmUtils.CreateMechanism(mechanismType);
        return Output("C_WrapKey", upperBound, (buffer, ref length) =>
            library.C_WrapKey(session.SessionId, ref mechanism, wrappingKey.ObjectId, key.ObjectId, buffer, ref length));
    }

    private delegate CKR OutputCall(byte[] buffer, ref ulong length);

    private static byte[] Output(string function, int size, OutputCall call)
    {
        var buffer = new byte[size];
        var length = (ulong)buffer.Length;
        var rv = call(buffer, ref length);
        if (rv == CKR.CKR_BUFFER_TOO_SMALL && length > (ulong)buffer.Length && length < int.MaxValue)
        {
            buffer = new byte[(int)length];
            rv = call(buffer, ref length);
        }

        Check(rv, function);
        if (length == (ulong)buffer.Length)
        {
            return buffer;
        }

        var result = buffer.AsSpan(0, checked((int)length)).ToArray();
        System.Security.Cryptography.CryptographicOperations.ZeroMemory(buffer);
        return result;
    }

    private static T WithGcm<T>(byte[] iv, byte[] aad, int tagBytes, Func<LowLevel.CK_MECHANISM, T> work)
    {
        var ivMemory = Copy(iv);
        var aadMemory = Copy(aad);
        var parameters = new LowLevel.MechanismParams.CK_GCM_PARAMS
        {
            Iv = ivMemory,
            IvLen = (ulong)iv.Length,
            IvBits = (ulong)iv.Length * 8,
            AAD = aadMemory,
            AADLen = (ulong)aad.Length,
            TagBits = (ulong)tagBytes * 8,
        };
        var mechanism = LowLevel.CkmUtils.CreateMechanism(CKM.CKM_AES_GCM, parameters);
        try
        {
            return work(mechanism);
        }
        finally
        {
            UnmanagedMemory.Free(ref mechanism.Parameter);
            UnmanagedMemory.Free(ref ivMemory);
            UnmanagedMemory.Free(ref aadMemory);
        }
    }

    private static IntPtr Copy(byte[] value)
    {
        // A zero-length AAD is passed as a null pointer with length 0, as PKCS#11 allows.
        if (value.Length == 0)
        {
            return IntPtr.Zero;
        }

        var memory = UnmanagedMemory.Allocate(value.Length);
        Marshal.Copy(value, 0, memory, value.Length);
        return memory;
    }

    private static void Check(CKR rv, string function)
    {
        if (rv != CKR.CKR_OK)
        {
            throw new Pkcs11Exception(function, rv);
        }
    }
}
