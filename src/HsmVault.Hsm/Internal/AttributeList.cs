using Net.Pkcs11Interop.Common;
using Net.Pkcs11Interop.HighLevelAPI;
using Net.Pkcs11Interop.HighLevelAPI.Factories;

namespace HsmVault.Hsm.Internal;

/// <summary>
/// A PKCS#11 attribute template that frees the attributes' unmanaged memory when disposed,
/// instead of leaving it to finalizers.
/// </summary>
internal sealed class AttributeList : IDisposable
{
    private static readonly IObjectAttributeFactory Factory = Pkcs11Modules.Factories.ObjectAttributeFactory;

    public List<IObjectAttribute> Items { get; } = [];

    public AttributeList Add(CKA type, bool value) => Add(Factory.Create(type, value));

    public AttributeList Add(CKA type, string value) => Add(Factory.Create(type, value));

    public AttributeList Add(CKA type, byte[] value) => Add(Factory.Create(type, value));

    /// <summary>A vendor-defined attribute, which <see cref="CKA"/> does not name.</summary>
    public AttributeList Add(ulong type, byte[] value) => Add(Factory.Create(type, value));

    public AttributeList Add(CKA type, ulong value) => Add(Factory.Create(type, value));

    public AttributeList Add(CKA type, CKO value) => Add(Factory.Create(type, value));

    public AttributeList Add(CKA type, CKK value) => Add(Factory.Create(type, value));

    private AttributeList Add(IObjectAttribute attribute)
    {
        Items.Add(attribute);
        return this;
    }

    public void Dispose()
    {
        foreach (var attribute in Items)
        {
            attribute.Dispose();
        }

        Items.Clear();
    }
}
