using System.Buffers.Binary;
using System.Security.Cryptography;
using Net.Pkcs11Interop.Common;
using Net.Pkcs11Interop.HighLevelAPI;

namespace HsmVault.Hsm.Internal;

/// <summary>
/// The vault's private data objects, overwritten without a moment in which the value is gone.
/// </summary>
/// <remarks>
/// Every copy's value starts with a 64-bit sequence number and a reader takes the highest, so a
/// write never touches the copy a reader would take until a newer one is complete. A write
/// rewrites, in place, the older of two copies (C_SetAttributeValue of its CKA_ID, see below):
/// one attribute written, no object created or destroyed. That matters because the Raft
/// high-water mark is written once per batch: SoftHSM2 creates an object by rewriting its file
/// once per attribute (about twelve truncate-and-write cycles) and every create or destroy bumps
/// the token's generation, which makes every other session of the token rescan the token folder;
/// a hardware token's non-volatile writes are slow and wear. A crash in the middle of a rewrite
/// leaves the other copy, the previous value, intact. The copy being rewritten is then lost or
/// torn: SoftHSM2 truncates and rewrites the object file, so a cut file is no object at all to
/// the next process (its file stays in the token folder, unused: one small leaked file per such
/// crash); a token that tears the attribute itself leaves a CKA_ID whose checksum fails, which
/// is ignored and is the copy the next write rewrites.
/// <para>
/// The rewritable copies are private generic-secret token keys that can do nothing (no sign,
/// encrypt, wrap, derive; generated in the token, their own key value is unused) whose CKA_ID
/// carries the value: PKCS#11 lets CKA_ID be modified, whereas SoftHSM2 makes CKA_VALUE of a data object
/// read-only after creation (CKR_ATTRIBUTE_READ_ONLY). CKA_ID is not a secret attribute, which
/// is what the vault's data objects need: the sealed AKE key is sealed by the token, and the
/// high-water mark is no secret. A token that refuses the rewrite, or such a key, gets the other
/// way: every write creates a new copy numbered past the latest (CKO_DATA first, or a carrier
/// where a token refuses private CKO_DATA, as NSS softoken does) and only then destroys the
/// older ones.
/// C_CreateObject and C_SetAttributeValue are durable when they return as far as the module is:
/// SoftHSM2 writes (no fsync) the object file before returning, so the value survives a daemon
/// crash but, on SoftHSM2, not necessarily a power cut; a hardware token commits to its own storage.
/// </para>
/// <para>
/// The format only goes forward: daemons before the rewritable copies read CKO_DATA and the v1
/// carrier only, so an older daemon started on a token this one wrote would see an older mark,
/// or none. A member's daemon must not be downgraded.
/// </para>
/// </remarks>
internal static class DataObjects
{
    private const int SequenceLength = 8;
    private const int ChecksumLength = 8;

    /// <summary>Marks a carrier key's CKA_ID as a vault data object written whole at creation (no checksum).</summary>
    private static ReadOnlySpan<byte> CarrierMagic => "HsmVault data v1\0"u8;

    /// <summary>Marks a carrier key's CKA_ID as a rewritable copy: sequence, value, then a checksum that shows a torn rewrite.</summary>
    private static ReadOnlySpan<byte> RewritableMagic => "HsmVault data v2\0"u8;

    /// <summary>
    /// The latest value under <paramref name="label"/> (null when there is none), and where its copies are, for
    /// the next write.
    /// </summary>
    public static (byte[]? Value, StoredObject? Location) Read(ISession session, string label)
    {
        var all = FindAll(session, label);
        var latest = Latest(all);
        return latest is { } found
            ? (found.Value![SequenceLength..], new StoredObject(OldestFirst(all, found), found.Sequence, RewriteRefused: false))
            : (null, null);
    }

    /// <summary>
    /// Replaces the value under <paramref name="label"/>. With <paramref name="latest"/> — where this process last
    /// read or wrote its copies, through handles of the same login — the write is one attribute rewritten (or, on a
    /// token that refuses that, one object created and one destroyed). Otherwise, or when a remembered copy is gone
    /// (someone else changed the token's objects), every copy is found first and the new one numbered past them all.
    /// </summary>
    /// <returns>Where the copies are now, for the next write.</returns>
    public static StoredObject Write(ISession session, string label, ReadOnlySpan<byte> value, StoredObject? latest)
    {
        var rewriteRefused = latest?.RewriteRefused ?? false;
        try
        {
            if (latest is { RewriteRefused: false, Copies: [{ Rewritable: true } older, var newer] })
            {
                var next = Next(latest.Sequence, label);
                try
                {
                    using var update = new AttributeList().Add(CKA.CKA_ID, Rewritable(next, value));
                    session.SetAttributeValue(older.Handle, update.Items);
                    return new StoredObject([newer, older with { Sequence = next }], next, RewriteRefused: false);
                }
                catch (Pkcs11Exception ex) when (!SessionLoss.IsSessionLost(ex.RV))
                {
                    // This token does not rewrite a CKA_ID in place (CKR_ATTRIBUTE_READ_ONLY, CKR_ACTION_PROHIBITED, ...):
                    // create and destroy from now on. A lost session is no refusal: it goes to the caller, which logs in
                    // again and retries.
                    rewriteRefused = true;
                }
            }

            if (rewriteRefused && latest is { } known)
            {
                return CreateThenDestroy(session, label, value, Next(known.Sequence, label), known.Copies);
            }
        }
        catch (Pkcs11Exception ex) when (ex.RV == CKR.CKR_OBJECT_HANDLE_INVALID)
        {
            // Our picture of the token is stale, so the sequence just used may not be the highest: write again
            // the slow way, which numbers past every copy present (ours included).
        }

        var existing = FindAll(session, label);
        var sequence = Next(existing.Count == 0 ? 0 : existing.Max(c => c.Sequence), label);
        var latestFound = Latest(existing);
        var copies = OldestFirst(existing, latestFound);
        if (!rewriteRefused)
        {
            IObjectHandle? created = null;
            try
            {
                created = WriteCarrier(session, label, Rewritable(sequence, value));
            }
            catch (Pkcs11Exception ex) when (!SessionLoss.IsSessionLost(ex.RV))
            {
                // A token that will not make such a key (CKR_TEMPLATE_INCONSISTENT, CKR_MECHANISM_INVALID, ...).
                rewriteRefused = true;
            }

            if (created is not null)
            {
                // Keep only the new copy and the latest of the others (the value a reader takes until this write
                // returns): from the next write on, each write rewrites the older of the two.
                var added = new StoredCopy(created, sequence, Rewritable: true);
                StoredCopy? kept = latestFound is null ? null : copies[^1];
                foreach (var old in copies.Where(c => kept is not { } k || !ReferenceEquals(c.Handle, k.Handle)))
                {
                    session.DestroyObject(old.Handle);
                }

                return new StoredObject(kept is { } found ? [found, added] : [added], sequence, RewriteRefused: false);
            }
        }

        return CreateThenDestroy(session, label, value, sequence, copies);
    }

    /// <summary>
    /// The copies found, oldest first and the one a reader takes (<paramref name="latest"/>) last: torn copies (sequence 0)
    /// first, and of two copies with one sequence, which only a second writer makes, the other one first. So a
    /// rewrite of the first of two never touches the copy a reader takes.
    /// </summary>
    private static List<StoredCopy> OldestFirst(List<FoundCopy> found, FoundCopy? latest) =>
        [.. found
            .OrderBy(c => c.Sequence)
            .ThenBy(c => latest is { } l && ReferenceEquals(c.Handle, l.Handle) ? 1 : 0)
            .Select(c => new StoredCopy(c.Handle, c.Sequence, c.Rewritable))];

    private static ulong Next(ulong sequence, string label) => sequence < ulong.MaxValue
        ? sequence + 1
        : throw new TokenConfigurationException(
            $"data object '{label}' has a copy numbered {ulong.MaxValue}, past which no write can be numbered; it was not written by HsmVault");

    /// <summary>A token that rewrites nothing in place: one new copy numbered <paramref name="sequence"/>, then the others destroyed.</summary>
    private static StoredObject CreateThenDestroy(ISession session, string label, ReadOnlySpan<byte> value, ulong sequence, IEnumerable<StoredCopy> others)
    {
        var created = Create(session, label, sequence, value);
        foreach (var old in others)
        {
            session.DestroyObject(old.Handle);
        }

        return new StoredObject([created], sequence, RewriteRefused: true);
    }

    private static StoredCopy Create(ISession session, string label, ulong sequence, ReadOnlySpan<byte> value)
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
            return new StoredCopy(session.CreateObject(template.Items), sequence, Rewritable: false);
        }
        catch (Pkcs11Exception ex) when (ex.RV is CKR.CKR_ATTRIBUTE_VALUE_INVALID or CKR.CKR_TEMPLATE_INCONSISTENT)
        {
            return new StoredCopy(WriteCarrier(session, label, [.. CarrierMagic, .. stored]), sequence, Rewritable: false);
        }
    }

    /// <summary>A rewritable copy's CKA_ID: magic, sequence, value, and the first bytes of SHA-256 over sequence and value.</summary>
    internal static byte[] Rewritable(ulong sequence, ReadOnlySpan<byte> value)
    {
        var id = new byte[RewritableMagic.Length + SequenceLength + value.Length + ChecksumLength];
        RewritableMagic.CopyTo(id);
        var body = id.AsSpan(RewritableMagic.Length, SequenceLength + value.Length);
        BinaryPrimitives.WriteUInt64BigEndian(body, sequence);
        value.CopyTo(body[SequenceLength..]);
        SHA256.HashData(body)[..ChecksumLength].CopyTo(id.AsSpan(RewritableMagic.Length + body.Length));
        return id;
    }

    /// <summary>
    /// Every data object of the application with this label, in any form (normally one or two). A rewritable copy
    /// torn by a crash has no value (and sequence 0): the next write rewrites it.
    /// </summary>
    public static List<FoundCopy> FindAll(ISession session, string label)
    {
        var result = new List<FoundCopy>();
        using (var template = new AttributeList()
            .Add(CKA.CKA_CLASS, CKO.CKO_DATA)
            .Add(CKA.CKA_LABEL, label)
            .Add(CKA.CKA_APPLICATION, Pkcs11Constants.Application))
        {
            foreach (var handle in session.FindAllObjects(template.Items))
            {
                result.Add(Parse(handle, session.GetBytes(handle, CKA.CKA_VALUE), label, rewritable: false));
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
                    result.Add(Parse(handle, id[CarrierMagic.Length..], label, rewritable: false));
                }
                else if (id.AsSpan().StartsWith(RewritableMagic))
                {
                    result.Add(ParseRewritable(handle, id.AsSpan(RewritableMagic.Length)));
                }
            }
        }

        return result;
    }

    /// <summary>
    /// A carrier: a generic-secret key generated in the token (so no key value is ever imported in plaintext, which
    /// many tokens refuse) that can do nothing, whose CKA_ID is <paramref name="id"/>.
    /// </summary>
    private static IObjectHandle WriteCarrier(ISession session, string label, byte[] id)
    {
        using var template = new AttributeList()
            .Add(CKA.CKA_CLASS, CKO.CKO_SECRET_KEY)
            .Add(CKA.CKA_KEY_TYPE, CKK.CKK_GENERIC_SECRET)
            .Add(CKA.CKA_VALUE_LEN, 32UL)
            .Add(CKA.CKA_TOKEN, true)
            .Add(CKA.CKA_PRIVATE, true)
            .Add(CKA.CKA_SENSITIVE, true)
            .Add(CKA.CKA_EXTRACTABLE, false)
            .Add(CKA.CKA_LABEL, label)
            .Add(CKA.CKA_ID, id)
            .Add(CKA.CKA_SIGN, false)
            .Add(CKA.CKA_VERIFY, false)
            .Add(CKA.CKA_ENCRYPT, false)
            .Add(CKA.CKA_DECRYPT, false)
            .Add(CKA.CKA_WRAP, false)
            .Add(CKA.CKA_UNWRAP, false)
            .Add(CKA.CKA_DERIVE, false);
        using var mechanism = Pkcs11Modules.Factories.MechanismFactory.Create(CKM.CKM_GENERIC_SECRET_KEY_GEN);
        return session.GenerateKey(mechanism, template.Items);
    }

    private static FoundCopy Parse(IObjectHandle handle, byte[] value, string label, bool rewritable)
    {
        if (value.Length < SequenceLength)
        {
            throw new TokenConfigurationException(
                $"data object '{label}' has {value.Length} bytes, fewer than its {SequenceLength}-byte sequence number; it was not written by HsmVault");
        }

        return new FoundCopy(handle, BinaryPrimitives.ReadUInt64BigEndian(value), value, rewritable);
    }

    private static FoundCopy ParseRewritable(IObjectHandle handle, ReadOnlySpan<byte> stored)
    {
        if (stored.Length >= SequenceLength + ChecksumLength)
        {
            var body = stored[..^ChecksumLength];
            if (SHA256.HashData(body).AsSpan(0, ChecksumLength).SequenceEqual(stored[^ChecksumLength..]))
            {
                return new FoundCopy(handle, BinaryPrimitives.ReadUInt64BigEndian(body), body.ToArray(), Rewritable: true);
            }
        }

        return new FoundCopy(handle, 0, null, Rewritable: true);
    }

    private static FoundCopy? Latest(List<FoundCopy> copies)
    {
        FoundCopy? latest = null;
        foreach (var copy in copies)
        {
            if (copy.Value is not null && (latest is not { } so || copy.Sequence > so.Sequence))
            {
                latest = copy;
            }
        }

        return latest;
    }
}

/// <summary>One copy found in the token: its sequence and stored bytes (sequence, then value; null for a torn rewrite).</summary>
internal readonly record struct FoundCopy(IObjectHandle Handle, ulong Sequence, byte[]? Value, bool Rewritable);

/// <summary>One copy of a data object: its handle (valid for the login that found or made it), its sequence, whether it can be rewritten in place.</summary>
internal readonly record struct StoredCopy(IObjectHandle Handle, ulong Sequence, bool Rewritable);

/// <summary>
/// Where a data object's copies are, oldest first (at most two after a write), the highest sequence among them,
/// and whether the token refused to rewrite one in place.
/// </summary>
internal sealed record StoredObject(IReadOnlyList<StoredCopy> Copies, ulong Sequence, bool RewriteRefused);
