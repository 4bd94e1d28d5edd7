using System.Buffers.Binary;
using System.Security.Cryptography;
using Net.Pkcs11Interop.Common;
using Net.Pkcs11Interop.HighLevelAPI;

namespace HsmVault.Hsm.Internal;

/// <summary>
/// The vault's private data objects, overwritten without a moment in which the value is gone.
/// </summary>
/// <remarks>
/// SoftHSM2 makes CKA_VALUE of a data object read-only after creation (C_SetAttributeValue
/// returns CKR_ATTRIBUTE_READ_ONLY), and destroy-then-create would lose the value if the
/// process died in between — fatal for a Raft high-water mark, which must never go back. So
/// every write creates a new object whose value starts with a 64-bit sequence number, one
/// higher than any present, and only then destroys the older objects. A reader takes the
/// highest sequence, so a crash between the two steps leaves either the old or the new value,
/// never none. C_CreateObject is durable when it returns as far as the module is: SoftHSM2
/// writes (no fsync) the object file before returning, so the value survives a daemon crash
/// but, on SoftHSM2, not necessarily a power cut; a hardware token commits to its own storage.
/// <para>
/// Where a token refuses private token data objects (NSS softoken accepts CKO_DATA only as a
/// public session object: CKR_ATTRIBUTE_VALUE_INVALID), the value is carried instead in the
/// CKA_ID of a private generic-secret token object that can do nothing (no sign, encrypt, wrap,
/// derive; its own key value is random and unused). CKA_ID is readable on every token; it is not
/// a secret attribute, so on such a token the value is stored like any non-sensitive attribute,
/// which is what the vault's data objects need: the sealed AKE key is sealed by the token, and
/// the high-water mark is no secret. The form is chosen by what the token accepts, not by vendor:
/// every write tries CKO_DATA first, and reads look at both forms.
/// </para>
/// </remarks>
internal static class DataObjects
{
    private const int SequenceLength = 8;

    /// <summary>Marks a carrier key's CKA_ID as a vault data object, so no real key is ever read as one.</summary>
    private static ReadOnlySpan<byte> CarrierMagic => "HsmVault data v1\0"u8;

    /// <summary>
    /// The latest value under <paramref name="label"/> (null when there is none), and where it is stored when it is
    /// the only copy; after an interrupted write there are two, and the next write must find and remove both.
    /// </summary>
    public static (byte[]? Value, StoredObject? Location) Read(ISession session, string label)
    {
        var all = FindAll(session, label);
        var latest = Latest(all);
        return latest is { } found
            ? (found.Value[SequenceLength..], all.Count == 1 ? new StoredObject(found.Handle, found.Sequence) : null)
            : (null, null);
    }

    /// <summary>
    /// Replaces the value under <paramref name="label"/>. With <paramref name="latest"/> — where this process last
    /// read or wrote it, through handles of the same login — the write is one C_CreateObject and one C_DestroyObject;
    /// without it, or when that object is gone (someone else changed the token's objects), every copy is found first.
    /// </summary>
    /// <returns>Where the new value is stored, for the next write.</returns>
    public static StoredObject Write(ISession session, string label, ReadOnlySpan<byte> value, StoredObject? latest)
    {
        if (latest is { } known)
        {
            var created = Create(session, label, known.Sequence + 1, value);
            try
            {
                session.DestroyObject(known.Handle);
                return created;
            }
            catch (Pkcs11Exception ex) when (ex.RV == CKR.CKR_OBJECT_HANDLE_INVALID)
            {
                // Our picture of the token is stale, so the sequence just used may not be the highest: write again
                // the slow way, which numbers past every copy present (ours included) and removes them all.
            }
        }

        var existing = FindAll(session, label);
        var written = Create(session, label, (Latest(existing)?.Sequence ?? 0) + 1, value);
        foreach (var old in existing)
        {
            session.DestroyObject(old.Handle);
        }

        return written;
    }

    private static StoredObject Create(ISession session, string label, ulong sequence, ReadOnlySpan<byte> value)
    {
        var stored = new byte[SequenceLength + value.Length];
        BinaryPrimitives.WriteUInt64BigEndian(stored, sequence);
        value.CopyTo(stored.AsSpan(SequenceLength));

        try
        {
            using var template = new AttributeList()
                .Add(CKA.CKA_CLASS, CKO.CKO_DATA)
                .Add(CKA.CKA_TOKEN, true)
                .Add(CKA.CKA_PRIVATE, true) // SoftHSM2 stores public objects in clear on disk.
                .Add(CKA.CKA_LABEL, label)
                .Add(CKA.CKA_APPLICATION, Pkcs11Constants.Application)
                .Add(CKA.CKA_VALUE, stored);
            return new StoredObject(session.CreateObject(template.Items), sequence);
        }
        catch (Pkcs11Exception ex) when (ex.RV is CKR.CKR_ATTRIBUTE_VALUE_INVALID or CKR.CKR_TEMPLATE_INCONSISTENT)
        {
            return new StoredObject(WriteCarrier(session, label, stored), sequence);
        }
    }

    /// <summary>Every data object of the application with this label, in either form (normally one; two after an interrupted write).</summary>
    public static List<(IObjectHandle Handle, ulong Sequence, byte[] Value)> FindAll(ISession session, string label)
    {
        var result = new List<(IObjectHandle, ulong, byte[])>();
        using (var template = new AttributeList()
            .Add(CKA.CKA_CLASS, CKO.CKO_DATA)
            .Add(CKA.CKA_LABEL, label)
            .Add(CKA.CKA_APPLICATION, Pkcs11Constants.Application))
        {
            foreach (var handle in session.FindAllObjects(template.Items))
            {
                result.Add(Parse(handle, session.GetBytes(handle, CKA.CKA_VALUE), label));
            }
        }

        using (var template = new AttributeList()
            .Add(CKA.CKA_CLASS, CKO.CKO_SECRET_KEY)
            .Add(CKA.CKA_KEY_TYPE, CKK.CKK_GENERIC_SECRET)
            .Add(CKA.CKA_LABEL, label))
        {
            foreach (var handle in session.FindAllObjects(template.Items))
            {
                var id = session.GetBytes(handle, CKA.CKA_ID);
                if (id.AsSpan().StartsWith(CarrierMagic))
                {
                    result.Add(Parse(handle, id[CarrierMagic.Length..], label));
                }
            }
        }

        return result;
    }

    private static IObjectHandle WriteCarrier(ISession session, string label, byte[] stored)
    {
        var filler = RandomNumberGenerator.GetBytes(32);
        using var template = new AttributeList()
            .Add(CKA.CKA_CLASS, CKO.CKO_SECRET_KEY)
            .Add(CKA.CKA_KEY_TYPE, CKK.CKK_GENERIC_SECRET)
            .Add(CKA.CKA_TOKEN, true)
            .Add(CKA.CKA_PRIVATE, true)
            .Add(CKA.CKA_SENSITIVE, true)
            .Add(CKA.CKA_EXTRACTABLE, false)
            .Add(CKA.CKA_LABEL, label)
            .Add(CKA.CKA_ID, [.. CarrierMagic, .. stored])
            .Add(CKA.CKA_SIGN, false)
            .Add(CKA.CKA_VERIFY, false)
            .Add(CKA.CKA_ENCRYPT, false)
            .Add(CKA.CKA_DECRYPT, false)
            .Add(CKA.CKA_WRAP, false)
            .Add(CKA.CKA_UNWRAP, false)
            .Add(CKA.CKA_DERIVE, false)
            .Add(CKA.CKA_VALUE, filler);
        return session.CreateObject(template.Items);
    }

    private static (IObjectHandle Handle, ulong Sequence, byte[] Value) Parse(IObjectHandle handle, byte[] value, string label)
    {
        if (value.Length < SequenceLength)
        {
            throw new TokenConfigurationException(
                $"data object '{label}' has {value.Length} bytes, fewer than its {SequenceLength}-byte sequence number; it was not written by HsmVault");
        }

        return (handle, BinaryPrimitives.ReadUInt64BigEndian(value), value);
    }

    private static (IObjectHandle Handle, ulong Sequence, byte[] Value)? Latest(List<(IObjectHandle Handle, ulong Sequence, byte[] Value)> objects) =>
        objects.Count == 0 ? null : objects.MaxBy(o => o.Sequence);
}

/// <summary>Where the latest copy of a data object is: its handle (valid for the login that found or made it) and sequence number.</summary>
internal readonly record struct StoredObject(IObjectHandle Handle, ulong Sequence);
