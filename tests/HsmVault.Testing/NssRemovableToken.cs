using System.Globalization;
using System.Text;
using HsmVault.Hsm;
using HsmVault.Hsm.Internal;
using Net.Pkcs11Interop.Common;
using Net.Pkcs11Interop.HighLevelAPI;

namespace HsmVault.Testing;

/// <summary>
/// A token that can really be pulled out and put back: an NSS database of its own that NSS
/// softoken opens in a slot of its own and closes again, as it does for Firefox profiles
/// (NSS's <c>SECMOD_OpenUserDB</c> / <c>SECMOD_CloseUserDB</c>).
/// </summary>
/// <remarks>
/// <para>
/// NSS opens such a slot when a pseudo-object of class CKO_NSS_NEWSLOT is created in its internal
/// slot, and closes it when one of class CKO_NSS_DELSLOT is created in the slot itself. Closing a slot is what pulling out a
/// hardware token does: every session on it dies (CKR_SESSION_HANDLE_INVALID), the login with
/// them, and the slot is no longer in C_GetSlotList's list of slots with a token. Each
/// <see cref="Insert"/> picks a slot id never used before in this process, so the token comes
/// back under a new slot id — what real HSMs and USB tokens do and SoftHSM2 never does.
/// </para>
/// <para>
/// NSS gives every database the serial number <c>0000000000000000</c>, so two of these with the
/// same label are alike in everything C_GetTokenInfo shows, and only their keys tell them apart:
/// an impostor, made of real parts.
/// </para>
/// <code>
/// var token = NssRemovableToken.Create("member A");
/// var options = token.Insert();          // opened in a fresh slot, e.g. 0x10
/// token.Remove();                        // pulled out
/// token.Insert();                        // back, e.g. in slot 0x11
/// </code>
/// </remarks>
public sealed class NssRemovableToken
{
    /// <summary>NSS's CKO_NSS_NEWSLOT (CKO_NSS + 5): creating one opens a database in a slot.</summary>
    private const ulong CkoNssNewSlot = 0xCE534355;

    /// <summary>NSS's CKO_NSS_DELSLOT (CKO_NSS + 6): creating one closes a slot's database.</summary>
    private const ulong CkoNssDelSlot = 0xCE534356;

    /// <summary>NSS's CKA_NSS_MODULE_SPEC (CKA_NSS + 24): the slot's configuration string.</summary>
    private const ulong CkaNssModuleSpec = 0xCE534368;

    /// <summary>NSS's internal crypto slot, the one that opens new slots.</summary>
    private const ulong InternalSlotId = 1;

    // NSS accepts user slots 4..100 (SFTK_MIN_USER_SLOT_ID..SFTK_MAX_USER_SLOT_ID).
    private const int FirstSlotId = 0x10;
    private const int LastSlotId = 100;
    private static int _nextSlotId = FirstSlotId - 1;
    private static int _counter;

    private NssRemovableToken(string label, string databaseDirectory)
    {
        Label = label;
        DatabaseDirectory = databaseDirectory;
    }

    /// <summary>The token's label (NSS's tokenDescription).</summary>
    public string Label { get; }

    /// <summary>The database folder.</summary>
    public string DatabaseDirectory { get; }

    /// <summary>The slot it is in now; null while it is out.</summary>
    public ulong? SlotId { get; private set; }

    /// <summary>
    /// Options that find this token by its label (NSS's shared serial cannot tell two of these
    /// apart), with the shared NSS environment's PIN and module configuration.
    /// </summary>
    public TokenOptions Options => new()
    {
        ModulePath = NssEnvironment.Shared.ModulePath,
        ModuleInitArgs = NssEnvironment.Shared.ModuleInitArgs,
        TokenLabel = Label,
        PinFile = NssEnvironment.Shared.PinFile,
        MaxConcurrentOperations = 2,
    };

    /// <summary>A new, empty database (password = the NSS environment's PIN), not yet in a slot.</summary>
    /// <param name="label">At most 32 characters; unique in this process unless the test wants an impostor.</param>
    public static NssRemovableToken Create(string label)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(label);
        if (label.Length > 32 || label.Contains('\'', StringComparison.Ordinal))
        {
            throw new ArgumentException("an NSS token label has at most 32 characters and no quote", nameof(label));
        }

        var environment = NssEnvironment.Shared;
        var directory = Path.Combine(environment.RootDirectory, string.Create(CultureInfo.InvariantCulture, $"removable-{Interlocked.Increment(ref _counter)}"));
        Directory.CreateDirectory(directory);
        environment.CreateDatabase(directory);
        return new NssRemovableToken(label, directory);
    }

    /// <summary>Puts the token in a slot no token has used before in this process; returns its options.</summary>
    public TokenOptions Insert()
    {
        if (SlotId is not null)
        {
            throw new InvalidOperationException($"token '{Label}' is already in slot 0x{SlotId:x}");
        }

        var slotId = (ulong)Interlocked.Increment(ref _nextSlotId);
        if (slotId > LastSlotId)
        {
            throw new InvalidOperationException("NSS has no user slot ids left in this process");
        }

        CreatePseudoObject(InternalSlotId, CkoNssNewSlot, SlotSpec(slotId));
        SlotId = slotId;
        return Options;
    }

    /// <summary>Pulls the token out: its sessions and login die, its slot shows no token.</summary>
    public void Remove()
    {
        var slotId = SlotId ?? throw new InvalidOperationException($"token '{Label}' is not in a slot");

        // NSS closes a slot only from a session of that slot, and wants exactly one token in the
        // string to know which; the rest is ignored.
        CreatePseudoObject(slotId, CkoNssDelSlot, SlotSpec(slotId));
        SlotId = null;
    }

    private string SlotSpec(ulong slotId) => string.Create(
        CultureInfo.InvariantCulture,
        $"tokens=[0x{slotId:x}=<configdir='sql:{DatabaseDirectory}' certPrefix='' keyPrefix='' tokenDescription='{Label}'>]");

    private static void CreatePseudoObject(ulong inSlot, ulong objectClass, string spec)
    {
        var environment = NssEnvironment.Shared;
        var library = Pkcs11Modules.Get(environment.ModulePath, environment.ModuleInitArgs);
        var factory = Pkcs11Modules.Factories.ObjectAttributeFactory;
        ISlot slot;
        lock (SlotListGate.Gate)
        {
            slot = library.GetSlotList(SlotsType.WithTokenPresent).Single(s => s.SlotId == inSlot);
        }

        // Not disposed: a session of a slot that this closes is gone with it, and closing it again fails.
        var session = slot.OpenSession(SessionType.ReadOnly);
        List<IObjectAttribute> template =
        [
            factory.Create((ulong)CKA.CKA_CLASS, objectClass),
            factory.Create(CkaNssModuleSpec, [.. Encoding.ASCII.GetBytes(spec), 0]),
        ];
        try
        {
            session.CreateObject(template);
        }
        finally
        {
            template.ForEach(a => a.Dispose());
            session.CloseQuietly();
        }
    }
}
