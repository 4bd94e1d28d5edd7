using System.Globalization;
using System.Text;
using Net.Pkcs11Interop.Common;
using Net.Pkcs11Interop.HighLevelAPI;

namespace HsmVault.Hsm.Internal;

/// <summary>Finds a token by label and/or serial (slot ids change between runs) and logs in.</summary>
internal static class TokenLocator
{
    /// <exception cref="TokenConfigurationException">No token, or more than one, matches; the message lists the slots present.</exception>
    public static (ISlot Slot, TokenDescription Description) Find(IPkcs11Library library, TokenOptions options)
    {
        var label = string.IsNullOrWhiteSpace(options.TokenLabel) ? null : options.TokenLabel.Trim();
        var serial = string.IsNullOrWhiteSpace(options.TokenSerial) ? null : options.TokenSerial.Trim();
        if (label is null && serial is null)
        {
            throw new TokenConfigurationException(
                "no token selected: set HsmVault:Token:TokenLabel and/or HsmVault:Token:TokenSerial");
        }

        var matches = new List<(ISlot Slot, TokenDescription Description)>();
        var present = new List<string>();
        lock (SlotListGate.Gate)
        {
            Collect(library, label, serial, matches, present);
        }

        var wanted = Describe(label, serial);
        var slots = present.Count == 0 ? "none" : string.Join(", ", present);
        return matches.Count switch
        {
            1 => matches[0],
            0 => throw new TokenConfigurationException($"{wanted} not found; slots present: {slots}"),
            _ => throw new TokenConfigurationException(
                $"{wanted} is ambiguous: {matches.Count} tokens match; set HsmVault:Token:TokenSerial too. Slots present: {slots}"),
        };
    }

    /// <summary>
    /// Opens a read-write session and logs the user in. Login state is per token and process,
    /// so CKR_USER_ALREADY_LOGGED_IN (another handle on the same token) counts as success.
    /// </summary>
    /// <exception cref="TokenConfigurationException">Wrong, locked or uninitialised PIN.</exception>
    public static ISession OpenLoggedIn(ISlot slot, Pin pin, string tokenLabel)
    {
        var session = slot.OpenSession(SessionType.ReadWrite);
        try
        {
            session.Login(CKU.CKU_USER, pin.Value);
            return session;
        }
        catch (Pkcs11Exception ex) when (ex.RV == CKR.CKR_USER_ALREADY_LOGGED_IN)
        {
            return session;
        }
        catch (Pkcs11Exception ex)
        {
            session.CloseQuietly();
            throw ex.RV switch
            {
                CKR.CKR_PIN_INCORRECT or CKR.CKR_PIN_INVALID or CKR.CKR_PIN_LEN_RANGE => new TokenConfigurationException(
                    $"wrong PIN for token '{tokenLabel}' (C_Login returned {ex.RV}); check the file in HsmVault:Token:PinFile " +
                    "or the variable named by HsmVault:Token:PinEnvironmentVariable", ex),
                CKR.CKR_PIN_LOCKED => new TokenConfigurationException(
                    $"the user PIN of token '{tokenLabel}' is locked; the security officer must reset it", ex),
                CKR.CKR_USER_PIN_NOT_INITIALIZED => new TokenConfigurationException(
                    $"token '{tokenLabel}' has no user PIN yet; initialise it (softhsm/make-tokens.sh for SoftHSM2)", ex),
                _ => ex,
            };
        }
    }

    private static string Describe(string? label, string? serial)
    {
        var text = new StringBuilder("token");
        if (label is not null)
        {
            text.Append(" '").Append(label).Append('\'');
        }

        if (serial is not null)
        {
            text.Append(label is null ? " with serial '" : " (serial '").Append(serial).Append(label is null ? "'" : "')");
        }

        return text.ToString();
    }

    private static void Collect(
        IPkcs11Library library, string? label, string? serial, List<(ISlot Slot, TokenDescription Description)> matches, List<string> present)
    {
        foreach (var slot in library.GetSlotList(SlotsType.WithTokenPresent))
        {
            ITokenInfo info;
            try
            {
                info = slot.GetTokenInfo();
            }
            catch (Pkcs11Exception ex)
            {
                present.Add(string.Create(CultureInfo.InvariantCulture, $"0x{slot.SlotId:x} (unreadable: {ex.RV})"));
                continue;
            }

            if (!info.TokenFlags.TokenInitialized)
            {
                present.Add(string.Create(CultureInfo.InvariantCulture, $"0x{slot.SlotId:x} (uninitialised)"));
                continue;
            }

            var description = new TokenDescription(
                info.Label.Trim(), info.SerialNumber.Trim(), info.ManufacturerId.Trim(), info.Model.Trim(), slot.SlotId);
            present.Add(string.Create(
                CultureInfo.InvariantCulture,
                $"0x{slot.SlotId:x} (label '{description.Label}', serial '{description.SerialNumber}')"));
            if ((label is null || description.Label == label) && (serial is null || description.SerialNumber == serial))
            {
                matches.Add((slot, description));
            }
        }
    }
}
