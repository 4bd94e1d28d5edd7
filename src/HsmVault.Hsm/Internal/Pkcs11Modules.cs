using System.Reflection;
using System.Runtime.InteropServices;
using Net.Pkcs11Interop.Common;
using Net.Pkcs11Interop.HighLevelAPI;

namespace HsmVault.Hsm.Internal;

/// <summary>
/// Process-wide cache of loaded PKCS#11 modules. Pkcs11Interop's FAQ: load a module once per
/// process and never finalize it while the process runs — C_Initialize/C_Finalize are
/// process-global, so a second load would reset every other user's sessions.
/// </summary>
internal static class Pkcs11Modules
{
    private static readonly Lock CacheLock = new();
    private static readonly Dictionary<string, IPkcs11Library> Loaded = new(StringComparer.Ordinal);
    private static bool _resolverInstalled;

    /// <summary>The factories every caller shares; they hold no state.</summary>
    public static Pkcs11InteropFactories Factories { get; } = new();

    /// <summary>Returns the module at <paramref name="modulePath"/>, loading and initialising it on first use.</summary>
    /// <exception cref="TokenConfigurationException">The module is missing or does not initialise.</exception>
    public static IPkcs11Library Get(string modulePath, string? initArgs = null)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(modulePath);
        var fullPath = Path.GetFullPath(modulePath);
        lock (CacheLock)
        {
            if (Loaded.TryGetValue(fullPath, out var cached))
            {
                return cached;
            }

            if (!File.Exists(fullPath))
            {
                throw new TokenConfigurationException(
                    $"PKCS#11 module '{fullPath}' does not exist; install it (SoftHSM2: apt-get install -y softhsm2) or fix HsmVault:Token:ModulePath");
            }

            InstallLibdlResolver();
            IPkcs11Library library;
            try
            {
                if (initArgs is not null)
                {
                    // Pkcs11Interop's own C_Initialize then sees CKR_CRYPTOKI_ALREADY_INITIALIZED,
                    // which it accepts.
                    ModuleInitializer.InitializeWithArgs(fullPath, initArgs);
                }

                library = Factories.Pkcs11LibraryFactory.LoadPkcs11Library(Factories, fullPath, AppType.MultiThreaded);
            }
            catch (Exception ex) when (ex is Pkcs11Exception or UnmanagedException or DllNotFoundException or BadImageFormatException)
            {
                throw new TokenConfigurationException($"PKCS#11 module '{fullPath}' failed to load: {ex.Message}", ex);
            }

            Loaded.Add(fullPath, library);
            return library;
        }
    }

    /// <summary>
    /// Debian 12 ships only <c>libdl.so.2</c>; Pkcs11Interop asks for <c>libdl</c> and fails to
    /// load. A resolver can be set once per assembly, so this runs once per process.
    /// </summary>
    private static void InstallLibdlResolver()
    {
        if (_resolverInstalled)
        {
            return;
        }

        NativeLibrary.SetDllImportResolver(typeof(IPkcs11Library).Assembly, ResolveLibdl);
        _resolverInstalled = true;
    }

    private static IntPtr ResolveLibdl(string libraryName, Assembly assembly, DllImportSearchPath? searchPath)
    {
        if (OperatingSystem.IsLinux() && libraryName == "libdl" && NativeLibrary.TryLoad("libdl.so.2", out var handle))
        {
            return handle;
        }

        return IntPtr.Zero;
    }
}
