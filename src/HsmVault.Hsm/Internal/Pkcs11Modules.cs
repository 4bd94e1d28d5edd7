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
    private static readonly Dictionary<string, string?> InitArgs = new(StringComparer.Ordinal);
    private static readonly Dictionary<string, NativeCalls> Native = new(StringComparer.Ordinal);
    private static readonly Dictionary<string, SemaphoreSlim> Gates = new(StringComparer.Ordinal);
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
                // C_Initialize runs once per process: a second configuration string would be
                // silently ignored, and the caller would get another configuration's token.
                if (!string.Equals(InitArgs[fullPath], initArgs, StringComparison.Ordinal))
                {
                    throw new TokenConfigurationException(
                        $"PKCS#11 module '{fullPath}' is already initialised in this process with other HsmVault:Token:ModuleInitArgs; " +
                        "a module takes one configuration per process");
                }

                return cached;
            }

            if (!File.Exists(fullPath))
            {
                throw new TokenConfigurationException(
                    $"PKCS#11 module '{fullPath}' does not exist; install it (SoftHSM2: apt-get install -y softhsm2) or fix HsmVault:Token:ModulePath");
            }

            InstallLibdlResolver();
            IPkcs11Library library;
            NativeCalls native;
            try
            {
                // The low-level handle is the same module (dlopen counts references) and shares
                // its process-wide state: sessions and objects opened through the high-level API
                // are valid on it. With init args it also runs C_Initialize first, and
                // Pkcs11Interop's own C_Initialize then sees CKR_CRYPTOKI_ALREADY_INITIALIZED,
                // which it accepts.
                native = new NativeCalls(ModuleInitializer.Load(fullPath, initArgs));
                library = Factories.Pkcs11LibraryFactory.LoadPkcs11Library(Factories, fullPath, AppType.MultiThreaded);
            }
            catch (Exception ex) when (ex is Pkcs11Exception or UnmanagedException or DllNotFoundException or BadImageFormatException)
            {
                throw new TokenConfigurationException($"PKCS#11 module '{fullPath}' failed to load: {ex.Message}", ex);
            }

            Loaded.Add(fullPath, library);
            InitArgs.Add(fullPath, initArgs);
            Native.Add(fullPath, native);
            return library;
        }
    }

    /// <summary>
    /// The cap on concurrent operations for a module. It is per module, not per token, because
    /// SoftHSM2's crash with private-key operations from four or more threads (issue 688) does
    /// not care which token the keys are in: a process that opens several tokens of one module
    /// (tests, a fleet on one machine) must stay under the cap in total. The first token opened
    /// on a module sets the capacity.
    /// </summary>
    public static SemaphoreSlim OperationGate(string modulePath, int capacity)
    {
        var fullPath = Path.GetFullPath(modulePath);
        lock (CacheLock)
        {
            if (!Gates.TryGetValue(fullPath, out var gate))
            {
                gate = new SemaphoreSlim(capacity, capacity);
                Gates.Add(fullPath, gate);
            }

            return gate;
        }
    }

    /// <summary>Calls the high-level API cannot make on a loaded module (see <see cref="NativeCalls"/>).</summary>
    public static NativeCalls NativeOf(string modulePath)
    {
        lock (CacheLock)
        {
            return Native.TryGetValue(Path.GetFullPath(modulePath), out var native)
                ? native
                : throw new InvalidOperationException($"PKCS#11 module '{modulePath}' is not loaded");
        }
    }

    /// <summary>Whether the module at <paramref name="modulePath"/> is already loaded in this process.</summary>
    public static bool IsLoaded(string modulePath)
    {
        lock (CacheLock)
        {
            return Loaded.ContainsKey(Path.GetFullPath(modulePath));
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
