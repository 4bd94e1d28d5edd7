using Net.Pkcs11Interop.Common;

namespace HsmVault.Hsm.Internal;

/// <summary>
/// Initialises a token in a module's free slot (C_InitToken, then C_InitPIN as SO). Used by
/// test support for SoftHSM2, which always offers one uninitialised slot; real HSMs are
/// initialised with their vendor's tools.
/// </summary>
internal static class TokenInitializer
{
    /// <returns>The new token's serial number.</returns>
    public static string Initialize(string modulePath, string label, byte[] soPin, byte[] userPin)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(label);
        if (label.Length > 32)
        {
            throw new ArgumentException("a token label has at most 32 characters", nameof(label));
        }

        var library = Pkcs11Modules.Get(modulePath);

        // "The free slot" is shared state of the module: one initialisation at a time, and no
        // one walking the slot list meanwhile.
        lock (SlotListGate.Gate)
        {
            var slots = library.GetSlotList(SlotsType.WithTokenPresent);
            foreach (var slot in slots)
            {
                var info = slot.GetTokenInfo();
                if (info.TokenFlags.TokenInitialized && info.Label.Trim() == label)
                {
                    throw new InvalidOperationException($"a token labelled '{label}' already exists in slot 0x{slot.SlotId:x}");
                }
            }

            var free = slots.FirstOrDefault(s => !s.GetTokenInfo().TokenFlags.TokenInitialized)
                ?? throw new InvalidOperationException($"module '{modulePath}' has no uninitialised slot");
            free.InitToken(soPin, System.Text.Encoding.UTF8.GetBytes(label));
            using var session = free.OpenSession(SessionType.ReadWrite);
            session.Login(CKU.CKU_SO, soPin);
            session.InitPin(userPin);
            session.Logout();
            return free.GetTokenInfo().SerialNumber.Trim();
        }
    }
}
