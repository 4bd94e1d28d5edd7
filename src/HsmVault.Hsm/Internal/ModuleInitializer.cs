using System.Runtime.InteropServices;
using Net.Pkcs11Interop.Common;
using LowLevel = Net.Pkcs11Interop.LowLevelAPI80;

namespace HsmVault.Hsm.Internal;

/// <summary>
/// Loads a module through Pkcs11Interop's low-level API, and with a pReserved string runs
/// C_Initialize there, for modules that need their configuration in it (NSS softoken).
/// Pkcs11Interop's high-level API cannot pass pReserved, so the module is initialised here
/// first: PKCS#11 initialisation is per process, not per handle.
/// </summary>
internal static class ModuleInitializer
{
    // Kept for the life of the process: the module may keep pointers into the arguments.
    private static readonly List<object> KeepAlive = [];

    public static LowLevel.Pkcs11Library Load(string modulePath, string? initArgs)
    {
        // LowLevelAPI80: 8-byte CK_ULONG with natural packing, i.e. 64-bit Linux and macOS.
        if (Platform.NativeULongSize != 8 || Platform.StructPackingSize != 0)
        {
            throw new TokenConfigurationException("HsmVault runs its PKCS#11 modules on 64-bit Linux and macOS only");
        }

        var library = new LowLevel.Pkcs11Library(modulePath);
        if (initArgs is null)
        {
            return library;
        }

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

        lock (KeepAlive)
        {
            KeepAlive.Add(args);
        }

        return library;
    }
}
