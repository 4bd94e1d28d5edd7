using Net.Pkcs11Interop.HighLevelAPI;

namespace HsmVault.Hsm.Internal;

/// <summary>
/// A short-lived logged-in session for provisioning and ceremonies, outside any
/// <see cref="Pkcs11VaultToken"/>. Never calls C_Logout on dispose: login state is shared by
/// every session of the process on that token, and a running vault token may need it.
/// </summary>
internal sealed class AdminSession : IDisposable
{
    private AdminSession(ISlot slot, TokenDescription description, ISession session, FleetKeyLabels labels)
    {
        Slot = slot;
        Description = description;
        Session = session;
        Labels = labels;
    }

    public ISlot Slot { get; }

    public TokenDescription Description { get; }

    public ISession Session { get; }

    public FleetKeyLabels Labels { get; }

    public string TokenLabel => Description.Label;

    public static AdminSession Open(TokenOptions options)
    {
        var copy = TokenOptionsValidator.Check(options);
        var library = Pkcs11Modules.Get(copy.ModulePath, copy.ModuleInitArgs);
        var (slot, description) = TokenLocator.Find(library, copy);
        using var pin = Pin.Load(copy);
        var session = TokenLocator.OpenLoggedIn(slot, pin, description.Label);
        return new AdminSession(slot, description, session, new FleetKeyLabels(copy.KeyLabelPrefix));
    }

    public void Dispose() => Session.CloseQuietly();
}
