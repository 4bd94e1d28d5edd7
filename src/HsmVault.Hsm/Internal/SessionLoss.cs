using Net.Pkcs11Interop.Common;

namespace HsmVault.Hsm.Internal;

/// <summary>The one rule for when a token call failed because the session (or its login) is gone, so a fresh login may help.</summary>
internal static class SessionLoss
{
    /// <summary>
    /// Return values after which the session (or its login) is gone and a fresh login may help.
    /// CKR_SLOT_ID_INVALID is what C_OpenSession says of a slot whose token was pulled out when
    /// the module removes the slot with it (NSS softoken does): the token may be back elsewhere.
    /// </summary>
    public static bool IsSessionLost(CKR rv) => rv is
        CKR.CKR_SESSION_HANDLE_INVALID or
        CKR.CKR_SESSION_CLOSED or
        CKR.CKR_DEVICE_REMOVED or
        CKR.CKR_TOKEN_NOT_PRESENT or
        CKR.CKR_SLOT_ID_INVALID or
        CKR.CKR_USER_NOT_LOGGED_IN or
        CKR.CKR_DEVICE_ERROR or
        CKR.CKR_KEY_HANDLE_INVALID or
        CKR.CKR_OBJECT_HANDLE_INVALID;
}
