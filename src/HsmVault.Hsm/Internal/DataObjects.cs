using System.Buffers.Binary;
using Net.Pkcs11Interop.Common;
using Net.Pkcs11Interop.HighLevelAPI;

namespace HsmVault.Hsm.Internal;

/// <summary>
/// The vault's private data objects (CKO_DATA), overwritten without a moment in which the
/// value is gone.
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
/// </remarks>
internal static class DataObjects
{
    private const int SequenceLength = 8;

    public static byte[]? Read(ISession session, string label)
    {
        var latest = Latest(FindAll(session, label));
        return latest?.Value[SequenceLength..];
    }

    public static void Write(ISession session, string label, ReadOnlySpan<byte> value)
    {
        var existing = FindAll(session, label);
        var next = (Latest(existing)?.Sequence ?? 0) + 1;
        var stored = new byte[SequenceLength + value.Length];
        BinaryPrimitives.WriteUInt64BigEndian(stored, next);
        value.CopyTo(stored.AsSpan(SequenceLength));

        using (var template = new AttributeList()
            .Add(CKA.CKA_CLASS, CKO.CKO_DATA)
            .Add(CKA.CKA_TOKEN, true)
            .Add(CKA.CKA_PRIVATE, true) // SoftHSM2 stores public objects in clear on disk.
            .Add(CKA.CKA_LABEL, label)
            .Add(CKA.CKA_APPLICATION, Pkcs11Constants.Application)
            .Add(CKA.CKA_VALUE, stored))
        {
            session.CreateObject(template.Items);
        }

        foreach (var old in existing)
        {
            session.DestroyObject(old.Handle);
        }
    }

    /// <summary>Every data object of the application with this label (normally one; two after an interrupted write).</summary>
    public static List<(IObjectHandle Handle, ulong Sequence, byte[] Value)> FindAll(ISession session, string label)
    {
        using var template = new AttributeList()
            .Add(CKA.CKA_CLASS, CKO.CKO_DATA)
            .Add(CKA.CKA_LABEL, label)
            .Add(CKA.CKA_APPLICATION, Pkcs11Constants.Application);
        var result = new List<(IObjectHandle, ulong, byte[])>();
        foreach (var handle in session.FindAllObjects(template.Items))
        {
            var value = session.GetBytes(handle, CKA.CKA_VALUE);
            if (value.Length < SequenceLength)
            {
                throw new TokenConfigurationException(
                    $"data object '{label}' has {value.Length} bytes, fewer than its {SequenceLength}-byte sequence number; it was not written by HsmVault");
            }

            result.Add((handle, BinaryPrimitives.ReadUInt64BigEndian(value), value));
        }

        return result;
    }

    private static (IObjectHandle Handle, ulong Sequence, byte[] Value)? Latest(List<(IObjectHandle Handle, ulong Sequence, byte[] Value)> objects) =>
        objects.Count == 0 ? null : objects.MaxBy(o => o.Sequence);
}
