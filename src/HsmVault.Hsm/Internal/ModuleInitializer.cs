using System.Runtime.InteropServices;
using Net.Pkcs11Interop.Common;
using LowLevel = Net.Pkcs11Interop.LowLevelAPI80;

namespace HsmVault.Hsm.Internal;

/// <summary>
/// C_Initialize with a pReserved string, for modules that need their configuration there
/// (NSS softoken). Pkcs11Interop's high-level API cannot pass pReserved, so the module is
/// initialised here through the low-level API first: PKCS#11 initialisation is per process,
/// not per handle.
/// </summary>
internal static class ModuleInitializer
{
    // Kept for the life of the process: the module may keep pointers into the arguments,
    // and unloading the low-level handle would gain nothing.
    private static readonly List<object> KeepAlive = [];

    public static void InitializeWithArgs(string modulePath, string initArgs)
    {
        // LowLevelAPI80: 8-byte CK_ULONG with natural packing, i.e. 64-bit Linux and macOS.
        if (Platform.NativeULongSize != 8 || Platform.StructPackingSize != 0)
        {
            throw new TokenConfigurationException("HsmVault:Token:ModuleInitArgs is supported on 64-bit Linux and macOS only");
        }

        var library = new LowLevel.Pkcs11Library(modulePath);
        var args = new LowLevel.CK_C_INITIALIZE_ARGS
        {
            Flags = (ulong)CKF.CKF_OS_LOCKING_OK,
            Reserved = Marshal.StringToHGlobalAnsi(initArgs),
        };
        var rv = library.C_Initialize(args);
        if (rv != CKR.CKR_OK && rv != CKR.CKR_CRYPTOKI_ALREADY_INITIALIZED)
        {
            library.Dispose();
            throw new TokenConfigurationException($"PKCS#11 module '{modulePath}' refused its ModuleInitArgs: C_Initialize returned {rv}");
        }

        KeepAlive.Add(library);
        KeepAlive.Add(args);
    }
}
