using Net.Pkcs11Interop.Common;
using Net.Pkcs11Interop.HighLevelAPI;

namespace HsmVault.Hsm.Internal;

/// <summary>Small helpers over Pkcs11Interop sessions: find by label, read attributes.</summary>
internal static class SessionExtensions
{
    /// <summary>Every object of <paramref name="objectClass"/> labelled <paramref name="label"/>.</summary>
    public static List<IObjectHandle> FindByLabel(this ISession session, CKO objectClass, string label)
    {
        using var template = new AttributeList()
            .Add(CKA.CKA_CLASS, objectClass)
            .Add(CKA.CKA_LABEL, label);
        return session.FindAllObjects(template.Items);
    }

    /// <summary>The one object of <paramref name="objectClass"/> labelled <paramref name="label"/>, or null.</summary>
    /// <exception cref="TokenConfigurationException">More than one object carries the label.</exception>
    public static IObjectHandle? FindSingle(this ISession session, CKO objectClass, string label, string tokenLabel)
    {
        var found = session.FindByLabel(objectClass, label);
        return found.Count switch
        {
            0 => null,
            1 => found[0],
            _ => throw new TokenConfigurationException(
                $"token '{tokenLabel}' has {found.Count} objects labelled '{label}'; exactly one is expected"),
        };
    }

    public static byte[] GetBytes(this ISession session, IObjectHandle handle, CKA type)
    {
        var attributes = session.GetAttributeValue(handle, [type]);
        try
        {
            return attributes[0].GetValueAsByteArray() ?? [];
        }
        finally
        {
            attributes.ForEach(a => a.Dispose());
        }
    }

    public static ulong GetULong(this ISession session, IObjectHandle handle, CKA type)
    {
        var attributes = session.GetAttributeValue(handle, [type]);
        try
        {
            return attributes[0].GetValueAsUlong();
        }
        finally
        {
            attributes.ForEach(a => a.Dispose());
        }
    }

    /// <summary>Boolean attributes by type; a missing or unreadable attribute reads as null.</summary>
    public static Dictionary<CKA, bool?> GetBools(this ISession session, IObjectHandle handle, params CKA[] types)
    {
        var attributes = session.GetAttributeValue(handle, [.. types]);
        try
        {
            var result = new Dictionary<CKA, bool?>();
            for (var i = 0; i < types.Length; i++)
            {
                result[types[i]] = attributes[i].CannotBeRead ? null : attributes[i].GetValueAsBool();
            }

            return result;
        }
        finally
        {
            attributes.ForEach(a => a.Dispose());
        }
    }

    /// <summary>Closes a session that may already be gone; a dead session has nothing to close.</summary>
    public static CKR? CloseQuietly(this ISession session)
    {
        try
        {
            session.CloseSession();
            return null;
        }
        catch (Pkcs11Exception ex)
        {
            return ex.RV;
        }
    }
}
